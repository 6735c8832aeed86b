"""Zoom Phone: the carrier contract for a call source that sends no texts, and Zoom's quirks.

Fixtures in ``tests/fixtures/zoom`` are signed here, at test time, with a test secret token
(``x-zm-signature``: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from carrier_adapters import CARRIERS
from carrier_adapters.base import HANDSHAKE
from carrier_adapters.zoom import ZoomCarrier
from connector.kernel import clock
from connector.kernel.errors import (
    MalformedWebhookError,
    PermanentProviderError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.events import AnsweredCall, CallOutcome, MissedCall
from connector.kernel.http import WebhookRequest
from connector.kernel.signing import hmac_hex
from tests.carrier_adapters.conftest import Fixtures
from tests.contracts.carrier_contract import (
    CallSourceContract,
    CarrierContract,
    SignsBodyContract,
    TimestampedSignatureContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract

FIXTURES = Fixtures("zoom")
fixture_body = FIXTURES.body
SECRET = "test-zoom-secret-token-4f2a9c"
CALLER = "+12025550143"
BUSINESS = "+14155550100"
URL = "https://hooks.example.test/webhooks/zoom/acme/voice"


def credentials() -> dict[str, Any]:
    return {"secret_token": SECRET}


def signed(
    body: bytes, *, url: str = URL, secret: str = SECRET, timestamp: int | None = None
) -> WebhookRequest:
    """``body`` as Zoom posts it, signed with ``secret`` at ``timestamp`` (now by default)."""
    stamp = str(int(clock.timestamp()) if timestamp is None else timestamp)
    signature = "v0=" + hmac_hex(secret, f"v0:{stamp}:".encode() + body)
    headers = {"Content-Type": "application/json", "x-zm-signature": signature,
               "x-zm-request-timestamp": stamp}
    return WebhookRequest.build(url=url, headers=headers, body=body)


@pytest.fixture
def adapter() -> ZoomCarrier:
    return ZoomCarrier(credentials())


class TestZoomContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, TimestampedSignatureContract, SignsBodyContract
):
    """The generic contract for a source that reports calls and sends no texts."""

    adapter_class = ZoomCarrier
    secret_credentials = frozenset({"secret_token"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_callee_ringing": None,
        "voice_callee_missed": CallOutcome.NO_ANSWER,
        "voice_callee_missed_no_result": CallOutcome.NO_ANSWER,
        "voice_callee_missed_caller_cancel": CallOutcome.CANCELED,
        "voice_callee_missed_unknown_result": CallOutcome.UNKNOWN,
        "voice_callee_rejected": CallOutcome.REJECTED,
        "voice_callee_answered": None,
        "voice_callee_ended": None,
        "voice_caller_connected": None,
        "voice_caller_ended": None,
    }
    unknown_call_scenario = "voice_callee_missed_unknown_result"
    signature_headers = ("x-zm-signature", "x-zm-request-timestamp")

    def credentials(self) -> Mapping[str, Any]:
        return credentials()

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario))

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario), secret="not-the-secret-token")

    def stale_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario), timestamp=int(clock.timestamp()) - 301)

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        return signed(body, url=url)


def test_is_registered_as_a_call_source() -> None:
    assert CARRIERS["zoom"] is ZoomCarrier
    assert ZoomCarrier.sends_sms is False


def test_missed_call_fields(adapter: ZoomCarrier) -> None:
    event = adapter.parse_call_event(signed(fixture_body("voice_callee_missed")))
    assert isinstance(event, MissedCall)
    assert (event.event_id, event.caller, event.called) == ("7219573028376041462", CALLER, BUSINESS)
    assert event.occurred_at == datetime(2026, 4, 14, 15, 5, 33, tzinfo=UTC)
    assert event.ring_seconds == 21.0
    assert adapter.business_number(event, signed(fixture_body("voice_callee_missed"))) == BUSINESS


@pytest.mark.parametrize(
    ("scenario", "direction", "customer"),
    [("voice_callee_answered", "inbound", CALLER), ("voice_caller_connected", "outbound", CALLER)],
)
def test_answered_calls_either_way(
    adapter: ZoomCarrier, scenario: str, direction: str, customer: str
) -> None:
    request = signed(fixture_body(scenario))
    answered = adapter.parse_answered_call(request)
    assert isinstance(answered, AnsweredCall)
    assert (answered.direction, answered.customer) == (direction, customer)
    assert adapter.business_number(answered, request) == BUSINESS


def test_the_url_validation_challenge_is_answered(adapter: ZoomCarrier) -> None:
    request = signed(fixture_body("voice_url_validation"))
    adapter.verify_request(request)
    assert adapter.webhook_kind("voice", request) == HANDSHAKE
    reply = adapter.reply(HANDSHAKE, request)
    assert (reply.status, reply.content_type) == (200, "application/json")
    plain = "qgg8vlvZRS6UYooatFL8Aw"
    assert json.loads(reply.body) == {"plainToken": plain, "encryptedToken": hmac_hex(SECRET, plain.encode())}


def test_a_challenge_without_its_token_is_malformed(adapter: ZoomCarrier) -> None:
    body = json.dumps({"event": "endpoint.url_validation", "payload": {}}).encode()
    with pytest.raises(MalformedWebhookError):
        adapter.reply(HANDSHAKE, signed(body))


def test_other_phone_events_are_not_missed_calls(adapter: ZoomCarrier) -> None:
    assert adapter.parse_call_event(signed(fixture_body("voice_recording_completed"))) is None
    body = json.dumps({"event": "meeting.started", "payload": {}}).encode()
    with pytest.raises(UnsupportedEventError):
        adapter.parse_call_event(signed(body))


@pytest.mark.parametrize("stamp", ["", "soon", "-5"])
def test_an_unreadable_timestamp_is_refused(adapter: ZoomCarrier, stamp: str) -> None:
    request = signed(fixture_body("voice_callee_missed"))
    headers = {**dict(request.headers.items()), "x-zm-request-timestamp": stamp}
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(WebhookRequest.build(url=URL, headers=headers, body=request.body))


def test_texts_go_through_the_sms_carrier(adapter: ZoomCarrier) -> None:
    request = signed(fixture_body("voice_callee_missed"))
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(request)
    with pytest.raises(UnsupportedEventError):
        adapter.parse_status(request)
    with pytest.raises(PermanentProviderError):
        adapter.send_sms(to=CALLER, from_=BUSINESS, body="hello")
