"""The Quo (OpenPhone) adapter: the carrier contract suite plus Quo's own rules.

Fixtures in ``tests/fixtures/quo`` are signed here, at test time, with test keys: Standard
Webhooks headers for current-API payloads, ``openphone-signature`` for the ``legacy`` ones.
HTTP goes to ``responses`` stubs.
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
from urllib.parse import parse_qs

import marshmallow
import pytest
import responses

from carrier_adapters.base import CarrierAdapter
from carrier_adapters.quo import QuoCarrier
from carrier_adapters.quo.api import MAX_PAGES
from carrier_adapters.quo.webhooks import SIGNATURE_HEADERS, standard_signature, verify
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

FIXTURES = Fixtures("quo")
API_BASE = "https://quo-api.test"
MESSAGES_URL = f"{API_BASE}/v1/messages"
WEBHOOK_URL = "https://textback.example.com/webhooks/quo/acme-plumbing/voice"
WEBHOOK_SECRET = b"test-quo-webhook-key-32-bytes!!!"
LEGACY_SECRET = b"test-quo-legacy-signing-key"
WEBHOOK_KEY = "whsec_" + base64.b64encode(WEBHOOK_SECRET).decode()
LEGACY_KEY = base64.b64encode(LEGACY_SECRET).decode()
API_KEY = "test-quo-api-key-Zm9vYmFyYmF6"
CALLER, BUSINESS = "+12025550143", "+14155550100"
BODY = "Sorry we missed your call! This is Acme Plumbing. How can we help?"


def credentials(**changes: Any) -> dict[str, Any]:
    return {"api_key": API_KEY, "webhook_key": WEBHOOK_KEY, "legacy_signing_key": LEGACY_KEY, **changes}


fixture_body = FIXTURES.body


def b64_hmac(key: bytes, message: bytes) -> str:
    """HMAC-SHA256, Base64: computed here independently of the adapter's helpers."""
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def sign_standard(
    body: bytes, *, key: bytes = WEBHOOK_SECRET, at: float | None = None, webhook_id: str = "msg_2mN8eXc1"
) -> WebhookRequest:
    timestamp = str(int(time.time() if at is None else at))
    signature = b64_hmac(key, f"{webhook_id}.{timestamp}.".encode() + body)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }
    return WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=body)


def sign_legacy(body: bytes, *, key: bytes = LEGACY_SECRET, at: float | None = None) -> WebhookRequest:
    timestamp = str(int((time.time() if at is None else at) * 1000))  # Quo's example: milliseconds
    header = f"hmac;1;{timestamp};{b64_hmac(key, f'{timestamp}.'.encode() + body)}"
    headers = {"Content-Type": "application/json", "openphone-signature": header}
    return WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=body)


def signed(scenario: str, **kwargs: Any) -> WebhookRequest:
    """The scenario signed the way Quo signs its kind of webhook."""
    body = fixture_body(scenario)
    return sign_legacy(body, **kwargs) if "legacy" in scenario else sign_standard(body, **kwargs)


def message(**changes: Any) -> dict[str, Any]:
    """The message object of Quo's send-a-text-message response example, with our values."""
    data: dict[str, Any] = {
        "id": "ACpV6mS9cP",
        "to": [CALLER],
        "from": BUSINESS,
        "text": BODY,
        "phoneNumberId": "PNtoDbDhuz",
        "direction": "outgoing",
        "userId": "USu5AsEHuQ",
        "status": "queued",
        "createdAt": "2026-04-14T15:05:41.000Z",
        "updatedAt": "2026-04-14T15:05:41.000Z",
    }
    data.update(changes)
    return data


def quo_error(status: int) -> dict[str, Any]:
    """Quo's error body: no code, and ``errors`` echoing the input (here, the number)."""
    return {
        "message": "The input was invalid",
        "docs": "https://quo.com/docs",
        "title": "Bad Request" if status == 400 else f"HTTP {status}",
        "errors": [{"path": "/to/0", "message": "Expected E.164", "value": CALLER}],
        "trace": "6897907457496870895",
    }


@pytest.fixture
def adapter() -> QuoCarrier:
    return QuoCarrier(credentials(), api_base_url=API_BASE)


# -- the contract suite ----------------------------------------------------------------------


class TestQuoContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, MessagingContract,
    TimestampedSignatureContract, SignsBodyContract,
):
    """The generic carrier contract, fed with Quo's current and legacy payloads."""

    adapter_class = QuoCarrier
    secret_credentials = frozenset({"api_key", "webhook_key", "legacy_signing_key"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_call_missed": CallOutcome.NO_ANSWER,
        "voice_call_missed_with_voicemail": CallOutcome.VOICEMAIL,
        "voice_call_voicemail_completed": CallOutcome.VOICEMAIL,
        "voice_call_ringing": None,
        "voice_call_answered": None,
        "voice_call_completed_answered": None,
        "voice_call_completed_outgoing": None,
        "voice_legacy_call_completed_voicemail": CallOutcome.VOICEMAIL,
        "voice_legacy_call_completed_no_answer": CallOutcome.NO_ANSWER,
        "voice_legacy_call_completed_busy": CallOutcome.BUSY,
        "voice_legacy_call_completed_answered": None,
        "voice_legacy_call_completed_unknown_status": CallOutcome.UNKNOWN,
        "voice_legacy_call_ringing": None,
    }
    unknown_call_scenario = "voice_legacy_call_completed_unknown_status"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "ACmS4kQ7aN",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "media_count": 0,
            "received_at": datetime(2026, 4, 14, 15, 9, tzinfo=UTC),
        },
        "sms_inbound_legacy_stop": {"sender": CALLER, "recipient": BUSINESS, "body": "STOP"},
    }
    status_scenarios: Mapping[str, Mapping[str, Any]] = {
        "status_delivered": {
            "event_id": "EV4e6ea3f4d09b1498b08a845c03ac7e7f",
            "message_id": "ACpV6mS9cP",
            "status": DeliveryStatus.DELIVERED,
            "error_code": None,
        },
        "status_failed": {"status": DeliveryStatus.FAILED, "error_code": "30007"},
        "status_legacy_delivered": {"message_id": "ACpV6mS9cP", "status": DeliveryStatus.DELIVERED},
        "status_unknown": {"status": DeliveryStatus.UNKNOWN},
    }
    unknown_status_scenario = "status_unknown"
    signature_headers = SIGNATURE_HEADERS
    fake_api_base_url = API_BASE
    owned_numbers = (BUSINESS, "+14155550101")

    def _phone_numbers(self, http, key: str) -> None:  # type: ignore[no-untyped-def]
        """``GET /v1/phone-numbers`` as Quo answers it for a workspace whose key is ``key``."""
        numbers = [{"id": f"PN{i}", "number": n, "name": f"Line {i}", "users": []}
                   for i, n in enumerate(self.owned_numbers, start=1)]

        def answer(request):  # type: ignore[no-untyped-def]
            if request.headers.get("Authorization") != key:
                return 401, {}, json.dumps({"message": "Unauthorized", "title": "Unauthorized"})
            return 200, {"Content-Type": "application/json"}, json.dumps({"data": numbers})

        http.add_callback(responses.GET, f"{API_BASE}/v1/phone-numbers", callback=answer)

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        self._phone_numbers(http, API_KEY)

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        self._phone_numbers(http, "another-key")
        return adapter

    def credentials(self) -> Mapping[str, Any]:
        return credentials()

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(scenario)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(scenario, key=b"not-the-quo-key")

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        signed_now = sign_standard(body)
        headers = {**dict(signed_now.headers.items()), "content-type": content_type}
        return WebhookRequest.build(url=url, headers=headers, body=body)

    def stale_request(self, kind: str, scenario: str) -> WebhookRequest | None:
        return signed(scenario, at=time.time() - 600)

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
        else:
            http.add(responses.POST, MESSAGES_URL, json=body, status=status, headers=headers)

    def success_send(self) -> tuple[int, Any, Mapping[str, Any]]:
        return 202, {"data": message()}, {"message_id": "ACpV6mS9cP", "status": DeliveryStatus.QUEUED}

    def error_body(self, status: int) -> Any:
        return quo_error(status)


# -- signatures ------------------------------------------------------------------------------


def test_standard_webhooks_published_vector() -> None:
    # The Standard Webhooks / Svix reference vector (svix-webhooks library tests).
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = standard_signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}')
    assert signature == "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    request = WebhookRequest.build(
        url=WEBHOOK_URL,
        headers={
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        },
        body=b'{"test": 2432232314}',
    )
    verify(request, key, None, now=1614265330 + 10)  # one of several signatures matching is enough
    with pytest.raises(WebhookVerificationError):
        verify(request, key, None, now=1614265330 + 301)


def test_signature_with_another_version_prefix_is_refused(adapter: QuoCarrier) -> None:
    request = signed("voice_call_missed")
    value = request.headers["webhook-signature"].replace("v1,", "v1a,")
    headers = {**dict(request.headers.items()), "webhook-signature": value}
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=request.body))


def test_changing_the_webhook_id_breaks_the_signature(adapter: QuoCarrier) -> None:
    request = signed("voice_call_missed")
    headers = {**dict(request.headers.items()), "webhook-id": "msg_other"}
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=request.body))


def test_legacy_timestamp_in_seconds_is_accepted_too(adapter: QuoCarrier) -> None:
    body = fixture_body("voice_legacy_call_completed_no_answer")
    timestamp = str(int(time.time()))
    header = f"hmac;1;{timestamp};{b64_hmac(LEGACY_SECRET, f'{timestamp}.'.encode() + body)}"
    request = WebhookRequest.build(url=WEBHOOK_URL, headers={"openphone-signature": header}, body=body)
    adapter.verify_request(request)


@pytest.mark.parametrize("header", ["hmac;2;1;x", "sha256;1;1;x", "hmac;1;abc;x", "hmac;1;1"])
def test_malformed_legacy_header_is_refused(adapter: QuoCarrier, header: str) -> None:
    request = WebhookRequest.build(url=WEBHOOK_URL, headers={"openphone-signature": header}, body=b"{}")
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request)


def test_a_scheme_without_a_configured_key_is_refused() -> None:
    only_current = QuoCarrier(credentials(legacy_signing_key=None), api_base_url=API_BASE)
    only_legacy = QuoCarrier(credentials(webhook_key=None), api_base_url=API_BASE)
    only_current.verify_request(signed("voice_call_missed"))
    only_legacy.verify_request(signed("voice_legacy_call_completed_no_answer"))
    with pytest.raises(WebhookVerificationError):
        only_current.verify_request(signed("voice_legacy_call_completed_no_answer"))
    with pytest.raises(WebhookVerificationError):
        only_legacy.verify_request(signed("voice_call_missed"))


def test_credentials_need_a_webhook_key_of_either_kind() -> None:
    with pytest.raises(marshmallow.ValidationError):
        QuoCarrier(credentials(webhook_key=None, legacy_signing_key=None))
    with pytest.raises(marshmallow.ValidationError) as info:
        QuoCarrier(credentials(webhook_key="whsec_not base64!"))
    assert "webhook_key" in info.value.messages


# -- routing and parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        ("voice_call_missed", "voice"),
        ("voice_legacy_call_ringing", "voice"),
        ("sms_inbound", "sms"),
        ("sms_inbound_legacy_stop", "sms"),
        ("status_delivered", "status"),
        ("status_legacy_delivered", "status"),
        ("status_unknown", "status"),
    ],
)
def test_route_follows_the_event_type(adapter: QuoCarrier, scenario: str, kind: str) -> None:
    for posted_to in ("voice", "sms", "status"):
        assert adapter.route(posted_to, signed(scenario)) == kind


def test_missed_call_and_its_voicemail_are_one_call(adapter: QuoCarrier) -> None:
    missed = adapter.parse_call_event(signed("voice_call_missed"))
    voicemail = adapter.parse_call_event(signed("voice_call_voicemail_completed"))
    assert isinstance(missed, MissedCall) and isinstance(voicemail, MissedCall)
    assert missed.event_id == voicemail.event_id == "ACsXlF0aZ9"
    assert (missed.caller, missed.called) == (CALLER, BUSINESS)
    assert missed.occurred_at == datetime(2026, 4, 14, 15, 5, 12, tzinfo=UTC)
    assert (voicemail.caller, voicemail.called, voicemail.voicemail) == (CALLER, BUSINESS, True)


def test_legacy_missed_call_fields(adapter: QuoCarrier) -> None:
    event = adapter.parse_call_event(signed("voice_legacy_call_completed_voicemail"))
    assert event is not None
    assert (event.event_id, event.caller, event.called) == ("ACsXlF0", CALLER, BUSINESS)
    assert event.voicemail is True


@pytest.mark.parametrize(
    ("scenario", "direction", "event_id"),
    [
        ("voice_call_answered", "inbound", "ACsXlF0aZ9"),
        ("voice_call_completed_answered", "inbound", "ACsXlF0aZ9"),
        ("voice_legacy_call_completed_answered", "inbound", "ACeF0oZ3tV"),
    ],
)
def test_answered_calls(adapter: QuoCarrier, scenario: str, direction: str, event_id: str) -> None:
    answered = adapter.parse_answered_call(signed(scenario))
    assert isinstance(answered, AnsweredCall)
    assert (answered.customer, answered.direction, answered.event_id) == (CALLER, direction, event_id)


def test_answered_callback_by_the_business_is_outbound(adapter: QuoCarrier) -> None:
    doc = json.loads(fixture_body("voice_call_answered"))
    doc["data"]["resource"]["direction"] = "outgoing"
    answered = adapter.parse_answered_call(sign_standard(json.dumps(doc).encode()))
    assert answered is not None and answered.direction == "outbound" and answered.customer == CALLER


@pytest.mark.parametrize(
    "scenario", ["voice_call_missed", "voice_call_ringing", "voice_call_completed_outgoing"]
)
def test_unanswered_calls_are_not_answered(adapter: QuoCarrier, scenario: str) -> None:
    assert adapter.parse_answered_call(signed(scenario)) is None


def test_an_outgoing_call_missed_by_the_customer_is_not_texted(adapter: QuoCarrier) -> None:
    assert adapter.parse_call_event(signed("voice_call_completed_outgoing")) is None


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"type": "call.missed"}', b'{"type": "x", "data": {}}']
)
def test_malformed_webhook(adapter: QuoCarrier, body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(sign_standard(body))


def test_missed_call_without_an_id_is_malformed(adapter: QuoCarrier) -> None:
    doc = json.loads(fixture_body("voice_call_missed"))
    del doc["data"]["resource"]["id"]
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(sign_standard(json.dumps(doc).encode()))


def test_other_events_are_not_delivery_reports(adapter: QuoCarrier) -> None:
    contact = {
        "id": "EV8a2c0d738b4df58dcf4ec289a47e0b2b3",
        "apiVersion": "2026-03-30",
        "createdAt": "2026-04-14T15:20:00.000Z",
        "type": "contact.updated",
        "data": {"resource": {"id": "CT63ea1f0e1b2b0f2f7c8e9d10"}, "context": {}, "links": {}},
    }
    for scenario_body in (json.dumps(contact).encode(), fixture_body("sms_inbound")):
        with pytest.raises(UnsupportedEventError):
            adapter.parse_status(sign_standard(scenario_body))


def test_a_status_event_is_not_an_inbound_message(adapter: QuoCarrier) -> None:
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(signed("status_delivered"))


# -- sending and reconciliation --------------------------------------------------------------


def test_send_posts_content_from_and_to_with_the_bare_api_key(
    adapter: QuoCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, MESSAGES_URL, json={"data": message()}, status=202)
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY, status_callback_url="https://cb.example/s")
    request = http.calls[0].request
    assert request.headers["Authorization"] == API_KEY  # no "Bearer": Quo's API key header
    assert json.loads(request.body) == {"content": BODY, "from": BUSINESS, "to": [CALLER]}


def test_accepted_send_without_an_id_is_ambiguous(adapter: QuoCarrier, http: responses.RequestsMock) -> None:
    http.add(responses.POST, MESSAGES_URL, json={"data": {}}, status=202)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.ambiguous is True


def test_rate_limit_honours_retry_after(adapter: QuoCarrier, http: responses.RequestsMock) -> None:
    http.add(responses.POST, MESSAGES_URL, json=quo_error(429), status=429, headers={"Retry-After": "3"})
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.retry_after == 3.0


def test_find_sent_message_needs_a_phone_number_id(adapter: QuoCarrier) -> None:
    with pytest.raises(NotImplementedError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=datetime.now(UTC))


SENT_AFTER = datetime(2026, 4, 14, 15, 5, 40, tzinfo=UTC)


def test_find_sent_message_in_the_conversation(http: responses.RequestsMock) -> None:
    adapter = QuoCarrier(credentials(phone_number_id="PNtoDbDhuz"), api_base_url=API_BASE)
    page = {
        "data": [
            message(id="AC1", direction="incoming", text=BODY),
            message(id="AC2", text="something else"),
            message(id="AC3", createdAt="2026-04-14T15:00:00.000Z"),
            message(status="delivered"),
        ],
        "nextPageToken": None,
    }
    http.add(responses.GET, MESSAGES_URL, json=page)
    found = adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=SENT_AFTER)
    assert found is not None and (found.message_id, found.status) == ("ACpV6mS9cP", DeliveryStatus.DELIVERED)
    query = parse_qs(http.calls[0].request.url.split("?", 1)[1])
    assert query["phoneNumberId"] == ["PNtoDbDhuz"] and query["participants"] == [CALLER]
    assert query["createdAfter"] == ["2026-04-14T15:04:40Z"]


def test_find_sent_message_none_and_give_up(http: responses.RequestsMock) -> None:
    adapter = QuoCarrier(credentials(phone_number_id="PNtoDbDhuz"), api_base_url=API_BASE)
    http.add(responses.GET, MESSAGES_URL, json={"data": [], "nextPageToken": None})
    assert adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=SENT_AFTER) is None
    for n in range(MAX_PAGES):
        http.add(responses.GET, MESSAGES_URL, json={"data": [message(text="x")], "nextPageToken": f"t{n}"})
    with pytest.raises(TransientProviderError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=SENT_AFTER)
