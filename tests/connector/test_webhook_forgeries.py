"""Forged, replayed and malformed webhooks, end to end through the Flask views.

Each test reproduces a finding of an outside probe: deep JSON, odd but authentic payloads,
replayed Plivo signatures, a delivery-report URL read as an inbound text, accounts sharing
carrier credentials, and Dialpad JWTs without times. Requests go through the real app on a
SQLite database; jobs are queued (not run), so nothing reaches a carrier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.accounts import import_account
from connector.runtime import Runtime
from connector.storage import models
from crm_adapters.jobber.webhooks import SIGNATURE_HEADER as JOBBER_SIGNATURE

BUSINESS = "+14155550100"
OTHER_BUSINESS = "+14155550111"
CALLER = "+12025550143"
#: Deeper than Python's parser can go without ``RecursionError`` (its limit is about 1,000).
DEEP = 5000


@pytest.fixture
def runtime(settings: Any) -> Iterator[Runtime]:
    """A migrated runtime whose jobs are queued, never run: nothing here may reach a carrier."""
    from connector.storage.db import upgrade

    upgrade(settings.database_url)
    rt = Runtime(settings, immediate_queue=False)
    yield rt
    rt.close()


def account_doc(account_id: str, kind: str, credentials: dict[str, Any], *,
                numbers: tuple[str, ...] = (BUSINESS,), **carrier: Any) -> dict[str, Any]:
    """An account on carrier ``kind`` with the sandbox CRM."""
    return {
        "id": account_id,
        "name": "Acme Plumbing",
        "timezone": "America/Chicago",
        "carrier": {"kind": kind, "credentials": credentials, "numbers": list(numbers),
                    "forward_to": ["+14155550199"], **carrier},
        "crm": {"kind": "sandbox", "credentials": {"webhook_secret": "crm-secret-0123456789"}},
    }


def add(runtime: Runtime, doc: dict[str, Any]) -> None:
    with runtime.db.session() as s:
        import_account(s, runtime.box, doc)


def row_counts(runtime: Runtime) -> dict[str, int]:
    """Rows per table, for "nothing was stored" checks."""
    counts: dict[str, int] = {}
    with runtime.db.session() as s:
        for table in models.Base.metadata.sorted_tables:
            counts[table.name] = int(s.scalar(select(func.count()).select_from(table)) or 0)
    return counts


def deep_json(depth: int = DEEP, *, around: str = "[", key: str | None = None) -> bytes:
    """``depth`` nested arrays (or objects under ``key``), optionally inside an object."""
    if around == "{":
        inner = '{"a":' * depth + "1" + "}" * depth
    else:
        inner = "[" * depth + "]" * depth
    return (f'{{"{key}": {inner}}}' if key else inner).encode()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(header: bytes, claims: bytes, secret: str) -> bytes:
    """A compact HS256 JWT over the given header and claims bytes, exactly as written."""
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}".encode()


AIRCALL = {"api_id": "test-aircall-api-id", "api_token": "test-aircall-api-token-Zm9vYmFy",
           "number_id": "1284757", "webhook_token": "test-aircall-webhook-token-45XXYYZZa08"}
DIALPAD_SECRET = "test-dialpad-webhook-secret-Zm9vYmFyYmF6cXV4"
DIALPAD = {"api_key": "test-dialpad-api-key-Zm9vYmFy", "webhook_secret": DIALPAD_SECRET,
           "user_id": "5836109287653376"}


# -- finding 16: JSON nested 1,000+ levels deep ------------------------------------------------


@pytest.mark.parametrize("kind", ["voice", "sms", "status"])
@pytest.mark.parametrize("shape", ["[", "{"])
def test_deep_json_to_aircall_is_refused_not_a_500(app: Any, runtime: Runtime, kind: str,
                                                  shape: str) -> None:
    add(runtime, account_doc("acme", "aircall", AIRCALL))
    before = row_counts(runtime)
    client = app.test_client()
    for body in (deep_json(around=shape),
                 deep_json(around=shape, key="data")[:-1] + b', "token": "%s"}'
                 % AIRCALL["webhook_token"].encode()):
        answer = client.post(f"/webhooks/aircall/acme/{kind}", data=body,
                             content_type="application/json")
        # The token sits in a body we refuse to read, so it cannot be checked: 403.
        assert answer.status_code == 403
    assert row_counts(runtime) == before


@pytest.mark.parametrize("part", ["header", "claims"])
def test_deep_json_in_a_dialpad_jwt_is_refused_not_a_500(app: Any, runtime: Runtime,
                                                        part: str) -> None:
    add(runtime, account_doc("acme", "dialpad", DIALPAD))
    before = row_counts(runtime)
    header, claims = b'{"alg":"HS256","typ":"JWT"}', b'{"call_id": "1"}'
    deep = deep_json(around="{", key="x")
    if part == "header":
        header = deep
    else:
        claims = deep
    client = app.test_client()
    # Unsigned: the MAC is checked before any part is decoded.
    forged = hs256(header, claims, "not-the-secret-at-all-0123456789")
    assert client.post("/webhooks/dialpad/acme/voice", data=forged,
                       content_type="application/jwt").status_code == 403
    # Signed: authentic, but a part nests too deep to read.
    signed = hs256(header, claims, DIALPAD_SECRET)
    assert client.post("/webhooks/dialpad/acme/voice", data=signed,
                       content_type="application/jwt").status_code == 400
    assert row_counts(runtime) == before


def test_dialpad_checks_the_mac_before_it_decodes_the_header(monkeypatch: Any) -> None:
    from carrier_adapters.dialpad import webhooks as dialpad_webhooks
    from connector.errors import WebhookVerificationError
    from connector.http import WebhookRequest

    decoded: list[bytes] = []

    def spy(data: Any, **kwargs: Any) -> Any:
        decoded.append(data)
        return json.loads(data)

    monkeypatch.setattr(dialpad_webhooks.safe_json, "loads", spy)
    token = hs256(b'{"alg":"HS256"}', b'{"call_id":"1"}', "some-other-secret-0123456789")
    request = WebhookRequest.build(url="https://x.test/webhooks/dialpad/a/voice", body=token,
                                   headers={"Content-Type": "application/jwt"})
    with pytest.raises(WebhookVerificationError):
        dialpad_webhooks.decode(request, DIALPAD_SECRET)
    assert decoded == []


@pytest.mark.parametrize("shape", ["[", "{"])
def test_deep_json_to_the_jobber_webhook_is_a_400(app: Any, runtime: Runtime, shape: str) -> None:
    before = row_counts(runtime)
    body = deep_json(around=shape, key="data")
    answer = app.test_client().post("/webhooks/crm/jobber", data=body,
                                    headers={JOBBER_SIGNATURE: "x"},
                                    content_type="application/json")
    assert answer.status_code == 400
    assert row_counts(runtime) == before


def test_jobber_data_of_the_wrong_type_is_a_400(app: Any) -> None:
    body = json.dumps({"data": [1, 2]}).encode()
    answer = app.test_client().post("/webhooks/crm/jobber", data=body,
                                    content_type="application/json")
    assert answer.status_code == 400


def test_deep_json_to_the_demo_is_a_400(app: Any, runtime: Runtime) -> None:
    from connector.cli import ensure_demo_account

    ensure_demo_account(runtime)
    before = row_counts(runtime)
    client = app.test_client()
    for body in (deep_json(), deep_json(around="{"), b"[1, 2]", b"{not json"):
        answer = client.post("/demo/simulate-call", data=body, content_type="application/json")
        assert answer.status_code == 400, body[:20]
    assert row_counts(runtime) == before


def test_deep_unsigned_json_to_hubspot_is_refused(app: Any, runtime: Runtime) -> None:
    add(runtime, {**account_doc("hub", "sandbox", {"webhook_secret": "s" * 20}),
                  "crm": {"kind": "hubspot", "credentials": {
                      "access_token": "pat-test-0123456789",
                      "client_secret": "hubspot-secret-0123456789"}}})
    client = app.test_client()
    answer = client.post("/webhooks/crm/hubspot/hub", data=deep_json(),
                         content_type="application/json")
    assert answer.status_code == 403  # unsigned; signed-and-deep is covered by the fuzz test


def test_the_nesting_cap_counts_without_recursing() -> None:
    from connector import safe_json
    from connector.errors import MalformedWebhookError

    assert safe_json.nesting_depth('{"a": "[[[[", "b": [1, {"c": []}]}') == 4
    assert safe_json.loads(deep_json(64)) == json.loads(deep_json(64))
    with pytest.raises(MalformedWebhookError, match="nests deeper than 64"):
        safe_json.loads(deep_json(65))
    with pytest.raises(MalformedWebhookError):
        safe_json.loads(deep_json(100_000))
    with pytest.raises(MalformedWebhookError):
        safe_json.loads(b"\xff\xfe\x00garbage")
    with pytest.raises(MalformedWebhookError):
        safe_json.loads(b"9" * 5000)  # longer than Python converts to an int
    assert safe_json.loads('"[\\"]"') == '["]'



# -- finding 18: authentic but odd payloads ---------------------------------------------------


def carrier_tests(name: str) -> Any:
    """The carrier's test module, for its credentials and signing helpers."""
    import importlib

    return importlib.import_module(f"tests.carrier_adapters.test_{name}")


@pytest.mark.parametrize("kind", ["sms", "status"])
@pytest.mark.parametrize("odd", [["message-received"], {"a": 1}])
def test_bandwidth_event_type_of_another_shape_is_a_400(app: Any, runtime: Runtime, kind: str,
                                                       odd: Any) -> None:
    bw = carrier_tests("bandwidth")
    add(runtime, account_doc("acme", "bandwidth", bw.credentials()))
    event = {**bw.fixture_json("sms_inbound")[0], "type": odd}
    event["message"] = {**event["message"], "to": [BUSINESS]}
    signed = bw.request([event], kind=kind)
    before = row_counts(runtime)
    answer = app.test_client().post(f"/webhooks/bandwidth/acme/{kind}", data=signed.body,
                                    headers=dict(signed.headers.items()))
    assert answer.status_code in (200, 400)  # read as an unknown delivery report, or refused
    assert answer.status_code != 500
    if kind == "sms":
        assert answer.status_code == 400
        assert row_counts(runtime) == before


def test_ringcentral_recipients_of_another_shape_are_read(app: Any, runtime: Runtime) -> None:
    rc = carrier_tests("ringcentral")
    add(runtime, account_doc("acme", "ringcentral", rc.credentials()))
    doc = json.loads(rc.fixture_body("sms_inbound"))
    doc["body"]["to"] = 5
    signed = rc.signed(json.dumps(doc).encode())
    answer = app.test_client().post("/webhooks/ringcentral/acme/sms", data=signed.body,
                                    headers=dict(signed.headers.items()))
    assert answer.status_code == 200
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(models.Message)) == 1


def test_any_parsing_error_is_a_400_that_logs_no_payload(
    app: Any, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from carrier_adapters.sandbox import SandboxCarrier
    from tests.connector.helpers import post

    secret = "sandbox-secret-0123456789"
    add(runtime, account_doc("acme", "sandbox", {"webhook_secret": secret}))
    client = app.test_client()
    for error in (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError):
        def explode(self: Any, request: Any, error: type[Exception] = error) -> Any:
            raise error(f"unhashable value in body 'STOP texting me' from {CALLER}")

        monkeypatch.setattr(SandboxCarrier, "parse_inbound_message", explode)
        caplog.clear()
        before = row_counts(runtime)
        answer = post(client, "acme", "sms", {"message_id": "M1", "from": CALLER, "to": BUSINESS,
                                              "body": "STOP texting me"}, secret)
        assert answer.status_code == 400, error
        assert error.__name__ in caplog.text and "in explode" in caplog.text
        assert "STOP" not in caplog.text and CALLER not in caplog.text
        assert "STOP" not in answer.get_data(as_text=True)
        assert row_counts(runtime) == before


def test_an_error_while_storing_stays_a_500(app: Any, runtime: Runtime,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.web import webhooks as views
    from tests.connector.helpers import post

    secret = "sandbox-secret-0123456789"
    add(runtime, account_doc("acme", "sandbox", {"webhook_secret": secret}))

    def broken_store(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("a bug in storage, or the database went away")

    monkeypatch.setattr(views, "record_inbound", broken_store)
    answer = post(app.test_client(), "acme", "sms",
                  {"message_id": "M1", "from": CALLER, "to": BUSINESS, "body": "hi"}, secret)
    assert answer.status_code == 500  # the carrier retries


def test_sandbox_fields_of_another_shape_do_not_reach_the_database(app: Any,
                                                                   runtime: Runtime) -> None:
    from tests.connector.helpers import post

    secret = "sandbox-secret-0123456789"
    add(runtime, account_doc("acme", "sandbox", {"webhook_secret": secret}))
    client = app.test_client()
    odd = {"ring_seconds": {"a": 1}, "attestation": [1], "voicemail": "yes"}
    assert post(client, "acme", "voice", {"call_id": "C1", "from": CALLER, "to": BUSINESS,
                                          "outcome": "no-answer", **odd}, secret).status_code == 200
    assert post(client, "acme", "status", {"message_id": "SB1", "status": "failed",
                                           "error_code": {"x": 1}}, secret).status_code == 200
    assert post(client, "acme", "sms", {"message_id": "M1", "from": CALLER, "to": BUSINESS,
                                        "opt_out_type": ["STOP"]}, secret).status_code == 200


# -- finding 14: a Dialpad JWT without iat/exp ----------------------------------------------


def test_a_dialpad_event_without_times_is_refused(app: Any, runtime: Runtime,
                                                  frozen_clock: Any) -> None:
    from connector import clock

    dp = carrier_tests("dialpad")
    add(runtime, account_doc("acme", "dialpad", dp.credentials()))
    event = {**dp.claims("voice_call_missed"), "internal_number": BUSINESS}
    client = app.test_client()
    before = row_counts(runtime)
    timeless = hs256(b'{"alg":"HS256","typ":"JWT"}', json.dumps(event).encode(), dp.SECRET)
    assert client.post("/webhooks/dialpad/acme/voice", data=timeless,
                       content_type="application/jwt").status_code == 403
    assert row_counts(runtime) == before
    now = clock.timestamp()
    fresh = dp.as_jwt(event, iat=now, exp=now + 60)
    frozen_clock.shift(600)  # ten minutes later: iat too old, exp long past
    assert client.post("/webhooks/dialpad/acme/voice", data=fresh,
                       content_type="application/jwt").status_code == 403
    assert row_counts(runtime) == before
    now = clock.timestamp()
    assert client.post("/webhooks/dialpad/acme/voice", data=dp.as_jwt(event, iat=now),
                       content_type="application/jwt").status_code == 200
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(models.Call)) == 1
