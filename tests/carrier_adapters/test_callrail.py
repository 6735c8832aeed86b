"""The CallRail adapter: the carrier contract suite plus CallRail's own rules.

CallRail is a call-event source: it reports calls and sends no texts, receives no replies and
sends no delivery reports for us (the account's ``carrier.sms`` does). The contract's send,
inbound-text and delivery-report checks therefore skip, with that reason, through the hooks the
suite has (``stub_send``/``success_send``/``error_body`` and ``signed_request`` skip); the
placeholder scenario tables only satisfy the suite's table check. The fixtures in
``tests/fixtures/callrail`` are signed at test time with a test signing key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import marshmallow
import pytest
import responses

from carrier_adapters.callrail import CallRailCarrier
from connector.kernel.errors import (
    MalformedWebhookError,
    PermanentProviderError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.events import AnsweredCall, CallOutcome, MissedCall
from connector.kernel.http import WebhookRequest
from tests.carrier_adapters.conftest import Fixtures
from tests.contracts.carrier_contract import (
    CallSourceContract,
    CarrierContract,
    SignsBodyContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract

FIXTURES = Fixtures("callrail")
WEBHOOK_URL = "https://textback.example.com/webhooks/callrail/acme-plumbing/voice"
SIGNING_KEY = "test-callrail-signing-key-a1b2c3d4e5"
CALLER, BUSINESS, TRACKING = "+12025550143", "+14155550100", "+14155550111"


fixture_body = FIXTURES.body


def b64_hmac(key: str, body: bytes, digest: str = "sha1") -> str:
    """Base64 HMAC: computed here independently of the adapter's helpers."""
    return base64.b64encode(hmac.new(key.encode(), body, getattr(hashlib, digest)).digest()).decode()


def signed(body: bytes, *, key: str = SIGNING_KEY, digest: str = "sha1") -> WebhookRequest:
    headers = {"Content-Type": "application/json", "Signature": b64_hmac(key, body, digest)}
    return WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=body)


@pytest.fixture
def adapter() -> CallRailCarrier:
    return CallRailCarrier({"signing_key": SIGNING_KEY})


# -- the contract suite ----------------------------------------------------------------------


class TestCallRailContract(CarrierContract, CarrierSetupContract, CallSourceContract, SignsBodyContract):
    """The generic carrier contract for a source that reports calls and sends no texts."""

    adapter_class = CallRailCarrier
    secret_credentials = frozenset({"signing_key"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_pre_call": None,
        "voice_routing_complete": None,
        "voice_post_call_answered": None,
        "voice_post_call_outbound": None,
        "voice_post_call_missed": CallOutcome.NO_ANSWER,
        "voice_post_call_missed_string_flags": CallOutcome.NO_ANSWER,
        "voice_post_call_voicemail": CallOutcome.VOICEMAIL,
        "voice_post_call_abandoned": CallOutcome.CANCELED,
        "voice_post_call_unknown_type": CallOutcome.UNKNOWN,
    }
    unknown_call_scenario = "voice_post_call_unknown_type"
    # Neither messaging mixin: CallRail has no inbound-text or delivery-report webhook.
    signature_headers = ("Signature",)

    def credentials(self) -> Mapping[str, Any]:
        return {"signing_key": SIGNING_KEY}

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario))

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario), key="not-the-signing-key")

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        headers = {"Content-Type": content_type, "Signature": b64_hmac(SIGNING_KEY, body)}
        return WebhookRequest.build(url=url, headers=headers, body=body)


# -- the source-only contract ----------------------------------------------------------------


def test_declares_that_it_sends_no_texts() -> None:
    assert CallRailCarrier.sends_sms is False


def test_send_sms_refuses_permanently_and_says_where_texts_go(adapter: CallRailCarrier) -> None:
    with responses.RequestsMock() as http:  # and touches no network
        with pytest.raises(PermanentProviderError) as info:
            adapter.send_sms(to=CALLER, from_=BUSINESS, body="Sorry we missed your call!")
        assert len(http.calls) == 0
    assert "carrier.sms" in str(info.value)
    assert CALLER not in f"{info.value} {info.value!r}"


def test_inbound_texts_and_reports_are_unsupported(adapter: CallRailCarrier) -> None:
    request = signed(fixture_body("voice_post_call_missed"))
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(request)
    with pytest.raises(UnsupportedEventError):
        adapter.parse_status(request)


def test_find_sent_message_is_not_available(adapter: CallRailCarrier) -> None:
    with pytest.raises(NotImplementedError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=datetime.now(UTC))


# -- the signature ---------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha1_of_the_raw_body(adapter: CallRailCarrier) -> None:
    body = fixture_body("voice_post_call_missed")
    expected = base64.b64encode(hmac.new(SIGNING_KEY.encode(), body, hashlib.sha1).digest()).decode()
    headers = {"Signature": expected}
    adapter.verify_request(WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=body))
    reformatted = json.dumps(json.loads(body)).encode()  # same JSON, other bytes
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=reformatted))


def test_sha256_can_be_configured() -> None:
    adapter = CallRailCarrier({"signing_key": SIGNING_KEY, "signature_digest": "sha256"})
    body = fixture_body("voice_post_call_missed")
    adapter.verify_request(signed(body, digest="sha256"))
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(body, digest="sha1"))


def test_unknown_digest_is_refused_in_the_credentials() -> None:
    with pytest.raises(marshmallow.ValidationError):
        CallRailCarrier({"signing_key": SIGNING_KEY, "signature_digest": "md5"})


# -- parsing ---------------------------------------------------------------------------------


def test_missed_call_fields(adapter: CallRailCarrier) -> None:
    event = adapter.parse_call_event(signed(fixture_body("voice_post_call_missed")))
    assert isinstance(event, MissedCall)
    assert event.event_id == "CAL8154748ae6bd4e278a7cddd38a662f4f"
    assert (event.caller, event.called) == (CALLER, BUSINESS)  # the business line, not the tracker
    assert event.occurred_at == datetime(2026, 4, 14, 15, 5, 12, tzinfo=UTC)
    assert event.ring_seconds == 21.0


def test_unrouted_call_falls_back_to_the_tracking_number(adapter: CallRailCarrier) -> None:
    event = adapter.parse_call_event(signed(fixture_body("voice_post_call_abandoned")))
    assert event is not None and event.called == TRACKING


def test_pre_call_looks_missed_but_is_ignored(adapter: CallRailCarrier) -> None:
    document = json.loads(fixture_body("voice_pre_call"))
    assert (document["answered"], document["call_type"]) == (False, "missed")
    assert adapter.parse_call_event(signed(fixture_body("voice_pre_call"))) is None
    assert adapter.parse_call_event(signed(fixture_body("voice_routing_complete"))) is None


def test_answered_calls(adapter: CallRailCarrier) -> None:
    answered = adapter.parse_answered_call(signed(fixture_body("voice_post_call_answered")))
    assert isinstance(answered, AnsweredCall)
    assert (answered.customer, answered.direction) == (CALLER, "inbound")
    document = json.loads(fixture_body("voice_post_call_outbound"))
    document["answered"] = True
    callback = adapter.parse_answered_call(signed(json.dumps(document).encode()))
    assert callback is not None and callback.direction == "outbound"


@pytest.mark.parametrize("scenario", ["voice_post_call_missed", "voice_pre_call", "voice_post_call_outbound"])
def test_unanswered_calls_are_not_answered(adapter: CallRailCarrier, scenario: str) -> None:
    assert adapter.parse_answered_call(signed(fixture_body(scenario))) is None


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"answered": false}'])
def test_malformed_webhook(adapter: CallRailCarrier, body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(signed(body))


def test_every_kind_is_left_as_posted(adapter: CallRailCarrier) -> None:
    request = signed(fixture_body("voice_post_call_missed"))
    assert [adapter.route(k, request) for k in ("voice", "sms", "status")] == ["voice", "sms", "status"]
