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
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt as pyjwt
import marshmallow
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from responses import matchers

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.vonage import VonageCarrier
from carrier_adapters.vonage import context as call_context
from carrier_adapters.vonage import tokens
from connector.errors import (
    MalformedWebhookError,
    PermanentProviderError,
    ProviderAuthError,
    RateLimitedError,
    RecipientRejectedError,
    TransientProviderError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.events import CallOutcome, DeliveryStatus, MissedCall
from connector.http import DEFAULT_TIMEOUT, WebhookRequest
from tests.contracts.carrier_contract import CarrierContract

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vonage"
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


def fixture_body(scenario: str) -> bytes:
    return (FIXTURES / f"{scenario}.json").read_bytes()


def fixture_json(scenario: str) -> dict[str, Any]:
    return json.loads(fixture_body(scenario))  # type: ignore[no-any-return]


def vonage_token(
    body: bytes | None,
    *,
    secret: str = SIGNATURE_SECRET,
    iat: float | None = None,
    **claims: Any,
) -> str:
    """A webhook JWT as Vonage makes it (PyJWT, HS256). ``payload_hash`` covers ``body``."""
    payload: dict[str, Any] = {
        "iat": int(time.time()) if iat is None else iat,
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


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# -- the contract suite ----------------------------------------------------------------------


class TestVonageContract(CarrierContract):
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
    signs_url = False  # the JWT covers the body (payload_hash), not the URL
    fake_api_base_url = API_BASE

    def credentials(self) -> Mapping[str, Any]:
        return credentials(api_secret=API_SECRET)

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return scenario_request(scenario, kind)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return scenario_request(scenario, kind, secret="not-the-signature-secret-but-just-as-long-0123")

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
