"""The Dialpad adapter: the carrier contract suite plus Dialpad's own rules.

Fixtures in ``tests/fixtures/dialpad`` are the JSON events; Dialpad sends each as an HS256 JWT,
so the tests encode them at test time with a test secret using PyJWT (a test dependency),
which also cross-checks the adapter's hand-written verifier. HTTP goes to ``responses`` stubs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
import marshmallow
import pytest
import responses

from carrier_adapters.base import CarrierAdapter
from carrier_adapters.dialpad import DialpadCarrier
from connector.kernel.errors import (
    MalformedWebhookError,
    RateLimitedError,
    TransientProviderError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.events import AnsweredCall, CallOutcome, DeliveryStatus, MissedCall
from connector.kernel.http import WebhookRequest
from tests.carrier_adapters.conftest import Fixtures
from tests.contracts.carrier_contract import (
    CallSourceContract,
    CarrierContract,
    MessagingContract,
    SignsBodyContract,
    TimestampedSignatureContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract

FIXTURES = Fixtures("dialpad")
API_BASE = "https://dialpad-api.test"
SMS_URL = f"{API_BASE}/api/v2/sms"
WEBHOOK_URL = "https://textback.example.com/webhooks/dialpad/acme-plumbing/voice"
SECRET = "test-dialpad-webhook-secret-Zm9vYmFyYmF6cXV4"
CALLER, BUSINESS = "+12025550143", "+14155550100"
BODY = "Sorry we missed your call! This is Acme Plumbing. How can we help?"
MESSAGE_ID = "4611686018427387"


def credentials(**changes: Any) -> dict[str, Any]:
    return {
        "api_key": "test-dialpad-api-key-Zm9vYmFy",
        "webhook_secret": SECRET,
        "user_id": "5836109287653376",
        **changes,
    }


def claims(scenario: str) -> dict[str, Any]:
    document: dict[str, Any] = FIXTURES.json(scenario)
    return document


def as_jwt(
    payload: Mapping[str, Any],
    *,
    secret: str = SECRET,
    iat: float | None = None,
    exp: float | None = None,
) -> bytes:
    """The event as Dialpad posts it: a compact HS256 JWT, here with ``iat`` and ``exp`` (both
    required; ``exp`` defaults to a minute after ``iat``)."""
    issued = int(time.time() if iat is None else iat)
    expires = int(issued + 60 if exp is None else exp)
    return jwt.encode({**payload, "iat": issued, "exp": expires}, secret, algorithm="HS256").encode()


def request(body: bytes) -> WebhookRequest:
    return WebhookRequest.build(url=WEBHOOK_URL, headers={"Content-Type": "application/jwt"}, body=body)


def signed(scenario: str, **kwargs: Any) -> WebhookRequest:
    return request(as_jwt(claims(scenario), **kwargs))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def adapter() -> DialpadCarrier:
    return DialpadCarrier(credentials(), api_base_url=API_BASE)


# -- the contract suite ----------------------------------------------------------------------


class TestDialpadContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, MessagingContract,
    TimestampedSignatureContract, SignsBodyContract,
):
    """The generic carrier contract, fed with Dialpad's fixtures."""

    adapter_class = DialpadCarrier
    secret_credentials = frozenset({"api_key", "webhook_secret"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_call_ringing": None,
        "voice_call_connected": None,
        "voice_call_hangup_answered": None,
        "voice_call_hangup_unanswered": None,
        "voice_call_outbound_missed": None,
        "voice_call_unknown_state_in_progress": None,
        "voice_call_missed": CallOutcome.NO_ANSWER,
        "voice_call_voicemail": CallOutcome.VOICEMAIL,
        "voice_call_missed_department_leg": CallOutcome.NO_ANSWER,
        "voice_call_unknown_state": CallOutcome.UNKNOWN,
    }
    unknown_call_scenario = "voice_call_unknown_state"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "5497110893150208",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "media_count": 0,
            "received_at": datetime(2026, 4, 14, 15, 9, tzinfo=UTC),
        },
        "sms_inbound_stop": {"sender": CALLER, "body": "STOP"},
    }
    status_scenarios: Mapping[str, Mapping[str, Any]] = {
        "status_delivered": {
            "event_id": f"{MESSAGE_ID}:delivered",
            "message_id": MESSAGE_ID,
            "status": DeliveryStatus.DELIVERED,
        },
        "status_failed": {"status": DeliveryStatus.FAILED},
        "status_unknown": {"status": DeliveryStatus.UNKNOWN},
    }
    unknown_status_scenario = "status_unknown"
    fake_api_base_url = API_BASE

    def _company(self, http, key: str) -> None:  # type: ignore[no-untyped-def]
        """``GET /api/v2/company`` for a company whose API key is ``key``."""
        def answer(request):  # type: ignore[no-untyped-def]
            if request.headers.get("Authorization") != f"Bearer {key}":
                return 401, {}, json.dumps({"error": {"code": 401, "message": "Unauthorized"}})
            return 200, {}, json.dumps({"id": "4972992849059840", "name": "Acme Plumbing"})

        http.add_callback(responses.GET, f"{API_BASE}/api/v2/company", callback=answer)

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        self._company(http, credentials()["api_key"])

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        self._company(http, "another-key")
        return adapter

    def credentials(self) -> Mapping[str, Any]:
        return credentials()

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(scenario)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(scenario, secret="not-the-dialpad-secret-0123456789ab")

    def scenario_body(self, kind: str, scenario: str) -> tuple[bytes, str]:
        """The event's JSON: :meth:`sign_body` makes the JWT."""
        return json.dumps(claims(scenario)).encode(), "application/json"

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        """The JWT whose claims are ``body``: with fresh ``iat``/``exp`` when it is a JSON object,
        else the bytes as they are (signed all the same, to reach the claims parser)."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict):
            token = as_jwt(document)
        else:
            header = b64url(b'{"alg":"HS256","typ":"JWT"}')
            signing_input = f"{header}.{b64url(body)}"
            mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
            token = f"{signing_input}.{b64url(mac)}".encode()
        return WebhookRequest.build(url=url, headers={"Content-Type": "application/jwt"}, body=token)

    def unsigned_request(self, kind: str, scenario: str) -> WebhookRequest:
        """The event as plain JSON, as Dialpad posts it to a webhook without a secret."""
        return request(json.dumps(claims(scenario)).encode())

    def stale_request(self, kind: str, scenario: str) -> WebhookRequest | None:
        return signed(scenario, iat=time.time() - 600)

    def stub_send(
        self,
        http: responses.RequestsMock,
        adapter: CarrierAdapter,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(body, BaseException):
            http.add(responses.POST, SMS_URL, body=body)
        else:
            http.add(responses.POST, SMS_URL, json=body, status=status, headers=headers)

    def success_send(self) -> tuple[int, Any, Mapping[str, Any]]:
        body = {
            "id": int(MESSAGE_ID),
            "created_date": 1776179141000,
            "direction": "outbound",
            "from_number": BUSINESS,
            "to_numbers": [CALLER],
            "message_status": "pending",
            "device_type": "public_api",
            "target_id": 5836109287653376,
            "target_type": "user",
        }
        return 200, body, {"message_id": MESSAGE_ID, "status": DeliveryStatus.QUEUED}

    def error_body(self, status: int) -> Any:
        return {"error": {"code": status, "message": f"Cannot send to {CALLER}", "errors": []}}


# -- the JWT ---------------------------------------------------------------------------------


def test_hand_verified_claims_equal_pyjwts(adapter: DialpadCarrier) -> None:
    body = as_jwt(claims("voice_call_missed"))
    expected = jwt.decode(body, SECRET, algorithms=["HS256"])
    event = adapter.parse_call_event(request(body))
    assert event is not None and dict(event.raw) == expected


@pytest.mark.parametrize("alg", ["none", "HS512", "RS256"])
def test_only_hs256_is_accepted(adapter: DialpadCarrier, alg: str) -> None:
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps({**claims("voice_call_missed"), "iat": int(time.time())}).encode())
    # Even a correct HS256 MAC over the forged header must not pass.
    token = jwt.encode({"x": 1}, SECRET, algorithm="HS256").split(".")[2]
    for signature in ("", token):
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(request(f"{header}.{payload}.{signature}".encode()))


@pytest.mark.parametrize("body", [b"", b"a.b", b"\xff.\xff.\xff", b"e30.e30.e30", b"W10.W10.x"])
def test_garbage_is_not_a_jwt(adapter: DialpadCarrier, body: bytes) -> None:
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request(body))


def test_a_non_canonical_signature_spelling_is_refused(adapter: DialpadCarrier) -> None:
    body = as_jwt(claims("voice_call_missed")).decode()
    head, last = body[:-1], body[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # A 32-byte MAC leaves 2 spare bits in the last character: flip them only.
    twin = alphabet[alphabet.index(last) ^ 1]
    signature = body.rsplit(".", 1)[1]
    pad = "=" * (-len(signature) % 4)
    assert base64.urlsafe_b64decode(signature + pad) == base64.urlsafe_b64decode(signature[:-1] + twin + pad)
    adapter.verify_request(request(body.encode()))
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request((head + twin).encode()))


def test_expired_token_is_refused(adapter: DialpadCarrier) -> None:
    payload = {**claims("voice_call_missed"), "exp": int(time.time()) - 120}
    body = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request(body.encode()))


@pytest.mark.parametrize("missing", [("iat",), ("exp",), ("iat", "exp")])
def test_token_without_times_is_refused(adapter: DialpadCarrier, missing: tuple[str, ...]) -> None:
    # Found by an outside probe: a token without iat/exp was accepted forever (replayable).
    now = int(time.time())
    payload = {**claims("voice_call_missed"), "iat": now, "exp": now + 60}
    for name in missing:
        del payload[name]
    body = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(WebhookVerificationError, match="has no"):
        adapter.verify_request(request(body.encode()))


@pytest.mark.parametrize(
    ("iat_age", "exp_in", "accepted"),
    [
        (0, 60, True),
        (299, -59, True),  # iat nearly 5 minutes old, exp passed within the 60 s leeway
        (-299, 600, True),  # a sender clock a little ahead
        (301, 600, False),  # iat too old, however far exp is
        (-301, 600, False),
        (0, -61, False),  # exp past the leeway
    ],
)
def test_token_times_follow_the_clock(
    adapter: DialpadCarrier, frozen_clock: Any, iat_age: int, exp_in: int, accepted: bool
) -> None:
    from connector.kernel import clock

    now = clock.timestamp()
    body = as_jwt(claims("voice_call_missed"), iat=now - iat_age, exp=now + exp_in)
    if accepted:
        adapter.verify_request(request(body))
    else:
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(request(body))
    frozen_clock.shift(3600)  # an hour later the same token is refused
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request(body))


def test_iat_that_is_not_a_number_is_refused(adapter: DialpadCarrier) -> None:
    body = jwt.encode({**claims("voice_call_missed"), "iat": "yesterday"}, SECRET, algorithm="HS256")
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request(body.encode()))


def test_parse_refuses_an_unverified_body(adapter: DialpadCarrier) -> None:
    forged = signed("voice_call_missed", secret="someone-elses-secret-0123456789abcdef")
    with pytest.raises(WebhookVerificationError):
        adapter.parse_call_event(forged)


def test_credentials_need_a_sender() -> None:
    with pytest.raises(marshmallow.ValidationError):
        DialpadCarrier(credentials(user_id=None))
    with pytest.raises(marshmallow.ValidationError):
        DialpadCarrier(credentials(user_id=None, sender_group_id="4798204516319232"))
    group = {"sender_group_id": "4798204516319232", "sender_group_type": "department"}
    DialpadCarrier(credentials(user_id=None, **group))


# -- routing and parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [("voice_call_missed", "voice"), ("sms_inbound", "sms"), ("status_delivered", "status")],
)
def test_route_follows_the_event(adapter: DialpadCarrier, scenario: str, kind: str) -> None:
    for posted_to in ("voice", "sms", "status"):
        assert adapter.route(posted_to, signed(scenario)) == kind


def test_missed_call_fields(adapter: DialpadCarrier) -> None:
    event = adapter.parse_call_event(signed("voice_call_missed"))
    assert isinstance(event, MissedCall)
    assert event.event_id == "6283010457419776"
    assert (event.caller, event.called) == (CALLER, BUSINESS)
    assert event.occurred_at == datetime(2026, 4, 14, 15, 5, 12, tzinfo=UTC)  # date_started, ms
    assert event.ring_seconds == 21.0


def test_department_legs_share_the_entry_point_call(adapter: DialpadCarrier) -> None:
    event = adapter.parse_call_event(signed("voice_call_missed_department_leg"))
    assert event is not None and event.event_id == "6283010457419700"


def test_answered_call_is_reported_from_date_connected(adapter: DialpadCarrier) -> None:
    answered = adapter.parse_answered_call(signed("voice_call_connected"))
    assert isinstance(answered, AnsweredCall)
    assert (answered.customer, answered.direction) == (CALLER, "inbound")
    assert answered.event_id == "6283010457419776"
    assert answered.occurred_at == datetime(2026, 4, 14, 15, 5, 18, 100000, tzinfo=UTC)


def test_answered_outbound_call(adapter: DialpadCarrier) -> None:
    payload = {**claims("voice_call_outbound_missed"), "state": "connected", "date_connected": 1776179720000}
    answered = adapter.parse_answered_call(request(as_jwt(payload)))
    assert answered is not None and answered.direction == "outbound" and answered.customer == CALLER


@pytest.mark.parametrize(
    "scenario", ["voice_call_missed", "voice_call_ringing", "voice_call_hangup_unanswered"]
)
def test_unanswered_calls_are_not_answered(adapter: DialpadCarrier, scenario: str) -> None:
    assert adapter.parse_answered_call(signed(scenario)) is None


def test_call_event_without_call_id_is_malformed(adapter: DialpadCarrier) -> None:
    payload = claims("voice_call_missed")
    del payload["call_id"]
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(request(as_jwt(payload)))


def test_outbound_sms_is_not_an_inbound_text(adapter: DialpadCarrier) -> None:
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(signed("status_delivered"))


# -- sending ---------------------------------------------------------------------------------


def test_send_posts_the_sms_api_payload_with_a_bearer_key(
    adapter: DialpadCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, SMS_URL, json={"id": 1, "message_status": "pending"})
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY, status_callback_url="https://cb.example/s")
    sent = http.calls[0].request
    assert sent.headers["Authorization"] == "Bearer test-dialpad-api-key-Zm9vYmFy"
    assert json.loads(sent.body) == {
        "to_numbers": [CALLER],
        "text": BODY,
        "from_number": BUSINESS,
        "infer_country_code": False,
        "user_id": "5836109287653376",
    }


def test_send_on_behalf_of_a_group(http: responses.RequestsMock) -> None:
    adapter = DialpadCarrier(
        credentials(user_id=None, sender_group_id="4798204516319232", sender_group_type="department"),
        api_base_url=API_BASE,
    )
    http.add(responses.POST, SMS_URL, json={"id": 1, "message_status": "pending"})
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    payload = json.loads(http.calls[0].request.body)
    assert payload["sender_group_id"] == "4798204516319232"
    assert payload["sender_group_type"] == "department"
    assert "user_id" not in payload


def test_rate_limit_honours_retry_after(adapter: DialpadCarrier, http: responses.RequestsMock) -> None:
    http.add(responses.POST, SMS_URL, json={}, status=429, headers={"Retry-After": "12"})
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.retry_after == 12.0


def test_accepted_send_without_an_id_is_ambiguous(
    adapter: DialpadCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, SMS_URL, json=["unexpected"])
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.ambiguous is True


def test_find_sent_message_is_not_available(adapter: DialpadCarrier) -> None:
    with pytest.raises(NotImplementedError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=datetime.now(UTC))
