"""The Vonage adapter: the carrier contract suite plus Vonage's own rules.

Fixtures in ``tests/fixtures/vonage`` are signed here, at test time, the way Vonage signs: a JWT
in ``Authorization: Bearer``, HS256 under a test signature secret, with ``payload_hash`` the
SHA-256 of the exact body. The tokens are made with PyJWT (an implementation independent of the
adapter's hand-written verifier), and the adapter's own RS256 application tokens are checked
with PyJWT too. Events of the forwarded leg are posted to the ``eventUrl`` our NCCO sets, so
their URL carries the sealed call context. HTTP goes to ``responses`` stubs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt as pyjwt
import marshmallow
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from responses import matchers

from carrier_adapters import jwt_tokens
from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.vonage import VonageCarrier, tokens
from carrier_adapters.vonage import context as call_context
from connector.kernel.errors import (
    CredentialsRejectedError,
    MalformedWebhookError,
    PermanentProviderError,
    ProviderAuthError,
    RateLimitedError,
    RecipientRejectedError,
    TransientProviderError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.events import CallOutcome, DeliveryStatus, MissedCall
from connector.kernel.http import DEFAULT_TIMEOUT, WebhookRequest
from tests.carrier_adapters.conftest import Fixtures
from tests.contracts.carrier_contract import (
    CallSourceContract,
    CarrierContract,
    IncomingCallContract,
    MessagingContract,
    SignsBodyContract,
    TimestampedSignatureContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract
from tests.stubs.vonage_numbers import VonageNumbersFake

FIXTURES = Fixtures("vonage", keep_json_newline=True)
API_KEY = "a1b2c3d4"
API_SECRET = "test-api-secret-9F8e7D6c"
SIGNATURE_SECRET = "test-signature-secret-0123456789abcdef0123456789abcdef"
APPLICATION_ID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_KEY = RSA_KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
API_BASE = "https://vonage-api.test"
MESSAGES_URL = f"{API_BASE}/v1/messages"
WEBHOOK_BASE = "https://textback.example.com/webhooks/vonage/acme-plumbing"
CALLER, BUSINESS, FORWARD = "+12025550143", "+14155550100", "+14155550199"
A_LEG = "63f61863-4a51-4f6b-86e1-46edebcf9356"
MESSAGE_UUID = "d8f86df1-dec6-442f-870a-2241be27d721"
#: The call context our NCCO seals into the forwarded leg's eventUrl for the fixtures' call.
FIXTURE_CONTEXT = call_context.CallContext(caller=CALLER[1:], called=BUSINESS[1:], leg=A_LEG)
SEND = {
    "to": CALLER,
    "from_": BUSINESS,
    "body": "Sorry we missed your call! This is Acme Plumbing. How can we help?",
}


# -- helpers ---------------------------------------------------------------------------------


fixture_body = FIXTURES.body


fixture_json = FIXTURES.json


def vonage_token(body: bytes | None, *, secret: str = SIGNATURE_SECRET, **claims: Any) -> str:
    """A webhook JWT as Vonage makes it (PyJWT, HS256). ``payload_hash`` covers ``body``;
    ``claims`` override the defaults, None removes one."""
    payload: dict[str, Any] = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": API_KEY,
        "application_id": APPLICATION_ID,
    }
    if body is not None:
        payload["payload_hash"] = hashlib.sha256(body).hexdigest()
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return pyjwt.encode(payload, secret, algorithm="HS256")


def event_url(kind: str, ctx: call_context.CallContext | None = None) -> str:
    url = f"{WEBHOOK_BASE}/{kind}"
    if ctx is None:
        return url
    return call_context.with_context(url, call_context.seal(ctx, SIGNATURE_SECRET))


def signed(
    body: bytes | Mapping[str, Any],
    *,
    kind: str = "voice",
    ctx: call_context.CallContext | None = None,
    token: str | None = None,
    url: str | None = None,
    **token_options: Any,
) -> WebhookRequest:
    """A webhook to our ``kind`` URL with a Vonage JWT (``token`` overrides it)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    bearer = token if token is not None else vonage_token(raw, **token_options)
    return WebhookRequest.build(
        url=url or event_url(kind, ctx),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"},
        body=raw,
    )


def forwarded_leg(scenario: str) -> bool:
    """Events of the forwarded leg reach the eventUrl of our NCCO, context and all."""
    return fixture_json(scenario).get("direction") == "outbound"


def scenario_request(scenario: str, kind: str = "voice", **options: Any) -> WebhookRequest:
    ctx = FIXTURE_CONTEXT if kind == "voice" and forwarded_leg(scenario) else None
    return signed(fixture_body(scenario), kind=kind, ctx=options.pop("ctx", ctx), **options)


def variant(scenario: str, **changes: Any) -> dict[str, Any]:
    """A fixture with fields changed (None removes one)."""
    doc = fixture_json(scenario)
    for name, value in changes.items():
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


def credentials(**extra: Any) -> dict[str, Any]:
    creds = {
        "api_key": API_KEY,
        "signature_secret": SIGNATURE_SECRET,
        "application_id": APPLICATION_ID,
        "private_key": PRIVATE_KEY,
    }
    creds.update(extra)
    return {k: v for k, v in creds.items() if v is not None}


def basic_credentials() -> dict[str, Any]:
    return credentials(application_id=None, private_key=None, api_secret=API_SECRET)


def vonage_error(code: str, title: str = "Error", detail: str = "") -> dict[str, Any]:
    """An RFC 7807 error as the Messages API returns it."""
    return {
        "type": f"https://developer.vonage.com/api-errors/messages#{code}",
        "title": title,
        "detail": detail,
        "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
    }


@pytest.fixture
def adapter() -> VonageCarrier:
    return VonageCarrier(credentials(), api_base_url=API_BASE)


# -- the contract suite ----------------------------------------------------------------------


class TestVonageContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, IncomingCallContract, MessagingContract,
    TimestampedSignatureContract, SignsBodyContract,
):
    """The generic carrier contract, fed with Vonage's fixtures."""

    adapter_class = VonageCarrier
    secret_credentials = frozenset({"signature_secret", "api_secret", "private_key"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_answer": None,
        "voice_event_started_inbound": None,
        "voice_event_ringing": None,
        "voice_event_unanswered": CallOutcome.NO_ANSWER,
        "voice_event_timeout": CallOutcome.NO_ANSWER,
        "voice_event_busy": CallOutcome.BUSY,
        "voice_event_rejected": CallOutcome.REJECTED,
        "voice_event_failed": CallOutcome.FAILED,
        "voice_event_cancelled": CallOutcome.CANCELED,
        "voice_event_answered": None,
        "voice_event_completed_inbound": None,
        "voice_event_unknown_status": CallOutcome.UNKNOWN,
    }
    unknown_call_scenario = "voice_event_unknown_status"
    incoming_call_scenario = "voice_answer"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "2b1f6c0e-6f3d-4bd2-9b4b-6a3f0d8e2c11",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "opt_out_type": None,
            "media_count": 0,
            "received_at": datetime(2026, 4, 14, 15, 7, 12, tzinfo=UTC),
        },
        "sms_inbound_stop": {"sender": CALLER, "body": "STOP", "opt_out_type": None},
    }
    status_scenarios: Mapping[str, Mapping[str, Any]] = {
        "status_submitted": {
            "message_id": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
            "event_id": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab:submitted",
            "status": DeliveryStatus.SENT,
            "error_code": None,
        },
        "status_delivered": {
            "event_id": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab:delivered",
            "status": DeliveryStatus.DELIVERED,
            "error_code": None,
        },
        "status_rejected": {"status": DeliveryStatus.FAILED, "error_code": "1050"},
        "status_undeliverable": {"status": DeliveryStatus.UNDELIVERED, "error_code": None},
        "status_unknown": {"status": DeliveryStatus.UNKNOWN, "error_code": None},
    }
    unknown_status_scenario = "status_unknown"
    signature_headers = ("Authorization",)
    fake_api_base_url = API_BASE
    owned_numbers = ("+14155550100", "+14155550101")

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        VonageNumbersFake(API_KEY, API_SECRET, self.owned_numbers).install(http, API_BASE)

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        VonageNumbersFake(API_KEY, "another-secret", self.owned_numbers).install(http, API_BASE)
        return adapter

    def credentials(self) -> Mapping[str, Any]:
        return credentials(api_secret=API_SECRET)

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return scenario_request(scenario, kind)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return scenario_request(scenario, kind, secret="not-the-signature-secret-but-just-as-long-0123")

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        headers = {"Content-Type": content_type, "Authorization": f"Bearer {vonage_token(body)}"}
        return WebhookRequest.build(url=url, headers=headers, body=body)

    def stale_request(self, kind: str, scenario: str) -> WebhookRequest | None:
        return scenario_request(scenario, kind, iat=int(time.time()) - 600)

    def stub_send(
        self,
        http: responses.RequestsMock,
        adapter: CarrierAdapter,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(body, BaseException):
            http.add(responses.POST, MESSAGES_URL, body=body)
        elif isinstance(body, dict):
            http.add(responses.POST, MESSAGES_URL, json=body, status=status, headers=headers)
        else:
            http.add(responses.POST, MESSAGES_URL, body=body, status=status, headers=headers)

    def success_send(self) -> tuple[int, Any, Mapping[str, Any]]:
        expected = {"message_id": MESSAGE_UUID, "status": DeliveryStatus.QUEUED}
        return 202, {"message_uuid": MESSAGE_UUID}, expected

    def error_body(self, status: int) -> Any:
        codes = {400: "1020", 401: "unauthorized", 429: "1000", 500: "1030", 503: "1030"}
        return vonage_error(codes[status], "Error", f"Cannot send to {CALLER[1:]}")


# -- signatures ------------------------------------------------------------------------------


def _handmade(header: Mapping[str, Any], claims: Mapping[str, Any], key: bytes) -> str:
    """A JWT with any header, HMAC-SHA256 under ``key`` (to try algorithms PyJWT refuses)."""
    import hmac

    head = jwt_tokens.b64url_encode(json.dumps(header).encode())
    body = jwt_tokens.b64url_encode(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{jwt_tokens.b64url_encode(mac)}"


def _claims(body: bytes, **changes: Any) -> dict[str, Any]:
    claims = {"iat": int(time.time()), "jti": "j", "iss": "Vonage", "api_key": API_KEY,
              "application_id": APPLICATION_ID,
              "payload_hash": hashlib.sha256(body).hexdigest()}
    claims.update(changes)
    return claims


@pytest.mark.parametrize(
    "header",
    [{"alg": "none", "typ": "JWT"}, {"alg": "HS512", "typ": "JWT"}, {"typ": "JWT"}, {"alg": "hs256"}],
    ids=["none", "hs512", "no-alg", "lowercase"],
)
def test_only_hs256_tokens_are_accepted(adapter: VonageCarrier, header: dict[str, str]) -> None:
    body = fixture_body("sms_inbound")
    token = _handmade(header, _claims(body), SIGNATURE_SECRET.encode())
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(body, kind="sms", token=token))
    good = _handmade({"alg": "HS256", "typ": "JWT"}, _claims(body), SIGNATURE_SECRET.encode())
    adapter.verify_request(signed(body, kind="sms", token=good))


def test_an_rs256_token_cannot_pass_as_a_signature(adapter: VonageCarrier) -> None:
    body = fixture_body("sms_inbound")
    token = pyjwt.encode(_claims(body), RSA_KEY, algorithm="RS256")
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(body, kind="sms", token=token))


@pytest.mark.parametrize(
    "token", ["", "a.b", "a.b.c.d", "%%%.%%%.%%%", "e30.e30.", "W10.e30.AAAA"],
    ids=["empty", "two-parts", "four-parts", "not-base64", "empty-mac", "header-not-object"],
)
def test_malformed_tokens_are_rejected(adapter: VonageCarrier, token: str) -> None:
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(fixture_body("sms_inbound"), kind="sms", token=token))


@pytest.mark.parametrize("header", ["Basic YTpi", "Bearer", "Token abc", "bearer"])
def test_authorization_must_be_a_bearer_token(adapter: VonageCarrier, header: str) -> None:
    request = WebhookRequest.build(
        url=f"{WEBHOOK_BASE}/sms",
        headers={"Content-Type": "application/json", "Authorization": header},
        body=fixture_body("sms_inbound"),
    )
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request)


def test_bearer_scheme_is_case_insensitive(adapter: VonageCarrier) -> None:
    body = fixture_body("sms_inbound")
    request = WebhookRequest.build(
        url=f"{WEBHOOK_BASE}/sms",
        headers={"Content-Type": "application/json",
                 "Authorization": f"bearer {vonage_token(body)}"},
        body=body,
    )
    adapter.verify_request(request)


@pytest.mark.parametrize("age", [-299, 0, 299])
def test_iat_within_300_seconds_is_accepted(adapter: VonageCarrier, age: int) -> None:
    adapter.verify_request(scenario_request("sms_inbound", "sms", iat=int(time.time()) - age))


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": -301},
        {"iat": +400},
        {"iat": None},
        {"iat": "1700000000"},
        {"iat": True},
        {"exp": -120},
        {"exp": "soon"},
    ],
    ids=["old", "future", "no-iat", "string-iat", "bool-iat", "expired", "string-exp"],
)
def test_token_times_are_checked(adapter: VonageCarrier, changes: dict[str, Any]) -> None:
    # Integers are seconds from now, read when the test runs (not when it is collected).
    changes = {key: int(time.time()) + value if type(value) is int else value
               for key, value in changes.items()}
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(scenario_request("sms_inbound", "sms", **changes))


def test_unexpired_exp_is_fine(adapter: VonageCarrier) -> None:
    adapter.verify_request(scenario_request("sms_inbound", "sms", exp=int(time.time()) + 60))


def test_token_for_another_api_key_is_rejected(adapter: VonageCarrier) -> None:
    with pytest.raises(WebhookVerificationError, match="API key"):
        adapter.verify_request(scenario_request("sms_inbound", "sms", api_key="ffff0000"))
    adapter.verify_request(scenario_request("sms_inbound", "sms", api_key=None))


def test_application_is_checked_when_configured() -> None:
    other_app = "bbbbbbbb-0000-4000-8000-000000000000"
    with_app = VonageCarrier(credentials())
    with pytest.raises(WebhookVerificationError, match="application"):
        with_app.verify_request(scenario_request("sms_inbound", "sms", application_id=other_app))
    without_app = VonageCarrier(basic_credentials())
    without_app.verify_request(scenario_request("sms_inbound", "sms", application_id=other_app))


def test_body_must_be_covered_by_payload_hash(adapter: VonageCarrier) -> None:
    with pytest.raises(WebhookVerificationError, match="does not cover"):
        adapter.verify_request(scenario_request("sms_inbound", "sms", payload_hash=None))
    empty = WebhookRequest.build(
        url=f"{WEBHOOK_BASE}/voice",
        headers={"Authorization": f"Bearer {vonage_token(None)}"},
        body=b"",
    )
    adapter.verify_request(empty)


def test_payload_hash_in_capitals_is_accepted(adapter: VonageCarrier) -> None:
    body = fixture_body("sms_inbound")
    upper = hashlib.sha256(body).hexdigest().upper()
    adapter.verify_request(signed(body, kind="sms", payload_hash=upper))


def test_payload_hash_of_the_compact_json_is_accepted(adapter: VonageCarrier) -> None:
    """Vonage's support article hashes the JSON re-serialized without whitespace, in order."""
    body = fixture_body("status_delivered")  # pretty-printed on disk
    compact = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(compact.encode()).hexdigest()
    adapter.verify_request(signed(body, kind="status", payload_hash=digest))
    reordered = json.dumps(dict(reversed(list(json.loads(body).items()))), separators=(",", ":"))
    other = hashlib.sha256(reordered.encode()).hexdigest()
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(body, kind="status", payload_hash=other))


def test_duplicate_keys_do_not_match_a_compact_hash(adapter: VonageCarrier) -> None:
    body = b'{"message_uuid": "x", "status": "delivered", "status": "rejected"}'
    compact = b'{"message_uuid":"x","status":"rejected"}'
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(
            signed(body, kind="status", payload_hash=hashlib.sha256(compact).hexdigest())
        )


def test_forged_call_context_is_rejected(adapter: VonageCarrier) -> None:
    body = fixture_body("voice_event_unanswered")
    for token in ("not-a-token", call_context.seal(FIXTURE_CONTEXT, "another-secret-0123456789")):
        url = call_context.with_context(f"{WEBHOOK_BASE}/voice", token)
        with pytest.raises(WebhookVerificationError, match="context"):
            adapter.verify_request(signed(body, url=url))


def test_expired_call_context_is_rejected(adapter: VonageCarrier) -> None:
    plain = json.dumps({"c": CALLER[1:], "d": BUSINESS[1:], "u": A_LEG}).encode()
    old = call_context._fernet(SIGNATURE_SECRET).encrypt_at_time(
        plain, int(time.time()) - call_context.TTL_SECONDS - 60
    )
    url = call_context.with_context(f"{WEBHOOK_BASE}/voice", old.decode())
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(fixture_body("voice_event_unanswered"), url=url))


def test_verification_error_does_not_echo_the_token(adapter: VonageCarrier) -> None:
    request = scenario_request("sms_inbound", "sms", secret="x" * 40)
    with pytest.raises(WebhookVerificationError) as info:
        adapter.verify_request(request)
    assert request.headers["Authorization"].split()[1] not in str(info.value)


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "creds",
    [
        credentials(signature_secret=None),
        credentials(api_key=None),
        credentials(private_key=None),
        credentials(application_id=None),
        credentials(application_id=None, private_key=None),
        credentials(private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"),
        credentials(
            private_key=ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        ),
    ],
    ids=["no-signature-secret", "no-api-key", "app-without-key", "key-without-app",
         "no-way-to-send", "bad-pem", "ec-key"],
)
def test_invalid_credentials_are_refused(creds: dict[str, Any]) -> None:
    with pytest.raises(marshmallow.ValidationError):
        VonageCarrier(creds)


def test_default_api_base_url() -> None:
    assert VonageCarrier(basic_credentials()).api_base_url == "https://api.nexmo.com"


# -- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("posted_to", "scenario", "expected"),
    [
        ("sms", "status_delivered", "status"),
        ("status", "sms_inbound", "sms"),
        ("sms", "sms_inbound", "sms"),
        ("status", "status_rejected", "status"),
        ("voice", "voice_event_unanswered", "voice"),
        ("voice", "sms_inbound", "voice"),
    ],
)
def test_route_by_payload_shape(
    adapter: VonageCarrier, posted_to: str, scenario: str, expected: str
) -> None:
    request = signed(fixture_body(scenario), kind=posted_to)
    assert adapter.route(posted_to, request) == expected


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b'{"status": "delivered"}'])
def test_route_keeps_the_kind_it_cannot_improve_on(adapter: VonageCarrier, body: bytes) -> None:
    assert adapter.route("sms", signed(body, kind="sms")) == "sms"


# -- voice -----------------------------------------------------------------------------------


def test_forwarded_leg_event_is_fully_parsed(adapter: VonageCarrier) -> None:
    doc = fixture_json("voice_event_unanswered")
    event = adapter.parse_call_event(scenario_request("voice_event_unanswered"))
    assert isinstance(event, MissedCall)
    assert event.event_id == doc["conversation_uuid"]
    assert event.caller == CALLER and event.caller_raw == CALLER[1:]  # Vonage's spelling
    assert event.called == BUSINESS
    assert event.occurred_at == datetime(2026, 4, 14, 15, 4, 21, 522000, tzinfo=UTC)
    assert event.voicemail is False
    assert dict(event.raw) == doc


def test_legs_of_one_call_share_the_conversation(adapter: VonageCarrier) -> None:
    inbound = fixture_json("voice_event_started_inbound")
    missed = adapter.parse_call_event(scenario_request("voice_event_unanswered"))
    assert missed is not None and missed.event_id == inbound["conversation_uuid"]
    failed_inbound = adapter.parse_call_event(
        signed(variant("voice_event_started_inbound", status="failed"))
    )
    assert failed_inbound is not None and failed_inbound.event_id == missed.event_id


def test_forwarded_leg_without_our_context_names_no_caller(adapter: VonageCarrier) -> None:
    """Its ``from`` is the business number it was dialled from, never the customer."""
    event = adapter.parse_call_event(signed(fixture_body("voice_event_busy")))
    assert event is not None and event.outcome is CallOutcome.BUSY
    assert event.caller is None and event.caller_raw == ""
    assert event.called == BUSINESS


def test_callers_own_leg_names_the_caller(adapter: VonageCarrier) -> None:
    event = adapter.parse_call_event(signed(variant("voice_event_started_inbound", status="failed")))
    assert event is not None and event.outcome is CallOutcome.FAILED
    assert event.caller == CALLER and event.called == BUSINESS


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("started", None),
        ("ringing", None),
        ("answered", None),
        ("human", None),
        ("completed", None),
        ("disconnected", None),
        ("unanswered", CallOutcome.NO_ANSWER),
        ("timeout", CallOutcome.NO_ANSWER),
        ("busy", CallOutcome.BUSY),
        ("rejected", CallOutcome.REJECTED),
        ("failed", CallOutcome.FAILED),
        ("cancelled", CallOutcome.CANCELED),
        ("machine", CallOutcome.VOICEMAIL),
        ("Unanswered", CallOutcome.NO_ANSWER),
        ("transferred-to-mars", CallOutcome.UNKNOWN),
    ],
)
def test_voice_status_table(
    adapter: VonageCarrier, status: str, expected: CallOutcome | None
) -> None:
    request = signed(variant("voice_event_unanswered", status=status), ctx=FIXTURE_CONTEXT)
    event = adapter.parse_call_event(request)
    assert (event.outcome if event else None) is expected
    if event is not None:
        assert event.voicemail is (expected is CallOutcome.VOICEMAIL)


@pytest.mark.parametrize(
    "body",
    [
        {"from": CALLER[1:], "to": BUSINESS[1:], "dtmf": "42", "timed_out": True,
         "uuid": A_LEG, "conversation_uuid": "CON-1", "timestamp": "2026-04-14T15:04:00.000Z"},
        {"start_time": "2026-04-14T15:04:00Z", "recording_url": "https://api.nexmo.com/v1/files/x",
         "size": 12222, "recording_uuid": "r", "end_time": "2026-04-14T15:05:00Z",
         "conversation_uuid": "CON-1", "timestamp": "2026-04-14T15:05:00.000Z"},
        {"conversation_uuid_from": "CON-1", "conversation_uuid_to": "CON-2", "uuid": A_LEG,
         "timestamp": "2026-04-14T15:05:00.000Z"},
        {"reason": "Syntax error in NCCO.", "conversation_uuid": "CON-1",
         "timestamp": "2026-04-14T15:05:00.000Z"},
    ],
    ids=["input", "record", "transfer", "error"],
)
def test_other_voice_webhooks_are_neither_calls_nor_misses(
    adapter: VonageCarrier, body: dict[str, Any]
) -> None:
    request = signed(body)
    assert adapter.parse_call_event(request) is None
    assert adapter.is_incoming_call(request) is False


def test_voice_event_without_ids_is_malformed(adapter: VonageCarrier) -> None:
    body = variant("voice_event_unanswered", conversation_uuid=None, uuid=None)
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(signed(body, ctx=FIXTURE_CONTEXT))


@pytest.mark.parametrize("body", [b"not json", b"[]"])
def test_unreadable_voice_body_is_malformed(adapter: VonageCarrier, body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(signed(body))
    assert adapter.is_incoming_call(signed(body)) is False


@pytest.mark.parametrize(
    ("scenario", "ctx", "expected"),
    [
        ("voice_event_answered", FIXTURE_CONTEXT, ("inbound", CALLER)),
        ("voice_event_answered", None, ("outbound", FORWARD)),
        ("voice_event_unanswered", FIXTURE_CONTEXT, None),
        ("voice_event_completed_inbound", None, None),
    ],
    ids=["forward-picked-up", "call-back-answered", "forward-missed", "callers-leg"],
)
def test_answered_calls(
    adapter: VonageCarrier,
    scenario: str,
    ctx: call_context.CallContext | None,
    expected: tuple[str, str] | None,
) -> None:
    answered = adapter.parse_answered_call(signed(fixture_body(scenario), ctx=ctx))
    if expected is None:
        assert answered is None
        return
    assert answered is not None
    assert (answered.direction, answered.customer) == expected
    assert answered.event_id == f"{fixture_json(scenario)['uuid']}:{expected[0]}"


def test_inbound_leg_answered_by_vonage_says_nothing(adapter: VonageCarrier) -> None:
    body = variant("voice_event_started_inbound", status="answered")
    assert adapter.parse_answered_call(signed(body)) is None


# -- the NCCO --------------------------------------------------------------------------------


def routing(*numbers: str, timeout: int = 20, action: str | None = None) -> CallRouting:
    return CallRouting(
        forward_to=numbers or (FORWARD,),
        ring_timeout_seconds=timeout,
        action_url=action or f"{WEBHOOK_BASE}/voice",
        status_callback_url=f"{WEBHOOK_BASE}/voice",
    )


def test_incoming_call_reply_connects_the_forward(adapter: VonageCarrier) -> None:
    answer = scenario_request("voice_answer")
    reply = adapter.reply("voice", answer, routing(FORWARD, "+14155550188"))
    assert reply.content_type == "application/json" and reply.status == 200
    (action,) = json.loads(reply.body)
    event_url_ = action.pop("eventUrl")
    assert action == {
        "action": "connect",
        "from": BUSINESS[1:],
        "timeout": 20,
        "eventMethod": "POST",
        "endpoint": [{"type": "phone", "number": FORWARD[1:]}],  # connect rings one endpoint
    }
    (url,) = event_url_
    assert url.startswith(f"{WEBHOOK_BASE}/voice?tb_ctx=")
    assert CALLER[1:] not in url and BUSINESS[1:] not in url  # sealed, not spelled out
    token = dict(parse_qsl(urlsplit(url).query))["tb_ctx"]
    ctx = call_context.open_sealed(token, SIGNATURE_SECRET)
    assert (ctx.caller, ctx.called, ctx.leg) == (CALLER[1:], BUSINESS[1:], A_LEG)
    assert repr(ctx) == f"CallContext(leg={A_LEG!r})"


def test_the_forwarded_legs_events_come_back_with_the_caller(adapter: VonageCarrier) -> None:
    """End to end: the eventUrl our NCCO sets verifies and names the caller."""
    (action,) = json.loads(adapter.reply("voice", scenario_request("voice_answer"), routing()).body)
    request = signed(fixture_body("voice_event_timeout"), url=action["eventUrl"][0])
    adapter.verify_request(request)
    event = adapter.parse_call_event(request)
    assert event is not None and event.outcome is CallOutcome.NO_ANSWER
    assert event.caller == CALLER and event.called == BUSINESS


def test_event_url_keeps_the_action_urls_query(adapter: VonageCarrier) -> None:
    route = routing(action=f"{WEBHOOK_BASE}/voice?step=connect")
    (action,) = json.loads(adapter.reply("voice", scenario_request("voice_answer"), route).body)
    query = dict(parse_qsl(urlsplit(action["eventUrl"][0]).query))
    assert query["step"] == "connect" and "tb_ctx" in query


@pytest.mark.parametrize(("asked", "sent"), [(1, 5), (45, 45), (90, 90)])
def test_ring_timeout(adapter: VonageCarrier, asked: int, sent: int) -> None:
    reply = adapter.reply("voice", scenario_request("voice_answer"), routing(timeout=asked))
    assert json.loads(reply.body)[0]["timeout"] == sent


def test_without_the_called_number_vonage_picks_the_caller_id(adapter: VonageCarrier) -> None:
    for request in (None, signed(variant("voice_answer", to="anonymous"))):
        (action,) = json.loads(adapter.reply("voice", request, routing()).body)
        assert "from" not in action and action["randomFromNumber"] is True


def test_routing_needs_a_number(adapter: VonageCarrier) -> None:
    with pytest.raises(ValueError):
        adapter.reply("voice", scenario_request("voice_answer"), CallRouting((), 20, "a", "b"))


@pytest.mark.parametrize("kind", ["voice", "sms", "status"])
def test_other_replies_are_empty(adapter: VonageCarrier, kind: str) -> None:
    reply = adapter.reply(kind, scenario_request("sms_inbound", kind))
    assert (reply.body, reply.status) == (b"", 200)


def test_unknown_kind_is_a_programming_error(adapter: VonageCarrier) -> None:
    with pytest.raises(ValueError):
        adapter.reply("fax")


# -- Messages API webhooks -------------------------------------------------------------------


def test_inbound_mms_caption_is_the_body(adapter: VonageCarrier) -> None:
    body = variant("sms_inbound", channel="mms", message_type="image", text=None, sms=None,
                   image={"url": "https://example.com/a.jpg", "caption": "Here is the leak"})
    message = adapter.parse_inbound_message(signed(body, kind="sms"))
    assert message.body == "Here is the leak" and message.media_count == 1


def test_inbound_without_text_has_an_empty_body(adapter: VonageCarrier) -> None:
    body = variant("sms_inbound", channel="mms", message_type="image", text=None,
                   image={"url": "https://example.com/a.jpg"})
    message = adapter.parse_inbound_message(signed(body, kind="sms"))
    assert message.body == "" and message.media_count == 1


@pytest.mark.parametrize("channel", ["whatsapp", "viber_service", "messenger"])
def test_other_channels_are_unsupported(adapter: VonageCarrier, channel: str) -> None:
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(signed(variant("sms_inbound", channel=channel), kind="sms"))


def test_status_on_the_inbound_parser_is_unsupported(adapter: VonageCarrier) -> None:
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(scenario_request("status_delivered", "sms"))


@pytest.mark.parametrize("drop", ["message_uuid", "from"])
def test_inbound_without_required_fields_is_malformed(adapter: VonageCarrier, drop: str) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_inbound_message(signed(variant("sms_inbound", **{drop: None}), kind="sms"))


def test_inbound_with_unreadable_time_is_received_now(adapter: VonageCarrier) -> None:
    before = datetime.now(UTC)
    message = adapter.parse_inbound_message(
        signed(variant("sms_inbound", timestamp="yesterday"), kind="sms")
    )
    assert before <= message.received_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("vonage_status", "expected"),
    [
        ("submitted", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("rejected", DeliveryStatus.FAILED),
        ("undeliverable", DeliveryStatus.UNDELIVERED),
        ("read", DeliveryStatus.READ),
        ("Delivered", DeliveryStatus.DELIVERED),
    ],
)
def test_delivery_status_table(
    adapter: VonageCarrier, vonage_status: str, expected: DeliveryStatus
) -> None:
    update = adapter.parse_status(
        signed(variant("status_delivered", status=vonage_status), kind="status")
    )
    assert update.status is expected
    assert update.event_id.endswith(f":{vonage_status.lower()}")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"type": "https://developer.vonage.com/api-errors/messages#1050", "title": "x"}, "1050"),
        ({"type": "https://developer.nexmo.com/api-errors/#low-balance"}, "low-balance"),
        ({"type": "https://developer.vonage.com/api-errors/messages", "title": 1320}, "1320"),
        ({"title": "1250"}, "1250"),
        ({"title": "Not a code"}, None),
        ("just a string", None),
    ],
)
def test_status_error_code(adapter: VonageCarrier, error: Any, expected: str | None) -> None:
    update = adapter.parse_status(
        signed(variant("status_rejected", error=error), kind="status")
    )
    assert update.error_code == expected


def test_status_time_is_the_event_time(adapter: VonageCarrier) -> None:
    update = adapter.parse_status(scenario_request("status_delivered", "status"))
    assert update.occurred_at == datetime(2026, 4, 14, 15, 5, 4, 497000, tzinfo=UTC)


@pytest.mark.parametrize("drop", ["message_uuid", "status"])
def test_status_without_required_fields_is_malformed(adapter: VonageCarrier, drop: str) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_status(signed(variant("status_delivered", **{drop: None}), kind="status"))


# -- sending ---------------------------------------------------------------------------------


def test_send_posts_the_messages_api_json_with_an_application_jwt(
    adapter: VonageCarrier, http: responses.RequestsMock
) -> None:
    callback = f"{WEBHOOK_BASE}/status"
    http.add(
        responses.POST,
        MESSAGES_URL,
        json={"message_uuid": MESSAGE_UUID},
        status=202,
        match=[
            matchers.json_params_matcher(
                {"message_type": "text", "channel": "sms", "to": CALLER[1:],
                 "from": BUSINESS[1:], "text": SEND["body"], "webhook_url": callback}
            )
        ],
    )
    before = int(time.time())
    result = adapter.send_sms(**SEND, status_callback_url=callback)
    assert result.message_id == MESSAGE_UUID and result.status is DeliveryStatus.QUEUED
    (call,) = http.calls
    assert call.request.req_kwargs["timeout"] == DEFAULT_TIMEOUT
    scheme, token = call.request.headers["Authorization"].split()
    assert scheme == "Bearer"
    claims = pyjwt.decode(token, RSA_KEY.public_key(), algorithms=["RS256"])
    assert claims["application_id"] == APPLICATION_ID
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert claims["jti"]


def test_each_send_gets_a_fresh_token(adapter: VonageCarrier, http: responses.RequestsMock) -> None:
    http.add(responses.POST, MESSAGES_URL, json={"message_uuid": MESSAGE_UUID}, status=202)
    adapter.send_sms(**SEND)
    adapter.send_sms(**SEND)
    first, second = (c.request.headers["Authorization"] for c in http.calls)
    assert first != second  # a new jti each time


def test_send_with_basic_auth(http: responses.RequestsMock) -> None:
    adapter = VonageCarrier(basic_credentials(), api_base_url=API_BASE)
    expected = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    http.add(
        responses.POST,
        MESSAGES_URL,
        json={"message_uuid": MESSAGE_UUID},
        status=202,
        match=[
            matchers.header_matcher({"Authorization": expected}),
            matchers.json_params_matcher(
                {"message_type": "text", "channel": "sms", "to": CALLER[1:],
                 "from": BUSINESS[1:], "text": SEND["body"]}
            ),
        ],
    )
    adapter.send_sms(**SEND)


def test_an_alphanumeric_sender_is_sent_as_is(
    adapter: VonageCarrier, http: responses.RequestsMock
) -> None:
    http.add(
        responses.POST, MESSAGES_URL, json={"message_uuid": MESSAGE_UUID}, status=202,
        match=[matchers.json_params_matcher(
            {"message_type": "text", "channel": "sms", "to": CALLER[1:], "from": "AcmePlumb",
             "text": SEND["body"]})],
    )
    adapter.send_sms(to=CALLER, from_="AcmePlumb", body=SEND["body"])


@pytest.mark.parametrize(
    ("status", "code", "error", "reason"),
    [
        (422, "1050", RecipientRejectedError, "opted_out"),
        (400, "1050", RecipientRejectedError, "opted_out"),
        (422, "1040", RecipientRejectedError, "invalid"),
        (401, "unauthorized", ProviderAuthError, None),
        (403, "forbidden", ProviderAuthError, None),
        (402, "low-balance", PermanentProviderError, None),
        (422, "1150", PermanentProviderError, None),
        (422, "1000", RateLimitedError, None),
        (429, "1000", RateLimitedError, None),
        (500, "1050", TransientProviderError, None),
    ],
)
def test_send_errors_are_classified_by_vonage_code(
    adapter: VonageCarrier,
    http: responses.RequestsMock,
    status: int,
    code: str,
    error: type[Exception],
    reason: str | None,
) -> None:
    body = vonage_error(code, "Title", f"The number {CALLER[1:]} from {BUSINESS[1:]} is barred")
    http.add(responses.POST, MESSAGES_URL, json=body, status=status)
    with pytest.raises(error) as info:
        adapter.send_sms(**SEND)
    exc = info.value
    assert type(exc) is error
    assert exc.code == code and exc.status == status and exc.provider == "vonage"
    if reason is not None:
        assert exc.reason == reason
    if isinstance(exc, RateLimitedError):
        assert exc.retry_after == 1.0
    if isinstance(exc, TransientProviderError):
        assert exc.ambiguous is not isinstance(exc, RateLimitedError)
    text = f"{exc} {exc!r}"
    assert CALLER[1:] not in text and BUSINESS[1:] not in text and "barred" not in text


def test_retry_after_header_is_honoured(
    adapter: VonageCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, MESSAGES_URL, json=vonage_error("1000"), status=429,
             headers={"Retry-After": "4"})
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(**SEND)
    assert info.value.retry_after == 4.0


@pytest.mark.parametrize(
    "body", ["not json", json.dumps({"status": "ok"}), json.dumps({"message_uuid": ""}), "[]"],
    ids=["garbage", "no-uuid", "empty-uuid", "list"],
)
def test_accepted_send_without_a_readable_uuid_is_ambiguous(
    adapter: VonageCarrier, http: responses.RequestsMock, body: str
) -> None:
    http.add(responses.POST, MESSAGES_URL, body=body, status=202)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(**SEND)
    assert info.value.ambiguous is True


def test_find_sent_message_is_not_available(adapter: VonageCarrier) -> None:
    with pytest.raises(NotImplementedError):
        adapter.find_sent_message(
            to=CALLER, from_=BUSINESS, body=SEND["body"],
            sent_after=datetime(2026, 4, 14, 15, 5, tzinfo=UTC),
        )


def test_nothing_secret_is_logged(
    adapter: VonageCarrier, http: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http.add(responses.POST, MESSAGES_URL, json=vonage_error("1050", detail=CALLER), status=422)
    with pytest.raises(RecipientRejectedError):
        adapter.send_sms(**SEND)
    bad = scenario_request("sms_inbound", "sms", secret="y" * 40)
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(bad)
    for secret in (SIGNATURE_SECRET, PRIVATE_KEY, CALLER, CALLER[1:], SEND["body"],
                   bad.headers["Authorization"]):
        assert secret not in caplog.text


# -- the token helpers -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\xff\xfe\xfd", b"any carnal pleas"])
def test_b64url_round_trip(raw: bytes) -> None:
    encoded = jwt_tokens.b64url_encode(raw)
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert jwt_tokens.b64url_decode(encoded) == raw


def test_application_token_verifies_with_pyjwt() -> None:
    token = tokens.application_token(APPLICATION_ID, RSA_KEY, now=1_776_000_000)
    claims = pyjwt.decode(
        token, RSA_KEY.public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims["application_id"] == APPLICATION_ID
    assert (claims["iat"], claims["exp"]) == (1_776_000_000, 1_776_000_900)
    assert pyjwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}


# -- end to end through the connector's webhook views ----------------------------------------

ACCOUNT = "acme-plumbing"
PUBLIC = "https://hooks.example.test"  # TEXTBACK_PUBLIC_URL of the test settings


@pytest.fixture
def client(app, runtime, monkeypatch):  # type: ignore[no-untyped-def]
    """The app with a Vonage account on the sandbox CRM."""
    from connector.storage.accounts import import_account
    from tests.carrier_adapters.test_telnyx import register_carrier

    register_carrier(monkeypatch, VonageCarrier)
    doc = {
        "id": ACCOUNT,
        "name": "Acme Plumbing",
        "timezone": "America/New_York",
        "carrier": {
            "kind": "vonage",
            "credentials": credentials(),
            "numbers": [BUSINESS],
            "forward_to": [FORWARD],
            "api_base_url": API_BASE,
        },
        "crm": {
            "kind": "sandbox",
            "credentials": {"webhook_secret": "crm-secret-0123456789"},
            "mapping": {"pipeline": "default", "stage": "new", "owner_id": "owner-7"},
        },
    }
    with runtime.db.session() as s:
        import_account(s, runtime.box, doc)
    return app.test_client()


def post(client, path: str, body: bytes, **token_options: Any):  # type: ignore[no-untyped-def]
    """POST ``body`` to ``path`` (which may carry a query) with a Vonage JWT."""
    return client.post(path, data=body, headers={
        "Content-Type": "application/json",
        "Authorization": f"Bearer {vonage_token(body, **token_options)}",
    })


def test_end_to_end_forward_missed_text_and_replies(client, runtime, http) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from connector.storage.models import Message, OptOut

    http.add(responses.POST, MESSAGES_URL, json={"message_uuid": MESSAGE_UUID}, status=202)
    voice = f"/webhooks/vonage/{ACCOUNT}/voice"

    answer = post(client, voice, fixture_body("voice_answer"))
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    (action,) = json.loads(answer.data)
    assert action["endpoint"] == [{"type": "phone", "number": FORWARD[1:]}]
    (url,) = action["eventUrl"]
    assert url.startswith(f"{PUBLIC}{voice}?tb_ctx=")
    event_path = url[len(PUBLIC):]

    unanswered = fixture_body("voice_event_unanswered")
    assert post(client, event_path, unanswered, secret="z" * 40).status_code == 403
    for _ in range(2):  # a retried event texts once
        assert post(client, event_path, unanswered).status_code == 200
    (send,) = http.calls
    sent = json.loads(send.request.body)
    assert (sent["to"], sent["from"], sent["channel"]) == (CALLER[1:], BUSINESS[1:], "sms")
    assert sent["webhook_url"] == f"{PUBLIC}/webhooks/vonage/{ACCOUNT}/status"

    delivered = json.dumps(variant("status_delivered", message_uuid=MESSAGE_UUID)).encode()
    assert post(client, f"/webhooks/vonage/{ACCOUNT}/sms", delivered).status_code == 200
    stop = fixture_body("sms_inbound_stop")
    # The status URL never takes an inbound text, whatever the body says.
    assert post(client, f"/webhooks/vonage/{ACCOUNT}/status", stop).status_code == 400
    with runtime.db.session() as s:
        assert s.get(OptOut, (ACCOUNT, CALLER)) is None
    assert post(client, f"/webhooks/vonage/{ACCOUNT}/sms", stop).status_code == 200
    with runtime.db.session() as s:
        message = s.scalar(select(Message).where(Message.carrier_message_id == MESSAGE_UUID))
        assert message is not None and message.status == "delivered"
        assert s.get(OptOut, (ACCOUNT, CALLER)) is not None


# -- setup calls beyond the contract ----------------------------------------------------------


def test_vonage_numbers_show_their_applications_urls_and_pages() -> None:
    owned = [f"+1415555{n:04d}" for n in range(100, 205)]  # two pages of 100
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        fake = VonageNumbersFake(API_KEY, API_SECRET, owned)
        fake.numbers[1].update(app_id=None, voiceCallbackType="tel",
                               voiceCallbackValue="14155550199")
        fake.install(http, API_BASE)
        vonage = VonageCarrier(credentials(api_secret=API_SECRET), api_base_url=API_BASE)
        listed = vonage.list_numbers()
    assert [n.e164 for n in listed] == owned
    assert (listed[0].voice_url, listed[0].status_url, listed[0].sms_url) == (
        "https://old.example.com/answer", "https://old.example.com/event",
        "https://old.example.com/in")
    assert listed[1].voice_url is None  # calls go straight to a phone
    assert listed[0].capabilities == {"voice", "sms"}


def test_vonage_setup_calls_need_the_api_secret() -> None:
    vonage = VonageCarrier(credentials(), api_base_url=API_BASE)
    with pytest.raises(CredentialsRejectedError, match="add api_secret"):
        vonage.check_credentials()
    assert not VonageCarrier.can_point_webhooks
