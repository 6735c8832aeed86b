"""Never twice, never lost: the text-back under dropped connections, kills and races.

The carrier here is the real Twilio adapter talking over HTTP to a stand-in on 127.0.0.1 that
can take a text and then drop the connection without answering, the way a proxy or a network
fault does after the carrier has accepted the request.
"""

from __future__ import annotations

import email.utils
import json
import socket
import struct
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
from sqlalchemy import select, update
from twilio.request_validator import RequestValidator

from connector.jobs.sweeper import sweep
from connector.kernel import clock
from connector.kernel.http import never_reached_provider, transport_error
from connector.storage.models import Call, CallEvent, Message
from tests.carrier_adapters.test_twilio import ACCOUNT_SID, AUTH_TOKEN, fixture_body
from tests.connector.helpers import add_account, records

PUBLIC = "https://hooks.example.test"
BUSINESS = "+14155550100"  # the numbers in the Twilio fixtures
CALLER = "+12025550143"


class TwilioStandIn:
    """Twilio's Messages resource on 127.0.0.1: ``POST`` stores a text, ``GET`` lists them.

    ``after_accept`` says what a POST does once the text is stored: ``"answer"`` (201 and the
    message), ``"close"`` (close the connection without a response: "remote end closed
    connection without response") or ``"reset"`` (an RST: "connection reset by peer").
    """

    def __init__(self) -> None:
        self.texts: list[dict[str, Any]] = []
        self.after_accept = "answer"
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                text = {
                    "sid": f"SM{len(stand_in.texts):032d}", "to": form["To"], "from": form["From"],
                    "body": form["Body"], "status": "queued", "num_segments": "1",
                    "date_created": email.utils.format_datetime(clock.now()),
                }
                stand_in.texts.append(text)
                if stand_in.after_accept == "answer":
                    self._json(201, text)
                    return
                if stand_in.after_accept == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                self.close_connection = True  # nothing written: the client sees the drop

            def do_GET(self) -> None:  # noqa: N802
                query = dict(parse_qsl(urlsplit(self.path).query))
                found = [t for t in reversed(stand_in.texts)
                         if t["to"] == query.get("To") and t["from"] == query.get("From")]
                self._json(200, {"messages": found})

            def _json(self, status: int, payload: object) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TwilioStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sends_to(self, number: str) -> int:
        return sum(1 for t in self.texts if t["to"] == number)


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def acme(runtime, twilio: TwilioStandIn) -> str:  # type: ignore[no-untyped-def]
    add_account(runtime, {
        "id": "acme", "name": "Acme Plumbing", "timezone": "America/New_York",
        "carrier": {"kind": "twilio", "numbers": [BUSINESS], "forward_to": ["+14155550199"],
                    "credentials": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
                    "api_base_url": twilio.url},
        "crm": {"kind": "sandbox", "credentials": {"webhook_secret": "crm-secret"},
                "mapping": {"pipeline": "default", "stage": "new", "owner_id": "owner-7"}},
        "policy": {"line_type_lookup": False},
    })
    return "acme"


def missed_call(client: Any) -> Any:
    """Twilio's ``<Dial action>`` callback for an unanswered call, signed as Twilio signs it."""
    path = "/webhooks/twilio/acme/voice"
    body = fixture_body("voice_dial_no_answer")
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, params)
    return client.post(path, data=body, headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})


def text_back(runtime) -> Message:  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        message = s.scalar(select(Message).where(Message.purpose_key.startswith("text_back:")))
        assert message is not None
        return message


def the_call(runtime) -> Call:  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        calls = s.scalars(select(Call)).all()
        assert len(calls) == 1
        return calls[0]


#: Long enough for the sweeper to count a call untouched since as stalled.
CALL_STALL = timedelta(minutes=5)


# -- 1. a connection dropped after the carrier accepted the text --------------------------------


@pytest.mark.parametrize("drop", ["close", "reset"])
def test_a_drop_after_the_carrier_accepted_is_reconciled_never_resent(
        app, runtime, acme, twilio, frozen_clock, drop):  # type: ignore[no-untyped-def]
    twilio.after_accept = drop
    assert missed_call(app.test_client()).status_code == 200
    assert twilio.sends_to(CALLER) == 1  # no blind retry inside the job
    message = text_back(runtime)
    assert (message.status, message.send_attempts) == ("ambiguous", 1)

    twilio.after_accept = "answer"
    frozen_clock.shift(60)  # the reconcile wait passes; the sweeper brings the job back
    with runtime.db.session() as s:
        s.execute(update(Call).values(updated_at=clock.now() - CALL_STALL))
    sweep(runtime)
    assert twilio.sends_to(CALLER) == 1
    message = text_back(runtime)
    assert message.status == "sent" and message.carrier_message_id == twilio.texts[0]["sid"]
    call = the_call(runtime)
    assert call.state == "texted"
    with runtime.db.session() as s:
        steps = s.scalars(select(CallEvent.detail).where(CallEvent.call_id == call.id)).all()
    assert any("reconciled" in step for step in steps)
    assert len(records(runtime, "acme", "task")) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_only_a_connection_that_never_opened_is_safe_to_repeat(twilio) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(requests.ConnectionError) as refused:
        requests.post(f"http://127.0.0.1:{_closed_port()}/", timeout=2)
    assert never_reached_provider(refused.value)
    assert transport_error("twilio", refused.value).ambiguous is False

    twilio.after_accept = "close"
    with pytest.raises(requests.ConnectionError) as dropped:
        requests.post(f"{twilio.url}/Messages.json", data={"To": CALLER, "From": BUSINESS,
                                                           "Body": "x"}, timeout=2)
    assert not never_reached_provider(dropped.value)
    assert transport_error("twilio", dropped.value).ambiguous is True
    assert transport_error("twilio", requests.ReadTimeout("slow")).ambiguous is True
    assert transport_error("twilio", requests.ConnectTimeout("no route")).ambiguous is False


def test_a_drop_before_the_carrier_accepted_sends_once_after_reconciling(
        app, runtime, acme, twilio, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    # The stand-in is down (connection refused): nothing reached it, so the job may try again
    # at once, and the text goes exactly once when it is back.
    import carrier_adapters.twilio.api as api

    real_request = api.TwilioRestClient._request
    down = {"left": 1}

    def refused_once(self, method, url=None, **kwargs):  # type: ignore[no-untyped-def]
        if method == "POST" and down["left"]:
            down["left"] -= 1
            return real_request(self, method, f"http://127.0.0.1:{_closed_port()}/x", **kwargs)
        return real_request(self, method, url, **kwargs)

    monkeypatch.setattr(api.TwilioRestClient, "_request", refused_once)
    assert missed_call(app.test_client()).status_code == 200
    assert twilio.sends_to(CALLER) == 1
    assert (text_back(runtime).status, the_call(runtime).state) == ("sent", "texted")


# -- 2. a worker killed during the decision ------------------------------------------------------


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs, and nothing uncommitted survives."""


def missed_call_killed(app: Any, monkeypatch: pytest.MonkeyPatch, target: object, name: str,
                       stand_in: Any) -> None:
    """A missed call whose job is killed where ``stand_in`` (in place of ``target.name``) raises
    :class:`Killed`; the stand-in is gone afterwards."""
    with monkeypatch.context() as patched:
        patched.setattr(target, name, stand_in)
        with pytest.raises(Killed):
            missed_call(app.test_client())


def test_a_kill_during_the_decision_loses_no_text(
        app, runtime, acme, twilio, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    import connector.jobs.text_back as workflow

    def die(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    # The text is composed after the policy decided and the owner was chosen, before the intent
    # row is written: the last moment a kill could leave a decided call with no text.
    missed_call_killed(app, monkeypatch, workflow, "compose", die)
    call = the_call(runtime)
    assert call.state == "received" and call.reason is None  # nothing half-decided was kept
    assert twilio.sends_to(CALLER) == 0

    frozen_clock.shift(5 * 60)  # the lease lapses; the sweeper finds the call stalled
    sweep(runtime)
    assert twilio.sends_to(CALLER) == 1
    call = the_call(runtime)
    assert (call.state, call.reason) == ("texted", "missed")
    assert len(records(runtime, "acme", "task")) == 1


# -- 3. a worker killed around the carrier call ------------------------------------------------


@pytest.mark.parametrize("accepted", [False, True], ids=["before the carrier took it",
                                                         "after the carrier took it"])
def test_a_kill_around_the_carrier_call_is_reconciled_and_texts_once(
        app, runtime, acme, twilio, frozen_clock, monkeypatch, accepted):  # type: ignore[no-untyped-def]
    from carrier_adapters.twilio import TwilioCarrier

    real_send = TwilioCarrier.send_sms

    def send_then_die(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if accepted:
            real_send(self, *args, **kwargs)
        raise Killed

    missed_call_killed(app, monkeypatch, TwilioCarrier, "send_sms", send_then_die)
    # The attempt was committed with the decision, before the carrier was called: whatever the
    # carrier did, the next run asks it rather than sending blind.
    message = text_back(runtime)
    assert (message.status, message.send_attempts) == ("intent", 1)
    assert the_call(runtime).state == "decided"
    assert twilio.sends_to(CALLER) == (1 if accepted else 0)

    frozen_clock.shift(5 * 60)  # the lease lapses; the sweeper finds the call stalled
    sweep(runtime)
    assert twilio.sends_to(CALLER) == 1
    message = text_back(runtime)
    assert message.status == "sent" and message.carrier_message_id == twilio.texts[0]["sid"]
    assert the_call(runtime).state == "texted"
    with runtime.db.session() as s:
        steps = s.execute(select(CallEvent.step, CallEvent.detail).where(
            CallEvent.call_id == the_call(runtime).id)).tuples().all()
    assert (("texted", "reconciled: the carrier had sent it") if accepted
            else ("reconciled", "the carrier has no such text; sending")) in steps
    assert len(records(runtime, "acme", "task")) == 1


# -- 4. two workers racing for one call ----------------------------------------------------------


def test_a_worker_that_read_the_call_before_another_sent_it_does_not_send_again(
        app, runtime, acme, twilio, monkeypatch):  # type: ignore[no-untyped-def]
    import connector.jobs.text_back as workflow
    from connector.runtime import Runtime

    # The webhook stores the call; hold its job back so two workers can race for it.
    monkeypatch.setattr(runtime.jobs, "enqueue_text_back", lambda *a, **k: None)
    monkeypatch.setattr(runtime.jobs, "enqueue_crm_sync", lambda *a, **k: None)
    assert missed_call(app.test_client()).status_code == 200
    call_id = the_call(runtime).id
    other = Runtime(runtime.settings, immediate_queue=True)
    real_take_lease = workflow.take_lease
    raced = {"done": False}

    def other_worker_sends_first(session, lease, row_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not raced["done"]:
            raced["done"] = True
            workflow.send_text_back(other, call_id)  # the other worker: lease, send, release
        return real_take_lease(session, lease, row_id, *args, **kwargs)

    monkeypatch.setattr(workflow, "take_lease", other_worker_sends_first)
    try:
        workflow.send_text_back(runtime, call_id)
    finally:
        other.close()
    assert raced["done"]
    assert twilio.sends_to(CALLER) == 1
    assert the_call(runtime).state == "texted"
