"""The Aircall adapter: the carrier contract suite plus Aircall's own rules.

Aircall signs nothing: its "signature" is the ``token`` field of the body. The fixtures in
``tests/fixtures/aircall`` hold a placeholder; the tests put the test webhook token (or the
messaging token, for callbacks) in at test time. HTTP goes to ``responses`` stubs.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import marshmallow
import pytest
import responses

from carrier_adapters.aircall import AircallCarrier
from carrier_adapters.base import CarrierAdapter
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
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract

FIXTURES = Fixtures("aircall")
API_BASE = "https://aircall-api.test"
NUMBER_ID = "1284757"
SEND_URL = f"{API_BASE}/v1/numbers/{NUMBER_ID}/messages/send"
WEBHOOK_URL = "https://textback.example.com/webhooks/aircall/acme-plumbing/voice"
WEBHOOK_TOKEN = "test-aircall-webhook-token-45XXYYZZa08"
MESSAGING_TOKEN = "test-aircall-messaging-token-cebcaac65"
CALLER, BUSINESS = "+12025550143", "+14155550100"
SENT_ID = "abcdSMc6Dc8ea2bc71ab19102c3de4f60ba18aa"
BODY = "Sorry we missed your call! This is Acme Plumbing. How can we help?"


def credentials(**changes: Any) -> dict[str, Any]:
    return {
        "api_id": "test-aircall-api-id",
        "api_token": "test-aircall-api-token-Zm9vYmFy",
        "number_id": NUMBER_ID,
        "webhook_token": WEBHOOK_TOKEN,
        "messaging_token": MESSAGING_TOKEN,
        **changes,
    }


def fixture(scenario: str) -> dict[str, Any]:
    document: dict[str, Any] = FIXTURES.json(scenario)
    return document


def request_for(document: Mapping[str, Any]) -> WebhookRequest:
    body = json.dumps(document, ensure_ascii=False).encode()
    return WebhookRequest.build(url=WEBHOOK_URL, headers={"Content-Type": "application/json"}, body=body)


def signed(scenario: str, token: str | None = None) -> WebhookRequest:
    """The scenario with its token: the messaging token for callbacks, else the webhook's."""
    document = fixture(scenario)
    document["token"] = token or (MESSAGING_TOKEN if "event_name" in document else WEBHOOK_TOKEN)
    return request_for(document)


def sent_message(**changes: Any) -> dict[str, Any]:
    """The send response of Aircall's help-center example, with our numbers."""
    message: dict[str, Any] = {
        "id": SENT_ID,
        "status": "pending",
        "direct_link": f"https://api.aircall.io/v1/numbers/{NUMBER_ID}/messages/{SENT_ID}",
        "direction": "outbound",
        "created_at": 1722758201825,
        "sent_at": 1722758201825,
        "updated_at": 1722758201825,
        "raw_digits": "12025550143",
        "number": {"id": int(NUMBER_ID), "direct_link": f"https://api.aircall.io/v1/numbers/{NUMBER_ID}"},
    }
    message.update(changes)
    return message


@pytest.fixture
def adapter() -> AircallCarrier:
    return AircallCarrier(credentials(), api_base_url=API_BASE)


# -- the contract suite ----------------------------------------------------------------------


class TestAircallContract(CarrierContract, CarrierSetupContract, CallSourceContract, MessagingContract):
    """The generic carrier contract, fed with Aircall's fixtures."""

    adapter_class = AircallCarrier
    secret_credentials = frozenset({"api_token", "webhook_token", "messaging_token"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_call_created": None,
        "voice_call_answered": None,
        "voice_call_ended_answered": None,
        "voice_call_hungup_unanswered": None,
        "voice_call_ended_outbound_unanswered": None,
        "voice_call_ended_agents_did_not_answer": CallOutcome.NO_ANSWER,
        "voice_call_ended_no_available_agent": CallOutcome.NO_ANSWER,
        "voice_call_ended_out_of_opening_hours": CallOutcome.AFTER_HOURS,
        "voice_call_ended_out_of_opening_hours_voicemail": CallOutcome.AFTER_HOURS,
        "voice_call_ended_voicemail": CallOutcome.VOICEMAIL,
        "voice_call_ended_short_abandoned": CallOutcome.CANCELED,
        "voice_call_ended_abandoned_in_ivr": CallOutcome.CANCELED,
        "voice_call_ended_anonymous": CallOutcome.NO_ANSWER,
        "voice_call_ended_unknown_reason": CallOutcome.UNKNOWN,
    }
    unknown_call_scenario = "voice_call_ended_unknown_reason"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "1776179339817pqnihpvazdyw6336",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "media_count": 0,
            "received_at": datetime(2026, 4, 14, 15, 9, tzinfo=UTC),
        },
        "sms_inbound_callback_stop": {"sender": CALLER, "recipient": BUSINESS, "body": "STOP"},
    }
    status_scenarios: Mapping[str, Mapping[str, Any]] = {
        "status_delivered": {
            "event_id": f"{SENT_ID}:delivered",
            "message_id": SENT_ID,
            "status": DeliveryStatus.DELIVERED,
            "error_code": None,
        },
        "status_callback_failed": {"status": DeliveryStatus.FAILED, "error_code": "30007"},
        "status_unknown": {"status": DeliveryStatus.UNKNOWN},
    }
    unknown_status_scenario = "status_unknown"
    fake_api_base_url = API_BASE
    owned_numbers = (BUSINESS, "+14155550101", "+14155550102")

    def _account(self, http, api_token: str) -> None:  # type: ignore[no-untyped-def]
        """Aircall's ping and numbers list (one number per page, to page) for ``api_token``."""
        auth = "Basic " + base64.b64encode(f"test-aircall-api-id:{api_token}".encode()).decode()
        numbers = [{"id": 1000 + i, "name": f"Line {i}", "digits": f"+1 415-555-{n[-4:]}"}
                   for i, n in enumerate(self.owned_numbers)]

        def answer(request):  # type: ignore[no-untyped-def]
            if request.headers.get("Authorization") != auth:
                return 401, {}, json.dumps({"error": "Unauthorized", "troubleshoot": "..."})
            if request.url.endswith("/v1/ping"):
                return 200, {}, json.dumps({"ping": "pong"})
            page = int(parse_qs(urlsplit(request.url).query)["page"][0])
            more = page < len(numbers)
            meta = {"count": 1, "total": len(numbers), "current_page": page, "per_page": 1,
                    "next_page_link": f"{API_BASE}/v1/numbers?page={page + 1}" if more else None}
            return 200, {}, json.dumps({"numbers": numbers[page - 1:page], "meta": meta})

        http.add_callback(responses.GET, f"{API_BASE}/v1/ping", callback=answer)
        http.add_callback(responses.GET, re.compile(rf"{re.escape(API_BASE)}/v1/numbers\?.*"),
                          callback=answer)

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        self._account(http, credentials()["api_token"])

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        self._account(http, "another-token")
        return adapter

    def credentials(self) -> Mapping[str, Any]:
        return credentials()

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(scenario)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(scenario, token="45XXYYZZa08-not-ours")

    def scenario_body(self, kind: str, scenario: str) -> tuple[bytes, str]:
        """The event without its ``token``: :meth:`sign_body` puts it in."""
        document = fixture(scenario)
        document.pop("token", None)
        return json.dumps(document, ensure_ascii=False).encode(), "application/json"

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        """The body with our ``token`` in it, when it is a JSON object (Aircall's only
        credential); any other body goes as it is, unsigned."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict):
            document["token"] = MESSAGING_TOKEN if "event_name" in document else WEBHOOK_TOKEN
            body = json.dumps(document, ensure_ascii=False).encode()
        return WebhookRequest.build(url=url, headers={"Content-Type": content_type}, body=body)

    def unsigned_request(self, kind: str, scenario: str) -> WebhookRequest:
        """The event without its ``token`` field: Aircall's only credential."""
        document = fixture(scenario)
        document.pop("token", None)
        return request_for(document)

    def stub_send(
        self,
        http: responses.RequestsMock,
        adapter: CarrierAdapter,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(body, BaseException):
            http.add(responses.POST, SEND_URL, body=body)
        else:
            http.add(responses.POST, SEND_URL, json=body, status=status, headers=headers)

    def success_send(self) -> tuple[int, Any, Mapping[str, Any]]:
        return 200, sent_message(), {"message_id": SENT_ID, "status": DeliveryStatus.QUEUED}

    def error_body(self, status: int) -> Any:
        return {"error": f"HTTP {status}", "troubleshoot": f"Could not send to {CALLER}"}


# -- the token -------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, 42, ""])
def test_a_token_that_is_not_a_string_is_refused(adapter: AircallCarrier, token: object) -> None:
    document = fixture("voice_call_ended_agents_did_not_answer")
    document["token"] = token
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request_for(document))


@pytest.mark.parametrize("body", [b"not json", b"[\"token\"]", b""])
def test_a_body_that_is_not_an_event_is_refused(adapter: AircallCarrier, body: bytes) -> None:
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(WebhookRequest.build(url=WEBHOOK_URL, body=body))


def test_either_configured_token_is_accepted_and_only_those(adapter: AircallCarrier) -> None:
    adapter.verify_request(signed("voice_call_ended_voicemail", token=MESSAGING_TOKEN))
    adapter.verify_request(signed("sms_inbound_callback_stop", token=WEBHOOK_TOKEN))
    without_messaging = AircallCarrier(credentials(messaging_token=None), api_base_url=API_BASE)
    with pytest.raises(WebhookVerificationError):
        without_messaging.verify_request(signed("sms_inbound_callback_stop", token=MESSAGING_TOKEN))


def test_short_tokens_are_refused_in_the_credentials() -> None:
    with pytest.raises(marshmallow.ValidationError):
        AircallCarrier(credentials(webhook_token="abc"))


# -- routing and parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        ("voice_call_ended_voicemail", "voice"),
        ("voice_call_created", "voice"),
        ("sms_inbound", "sms"),
        ("sms_inbound_callback_stop", "sms"),
        ("status_delivered", "status"),
        ("status_callback_failed", "status"),
    ],
)
def test_route_follows_the_event_name(adapter: AircallCarrier, scenario: str, kind: str) -> None:
    for posted_to in ("voice", "sms", "status"):
        assert adapter.route(posted_to, signed(scenario)) == kind


def test_missed_call_fields(adapter: AircallCarrier) -> None:
    event = adapter.parse_call_event(signed("voice_call_ended_agents_did_not_answer"))
    assert isinstance(event, MissedCall)
    assert event.event_id == "1893254503"
    assert (event.caller, event.called, event.caller_raw) == (CALLER, BUSINESS, "+1 202-555-0143")
    assert event.occurred_at == datetime(2026, 4, 14, 15, 5, 12, tzinfo=UTC)  # started_at
    assert (event.ring_seconds, event.voicemail) == (21.0, False)


def test_after_hours_with_a_voicemail_stays_after_hours_and_flags_it(adapter: AircallCarrier) -> None:
    event = adapter.parse_call_event(signed("voice_call_ended_out_of_opening_hours_voicemail"))
    assert event is not None
    assert (event.outcome, event.voicemail) == (CallOutcome.AFTER_HOURS, True)


def test_hungup_is_left_to_call_ended(adapter: AircallCarrier) -> None:
    hungup = adapter.parse_call_event(signed("voice_call_hungup_unanswered"))
    ended = adapter.parse_call_event(signed("voice_call_ended_agents_did_not_answer"))
    assert hungup is None and ended is not None  # same call id 1893254503


def test_withheld_caller_id_gives_no_caller(adapter: AircallCarrier) -> None:
    event = adapter.parse_call_event(signed("voice_call_ended_anonymous"))
    assert event is not None and event.caller is None


@pytest.mark.parametrize("scenario", ["voice_call_answered", "voice_call_ended_answered"])
def test_answered_calls(adapter: AircallCarrier, scenario: str) -> None:
    answered = adapter.parse_answered_call(signed(scenario))
    assert isinstance(answered, AnsweredCall)
    assert (answered.customer, answered.direction, answered.event_id) == (CALLER, "inbound", "1893254502")
    assert answered.occurred_at == datetime(2026, 4, 14, 15, 5, 18, tzinfo=UTC)


def test_answered_callback_is_outbound(adapter: AircallCarrier) -> None:
    document = fixture("voice_call_ended_outbound_unanswered")
    document["data"]["answered_at"] = 1776179490
    document["token"] = WEBHOOK_TOKEN
    answered = adapter.parse_answered_call(request_for(document))
    assert answered is not None and answered.direction == "outbound"


@pytest.mark.parametrize(
    "scenario", ["voice_call_ended_voicemail", "voice_call_created", "voice_call_ended_outbound_unanswered"]
)
def test_unanswered_calls_are_not_answered(adapter: AircallCarrier, scenario: str) -> None:
    assert adapter.parse_answered_call(signed(scenario)) is None


def test_call_without_an_id_is_malformed(adapter: AircallCarrier) -> None:
    document = fixture("voice_call_ended_voicemail")
    del document["data"]["id"]
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(request_for(document))


def test_callback_times_are_milliseconds(adapter: AircallCarrier) -> None:
    message = adapter.parse_inbound_message(signed("sms_inbound_callback_stop"))
    assert message.received_at == datetime(2026, 4, 14, 15, 11, 41, 825000, tzinfo=UTC)


def test_other_events_are_not_delivery_reports(adapter: AircallCarrier) -> None:
    user_event = {
        "resource": "user",
        "event": "user.opened.v2",
        "timestamp": 1776179100,
        "token": WEBHOOK_TOKEN,
        "data": {"id": 456, "availability_status": "available"},
    }
    for request in (request_for(user_event), signed("sms_inbound")):
        with pytest.raises(UnsupportedEventError):
            adapter.parse_status(request)


def test_a_status_event_is_not_an_inbound_message(adapter: AircallCarrier) -> None:
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(signed("status_delivered"))


# -- sending ---------------------------------------------------------------------------------


def test_send_posts_to_and_body_with_basic_auth(
    adapter: AircallCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, SEND_URL, json=sent_message())
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY, status_callback_url="https://cb.example/s")
    request = http.calls[0].request
    assert request.headers["Authorization"].startswith("Basic ")
    assert json.loads(request.body) == {"to": CALLER, "body": BODY}


def test_rate_limit_waits_until_the_reset_header(
    adapter: AircallCarrier, http: responses.RequestsMock
) -> None:
    reset = str(int(time.time()) + 42)
    headers = {"X-AircallApi-Reset": reset}
    http.add(responses.POST, SEND_URL, json={"error": "Too many requests"}, status=429, headers=headers)
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert 40 <= info.value.retry_after <= 42


def test_rate_limit_with_a_past_reset_uses_the_default(
    adapter: AircallCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, SEND_URL, json={}, status=429, headers={"X-AircallApi-Reset": "1000"})
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.retry_after == 60.0


def test_accepted_send_without_an_id_is_ambiguous(
    adapter: AircallCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, SEND_URL, json={"status": "pending"})
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.ambiguous is True


def test_find_sent_message_is_not_available(adapter: AircallCarrier) -> None:
    with pytest.raises(NotImplementedError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=datetime.now(UTC))
