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

from connector.runtime import Runtime
from connector.storage import models
from connector.storage.accounts import import_account
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
    from connector.kernel.errors import WebhookVerificationError
    from connector.kernel.http import WebhookRequest

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
    from connector.kernel import safe_json
    from connector.kernel.errors import MalformedWebhookError

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
    # Read as an unknown delivery report (from the customer's number: not this account's), or
    # refused as an inbound text; never a crash.
    assert answer.status_code in (400, 404)
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
    from connector.kernel import clock

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


# -- finding 8: a delivery report's signature carrying another body -----------------------------

PUBLIC = "https://hooks.example.test"  # TEXTBACK_PUBLIC_URL of the test settings


def contract_for(name: str) -> Any:
    """The carrier's contract test class, instantiated, for its credentials and signing."""
    from tests.contracts.carrier_contract import CarrierContract

    module = carrier_tests(name)
    for value in vars(module).values():
        if (isinstance(value, type) and issubclass(value, CarrierContract)
                and value is not CarrierContract and value.adapter_class.name == name):
            return value()
    raise LookupError(name)


def send(client: Any, request: Any) -> Any:
    """POST a :class:`WebhookRequest` to the app, at its URL's path and query."""
    from urllib.parse import urlsplit

    parts = urlsplit(request.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return client.post(target, data=request.body, headers=dict(request.headers.items()))


def url(carrier: str, account_id: str, kind: str) -> str:
    return f"{PUBLIC}/webhooks/{carrier}/{account_id}/{kind}"


def stored(runtime: Runtime) -> dict[str, int]:
    """Row counts without spent nonces (spending one is the point of a signed request)."""
    return {k: v for k, v in row_counts(runtime).items() if k != "used_nonces"}


def plivo_request(kind: str, body: bytes, *, nonce: str, account_id: str = "acme") -> Any:
    from carrier_adapters.plivo.webhooks import compute_v2_signature, compute_v3_signature
    from connector.kernel.http import WebhookRequest

    pv = carrier_tests("plivo")
    target = url("plivo", account_id, kind)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if kind == "voice":
        form = WebhookRequest.build(url=target, headers=headers, body=body)
        headers["X-Plivo-Signature-V3"] = compute_v3_signature(
            pv.AUTH_TOKEN, target, nonce, "POST", form.form_items)
        headers["X-Plivo-Signature-V3-Nonce"] = nonce
    else:
        headers["X-Plivo-Signature-V2"] = compute_v2_signature(pv.AUTH_TOKEN, target, nonce)
        headers["X-Plivo-Signature-V2-Nonce"] = nonce
    return WebhookRequest.build(url=target, headers=headers, body=body)


def with_body(request: Any, body: bytes) -> Any:
    """The same URL and headers with another body: what an attacker holding the headers sends."""
    from connector.kernel.http import WebhookRequest

    return WebhookRequest.build(url=request.url, headers=dict(request.headers.items()), body=body)


def test_plivo_delivery_report_headers_cannot_carry_another_body(app: Any,
                                                                 runtime: Runtime) -> None:
    pv = carrier_tests("plivo")
    add(runtime, account_doc("acme", "plivo", pv.credentials()))
    client = app.test_client()
    genuine = plivo_request("status", pv.fixture_body("status_delivered"), nonce="1000000001")
    assert send(client, genuine).status_code == 200
    before = row_counts(runtime)
    # The headers of that delivery report, replayed with a STOP, to the status URL and elsewhere.
    stop = pv.fixture_body("sms_inbound_stop")
    assert send(client, with_body(genuine, stop)).status_code == 403
    assert send(client, with_body(genuine, pv.fixture_body("status_failed_opted_out"))).status_code \
        == 403
    moved = with_body(genuine, stop)
    moved = type(moved).build(url=url("plivo", "acme", "sms"),
                              headers=dict(moved.headers.items()), body=stop)
    assert send(client, moved).status_code == 403  # the signature covers the URL
    assert row_counts(runtime) == before
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(models.OptOut)) == 0
        assert s.scalar(select(func.count()).select_from(models.Message)) == 0


def test_plivo_inbound_text_on_the_status_url_is_refused(app: Any, runtime: Runtime) -> None:
    pv = carrier_tests("plivo")
    add(runtime, account_doc("acme", "plivo", pv.credentials()))
    client = app.test_client()
    stop = pv.fixture_body("sms_inbound_stop")
    # Even with a nonce never seen before, the status URL does not read inbound texts.
    assert send(client, plivo_request("status", stop, nonce="2000000001")).status_code == 400
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(models.OptOut)) == 0
        assert s.scalar(select(func.count()).select_from(models.Message)) == 0
    # The headers of that refused request are spent too.
    refused = plivo_request("status", stop, nonce="2000000001")
    assert send(client, with_body(refused, pv.fixture_body("status_delivered"))).status_code == 403
    # The sms URL takes the STOP.
    assert send(client, plivo_request("sms", stop, nonce="2000000002")).status_code == 200
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(models.OptOut)) == 1


def test_plivo_nonces_are_spent_per_account_and_kept_a_while(app: Any, runtime: Runtime,
                                                             frozen_clock: Any) -> None:
    from datetime import timedelta

    from connector.kernel import clock

    pv = carrier_tests("plivo")
    add(runtime, account_doc("acme", "plivo", pv.credentials()))
    add(runtime, account_doc("bolt", "plivo", pv.credentials()))
    client = app.test_client()
    body = pv.fixture_body("status_delivered")
    assert send(client, plivo_request("status", body, nonce="3000000001")).status_code == 200
    assert send(client, plivo_request("status", body, nonce="3000000001",
                                      account_id="bolt")).status_code == 200
    assert send(client, plivo_request("status", body, nonce="3000000001")).status_code == 403
    with runtime.db.session() as s:
        spent = s.scalars(select(models.UsedNonce)).all()
        assert {row.scope for row in spent} == {"plivo:acme", "plivo:bolt"}
        assert all(row.expires_at >= clock.now() + timedelta(days=29) for row in spent)


def test_a_plivo_request_that_failed_with_a_500_may_be_retried(
    app: Any, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.web import webhooks as views

    pv = carrier_tests("plivo")
    add(runtime, account_doc("acme", "plivo", pv.credentials()))
    client = app.test_client()
    request = plivo_request("status", pv.fixture_body("status_delivered"), nonce="4000000001")
    real = views.record_status

    def down(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(views, "record_status", down)
    assert send(client, request).status_code == 500
    monkeypatch.setattr(views, "record_status", real)
    assert send(client, request).status_code == 200  # the provider's retry, same headers
    assert send(client, request).status_code == 403  # but only once


def test_plivo_voice_nonces_are_spent_too(app: Any, runtime: Runtime) -> None:
    pv = carrier_tests("plivo")
    add(runtime, account_doc("acme", "plivo", pv.credentials()))
    client = app.test_client()
    request = plivo_request("voice", pv.fixture_body("voice_dial_busy"), nonce="5000000001")
    assert send(client, request).status_code == 200
    assert send(client, request).status_code == 403


def inbound_text(name: str, contract: Any) -> tuple[bytes, str]:
    """An inbound text the carrier would post, as a payload to sign (CallRail has none: a
    sandbox-style text stands in)."""
    if not contract.inbound_scenarios or name == "callrail":
        return json.dumps({"message_id": "M1", "from": CALLER, "to": BUSINESS,
                           "body": "STOP"}).encode(), "application/json"
    return contract.scenario_body("sms", next(iter(contract.inbound_scenarios)))


def carrier_account(runtime: Runtime, name: str, contract: Any, number: str | None,
                    account_id: str = "acme") -> None:
    extra: dict[str, Any] = {}
    if not contract.adapter_class.sends_sms:
        extra["sms"] = {"kind": "sandbox", "credentials": {"webhook_secret": "s" * 20}}
    add(runtime, account_doc(account_id, name, dict(contract.credentials()),
                             numbers=(number or BUSINESS,), **extra))


def _carriers() -> list[str]:
    from carrier_adapters import CARRIERS

    return sorted(CARRIERS)


@pytest.mark.parametrize("name", _carriers())
def test_the_status_url_never_reads_an_inbound_text(app: Any, runtime: Runtime,
                                                    name: str) -> None:
    contract = contract_for(name)
    adapter = contract.adapter_class(contract.credentials())
    body, content_type = inbound_text(name, contract)
    recipient = None
    if adapter.sends_sms:
        recipient = adapter.parse_inbound_message(
            contract.sign_body(url(name, "acme", "sms"), body, content_type)).recipient
    carrier_account(runtime, name, contract, recipient)
    client = app.test_client()
    before = stored(runtime)
    answer = send(client, contract.sign_body(url(name, "acme", "status"), body, content_type))
    assert answer.status_code in (200, 400)  # refused, or an event the status URL ignores
    if adapter.sends_sms:
        assert answer.status_code == 400
    assert stored(runtime) == before
    # The same text to the sms URL is read: the signing above is the carrier's.
    if adapter.sends_sms:
        answer = send(client, contract.sign_body(url(name, "acme", "sms"), body, content_type))
        assert answer.status_code == 200
        with runtime.db.session() as s:
            assert s.scalar(select(func.count()).select_from(models.Message)) >= 1


def _carriers_with_delivery_reports() -> list[str]:
    """Carriers that post delivery reports (RingCentral's message-store events carry no ids)."""
    from carrier_adapters import CARRIERS

    return sorted(name for name, cls in CARRIERS.items()
                  if cls.sends_sms and name != "ringcentral")


@pytest.mark.parametrize("name", _carriers_with_delivery_reports())
def test_a_delivery_report_is_never_read_as_an_inbound_text(app: Any, runtime: Runtime,
                                                           name: str) -> None:
    contract = contract_for(name)
    carrier_account(runtime, name, contract, BUSINESS)
    client = app.test_client()
    body, content_type = contract.scenario_body("status", next(iter(contract.status_scenarios)))
    for kind in ("voice", "sms", "status"):
        send(client, contract.sign_body(url(name, "acme", kind), body, content_type))
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(models.Message)) == 0
        assert s.scalar(select(func.count()).select_from(models.OptOut)) == 0


def test_url_kind_declarations_keep_the_status_url_for_reports() -> None:
    from carrier_adapters import CARRIERS
    from carrier_adapters.base import CarrierAdapter, url_kinds_with

    for adapter in CARRIERS.values():
        assert "sms" not in adapter.url_kinds.get("status", frozenset()), adapter.name
        assert "plivo" != adapter.name or adapter.url_kinds == url_kinds_with()
    with pytest.raises(TypeError, match="never carries inbound texts"):
        type("Leaky", (CarrierAdapter,), {"url_kinds": url_kinds_with(status={"sms"})})


# -- finding 9: accounts sharing carrier credentials -----------------------------------------


def named_numbers(adapter: Any, kind: str, request: Any) -> set[str]:
    """The business numbers the webhook's events name, as the pipeline reads them."""
    from connector.kernel.errors import ConnectorError

    try:
        if kind == "voice":
            if adapter.is_incoming_call(request):
                return set()  # answered with forwarding; nothing is stored
            events = [adapter.parse_answered_call(request), adapter.parse_call_event(request)]
        elif kind == "sms":
            events = [adapter.parse_inbound_message(request)]
        else:
            events = [adapter.parse_status(request)]
        numbers = {adapter.business_number(e, request) for e in events if e is not None}
    except ConnectorError:
        return set()
    return {n for n in numbers if n is not None}


def scenarios(contract: Any, kind: str) -> list[str]:
    table = {"voice": contract.call_scenarios, "sms": contract.inbound_scenarios,
             "status": contract.status_scenarios}[kind]
    return list(table)


@pytest.mark.parametrize("name", _carriers())
def test_a_webhook_for_another_accounts_number_is_a_404(app: Any, runtime: Runtime,
                                                       name: str) -> None:
    contract = contract_for(name)
    adapter = contract.adapter_class(contract.credentials())
    webhooks: list[tuple[str, str, bytes, str, set[str]]] = []
    for kind in ("voice", "sms", "status"):
        for scenario in scenarios(contract, kind):
            try:
                body, content_type = contract.scenario_body(kind, scenario)
            except pytest.skip.Exception:
                continue  # the carrier sends no such webhook
            probe = contract.sign_body(url(name, "acme", kind), body, content_type)
            webhooks.append((kind, scenario, body, content_type,
                             named_numbers(adapter, kind, probe)))
    ours = sorted(set().union(*(numbers for *_, numbers in webhooks)) - {OTHER_BUSINESS})
    assert ours, "the fixtures name business numbers"
    # Two accounts on the same carrier credentials: acme owns the fixtures' numbers.
    add(runtime, account_doc("acme", name, dict(contract.credentials()), numbers=tuple(ours),
                             **sms_carrier(contract)))
    add(runtime, account_doc("bolt", name, dict(contract.credentials()),
                             numbers=(OTHER_BUSINESS,), **sms_carrier(contract)))
    client = app.test_client()
    bound = {"voice": 0, "sms": 0, "status": 0}
    for kind, scenario, body, content_type, numbers in webhooks:
        if not numbers:
            continue  # names no number of ours: cannot be bound (see business_number)
        bound[kind] += 1
        before = stored(runtime)
        # acme's event, correctly signed, posted to bolt's URL.
        answer = send(client, contract.sign_body(url(name, "bolt", kind), body, content_type))
        assert answer.status_code == 404, (kind, scenario)
        assert stored(runtime) == before, (kind, scenario)
        answer = send(client, contract.sign_body(url(name, "acme", kind), body, content_type))
        assert 200 <= answer.status_code < 300, (kind, scenario)
    # Every carrier names the called number of some missed call and the receiving number of
    # texts (CallRail texts through carrier.sms).
    assert bound["voice"] >= 1
    if adapter.sends_sms:
        assert bound["sms"] >= 1


def sms_carrier(contract: Any) -> dict[str, Any]:
    """``carrier.sms`` for call-event sources that send no texts (CallRail)."""
    if contract.adapter_class.sends_sms:
        return {}
    return {"sms": {"kind": "sandbox", "credentials": {"webhook_secret": "s" * 20}}}


def test_a_call_back_is_bound_by_its_caller(app: Any, runtime: Runtime) -> None:
    from urllib.parse import urlencode

    contract = contract_for("twilio")
    carrier_account(runtime, "twilio", contract, BUSINESS, account_id="acme")
    carrier_account(runtime, "twilio", contract, OTHER_BUSINESS, account_id="bolt")
    client = app.test_client()
    # The business called the customer back from acme's number and the customer picked up.
    call_back = urlencode({
        "CallSid": "CA0123456789abcdef0123456789abcdef", "From": BUSINESS, "To": CALLER,
        "Direction": "outbound-api", "CallStatus": "in-progress",
        "AccountSid": carrier_tests("twilio").ACCOUNT_SID,
    }).encode()
    form = "application/x-www-form-urlencoded"
    before = stored(runtime)
    assert send(client, contract.sign_body(url("twilio", "bolt", "voice"), call_back,
                                           form)).status_code == 404
    assert stored(runtime) == before
    assert send(client, contract.sign_body(url("twilio", "acme", "voice"), call_back,
                                           form)).status_code == 200
    with runtime.db.session() as s:
        activity = s.scalars(select(models.CallActivity)).all()
        assert [(a.account_id, a.direction) for a in activity] == [("acme", "outbound")]


def test_a_forwarded_leg_that_names_no_number_of_ours_is_accepted(app: Any,
                                                                  runtime: Runtime) -> None:
    # Telnyx Call Control: the forwarded leg's hangup names the caller and the forwarding phone,
    # not the business number, and does not say which leg it is: it cannot be bound by number.
    contract = contract_for("telnyx")
    carrier_account(runtime, "telnyx", contract, OTHER_BUSINESS, account_id="bolt")
    body, content_type = contract.scenario_body("voice", "voice_cc_hangup_timeout")
    answer = send(app.test_client(),
                  contract.sign_body(url("telnyx", "bolt", "voice"), body, content_type))
    assert answer.status_code == 200
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(models.Call)) == 1
