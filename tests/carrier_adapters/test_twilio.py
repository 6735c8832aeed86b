"""The Twilio adapter: the carrier contract suite plus Twilio's own rules.

Fixtures in ``tests/fixtures/twilio`` are signed here, at test time, with the official ``twilio``
package's ``RequestValidator`` and a test Auth Token; HTTP goes to ``responses`` stubs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree as ET

import marshmallow
import pytest
import requests
import responses
from responses import matchers
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.twilio import TwilioCarrier
from carrier_adapters.twilio.webhooks import compute_signature, url_variants
from connector.kernel.errors import (
    MalformedWebhookError,
    PermanentProviderError,
    ProviderAuthError,
    RateLimitedError,
    RecipientRejectedError,
    TransientProviderError,
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
    SignsUrlContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract
from tests.stubs.twilio_numbers import TwilioNumbersFake

FIXTURES = Fixtures("twilio")
ACCOUNT_SID = "AC3f0c5e1b7a9d42c68e1f0a2b4c6d8e0f"
AUTH_TOKEN = "test-auth-token-5f2b9c7e1d3a4f60"
API_KEY_SID = "SK9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
API_KEY_SECRET = "test-api-key-secret-0a1b2c3d4e5f"
SERVICE_SID = "MGaaabf0d39951f3e6c3e8a7911df524c2"
API_BASE = "https://twilio-api.test"
MESSAGES_URL = f"{API_BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
WEBHOOK_BASE = "https://textback.example.com/webhooks/twilio/acme-plumbing"
CALLER, BUSINESS = "+12025550143", "+14155550100"
MESSAGE_SID = "SM0f1e2d3c4b5a69788796a5b4c3d2e1f0"
FORM = "application/x-www-form-urlencoded"


# -- helpers ---------------------------------------------------------------------------------


fixture_body = FIXTURES.body


def fixture_form(scenario: str) -> dict[str, str]:
    return dict(parse_qsl(fixture_body(scenario).decode("utf-8"), keep_blank_values=True))


def sdk_signature(url: str, pairs: Sequence[tuple[str, str]], token: str = AUTH_TOKEN) -> str:
    """The signature Twilio's own SDK computes for this URL and POST parameters."""
    return RequestValidator(token).compute_signature(url, MultiDict(list(pairs)))


def form_request(
    body: bytes | Mapping[str, str],
    *,
    kind: str = "voice",
    url: str | None = None,
    token: str | None = AUTH_TOKEN,
) -> WebhookRequest:
    """A form webhook signed (with the SDK) for ``token``; unsigned when ``token`` is None."""
    raw = body if isinstance(body, bytes) else urlencode(body).encode()
    target = url or f"{WEBHOOK_BASE}/{kind}"
    headers = {"Content-Type": FORM}
    if token is not None:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        headers["X-Twilio-Signature"] = sdk_signature(target, pairs, token)
    return WebhookRequest.build(url=target, headers=headers, body=raw)


def variant(scenario: str, *, drop: Sequence[str] = (), **changes: str) -> dict[str, str]:
    """A fixture's form with fields removed or changed."""
    form = {k: v for k, v in fixture_form(scenario).items() if k not in drop}
    form.update(changes)
    return form


def credentials(**extra: str) -> dict[str, str]:
    return {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, **extra}


def message_json(**changes: Any) -> dict[str, Any]:
    """A Message resource as the 2010-04-01 API returns it (fields from the OpenAPI spec)."""
    message: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": "Sorry we missed your call! This is Acme Plumbing. How can we help?",
        "date_created": "Tue, 14 Apr 2026 15:05:02 +0000",
        "date_sent": None,
        "date_updated": "Tue, 14 Apr 2026 15:05:02 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": BUSINESS,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": MESSAGE_SID,
        "status": "queued",
        "subresource_uris": {},
        "to": CALLER,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE_SID}.json",
    }
    message.update(changes)
    return message


def twilio_error(code: int, status: int, message: str = "Error") -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - our own TwiML, not untrusted input


@pytest.fixture
def adapter() -> TwilioCarrier:
    return TwilioCarrier(credentials(), api_base_url=API_BASE)


# -- the contract suite ----------------------------------------------------------------------


class TestTwilioContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, IncomingCallContract, MessagingContract,
    SignsUrlContract, SignsBodyContract,
):
    """The generic carrier contract, fed with Twilio's fixtures."""

    adapter_class = TwilioCarrier
    secret_credentials = frozenset({"auth_token", "api_key_secret"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_incoming_call": None,
        "voice_dial_no_answer": CallOutcome.NO_ANSWER,
        "voice_dial_busy": CallOutcome.BUSY,
        "voice_dial_failed": CallOutcome.FAILED,
        "voice_dial_canceled": CallOutcome.CANCELED,
        "voice_dial_completed_not_bridged": CallOutcome.CANCELED,
        "voice_dial_answered": None,
        "voice_dial_unknown_status": CallOutcome.UNKNOWN,
        "voice_dial_no_answer_anonymous": CallOutcome.NO_ANSWER,
        "voice_status_no_answer": CallOutcome.NO_ANSWER,
        "voice_status_busy": CallOutcome.BUSY,
        "voice_status_completed": None,
    }
    unknown_call_scenario = "voice_dial_unknown_status"
    incoming_call_scenario = "voice_incoming_call"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "SMb3dbcf15dfb1cc453daf0e03ee10c65b",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "opt_out_type": None,
            "media_count": 0,
        },
        "sms_inbound_stop": {
            "event_id": "SMfccbf27a663b30e40963491b692a76c8",
            "sender": CALLER,
            "body": "STOP",
            "opt_out_type": "STOP",
        },
    }
    status_scenarios: Mapping[str, Mapping[str, Any]] = {
        "status_delivered": {
            "message_id": "SMbfc18160908af7e3e3c3b1e24e3638cc",
            "event_id": "SMbfc18160908af7e3e3c3b1e24e3638cc:delivered",
            "status": DeliveryStatus.DELIVERED,
            "error_code": None,
        },
        "status_undelivered": {
            "event_id": "SMaaace541c00b36b2cb293ac102501f28:undelivered",
            "status": DeliveryStatus.UNDELIVERED,
            "error_code": "30006",
        },
        "status_unknown": {"status": DeliveryStatus.UNKNOWN, "error_code": None},
    }
    unknown_status_scenario = "status_unknown"
    signature_headers = ("X-Twilio-Signature",)
    fake_api_base_url = API_BASE
    owned_numbers = (BUSINESS, "+14155550101")

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        TwilioNumbersFake(
            ACCOUNT_SID, AUTH_TOKEN, self.owned_numbers, api_key=(API_KEY_SID, API_KEY_SECRET)
        ).install(http, API_BASE)

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        TwilioNumbersFake(ACCOUNT_SID, "another-token", self.owned_numbers).install(http, API_BASE)
        return adapter

    def credentials(self) -> Mapping[str, Any]:
        return credentials(api_key_sid=API_KEY_SID, api_key_secret=API_KEY_SECRET)

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return form_request(fixture_body(scenario), kind=kind)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return form_request(fixture_body(scenario), kind=kind, token="not-the-auth-token")

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        """Forms: the URL and the POST parameters; JSON: the URL with ``bodySHA256``."""
        if "json" in content_type.lower():
            url = f"{url}?bodySHA256={hashlib.sha256(body).hexdigest()}"
            signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
        else:
            form = WebhookRequest.build(url=url, headers={"Content-Type": content_type}, body=body)
            signature = sdk_signature(url, form.form_items)
        headers = {"Content-Type": content_type, "X-Twilio-Signature": signature}
        return WebhookRequest.build(url=url, headers=headers, body=body)

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
        expected = {"message_id": MESSAGE_SID, "status": DeliveryStatus.QUEUED, "segments": 1}
        return 201, message_json(), expected

    def error_body(self, status: int) -> Any:
        codes = {400: 21602, 401: 20003, 429: 20429, 500: 20500, 503: 20503}
        return twilio_error(codes[status], status, f"Failure sending to {CALLER}")


# -- signatures: cross-checked with Twilio's own validator -----------------------------------

SIGNING_URLS = [
    "https://textback.example.com/webhooks/twilio/acme/voice",
    "https://textback.example.com:443/webhooks/twilio/acme/voice",
    "http://textback.example.com/webhooks/twilio/acme/voice",
    "http://textback.example.com:80/webhooks/twilio/acme/voice",
    "https://textback.example.com:8443/webhooks/twilio/acme/voice",
    "https://textback.example.com/webhooks/twilio/acme/sms",
    "https://textback.example.com/webhooks/twilio/acme/voice?account=acme&note=two%20words&x=a+b",
    "https://textback.example.com:443/webhooks/twilio/acme/voice?account=acme&note=two%20words&x=a+b",
    "https://textback.example.com/webhooks/twilio/caf%C3%A9/voice?name=Zo%C3%AB",
]
PARAM_SETS = {
    "fixture": parse_qsl(fixture_body("voice_dial_no_answer").decode(), keep_blank_values=True),
    "unicode-repeats": [
        ("MediaUrl0", "https://api.twilio.com/media/b?x=1&y=2"),
        ("Body", "Caf\u00e9 \u2615 + & = ? \u00e9t\u00e9"),
        ("A", "2"),
        ("A", "10"),
        ("A", "1"),
        ("Empty", ""),
        ("a", "lower case sorts after upper"),
    ],
    "identical-repeats": [("A", "1"), ("A", "1"), ("B", "x")],
    "none": [],
}


@pytest.mark.parametrize("params", list(PARAM_SETS), ids=list(PARAM_SETS))
@pytest.mark.parametrize("url", SIGNING_URLS)
def test_compute_signature_matches_the_sdk(url: str, params: str) -> None:
    pairs = PARAM_SETS[params]
    assert compute_signature(AUTH_TOKEN, url, pairs) == sdk_signature(url, pairs)


@pytest.mark.parametrize("params", list(PARAM_SETS), ids=list(PARAM_SETS))
@pytest.mark.parametrize("received", SIGNING_URLS)
def test_verifier_agrees_with_the_sdk_validator(
    adapter: TwilioCarrier, received: str, params: str
) -> None:
    """For every URL Twilio may have signed, we accept exactly when the SDK accepts."""
    pairs = PARAM_SETS[params]
    validator = RequestValidator(AUTH_TOKEN)
    body = urlencode(pairs).encode()
    accepted_somewhere = False
    for signed in SIGNING_URLS:
        signature = sdk_signature(signed, pairs)
        request = WebhookRequest.build(
            url=received,
            headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
            body=body,
        )
        sdk_says = validator.validate(received, MultiDict(list(pairs)), signature)
        try:
            adapter.verify_request(request)
            ours = True
        except WebhookVerificationError:
            ours = False
        assert ours == sdk_says, f"signed for {signed}, received at {received}"
        accepted_somewhere |= ours
    assert accepted_somewhere  # at least the exact URL verifies


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h.example/x?a=1", ["https://h.example/x?a=1", "https://h.example:443/x?a=1"]),
        ("https://h.example:443/x", ["https://h.example:443/x", "https://h.example/x"]),
        ("http://h.example/x", ["http://h.example/x", "http://h.example:80/x"]),
        ("https://h.example:8443/x", ["https://h.example:8443/x", "https://h.example/x"]),
        # the path and query stay byte for byte, even when a parser would re-encode them
        ("https://h.example/a%2fb?q=x+y&", ["https://h.example/a%2fb?q=x+y&",
                                            "https://h.example:443/a%2fb?q=x+y&"]),
        ("ftp://h.example/x", ["ftp://h.example/x"]),
    ],
)
def test_url_variants_toggle_only_the_port(url: str, expected: list[str]) -> None:
    assert url_variants(url) == expected


def test_request_signed_with_default_port_is_accepted_without_it(adapter: TwilioCarrier) -> None:
    body = fixture_body("voice_dial_no_answer")
    pairs = parse_qsl(body.decode(), keep_blank_values=True)
    signature = sdk_signature("https://textback.example.com:443/webhooks/twilio/a/voice", pairs)
    request = WebhookRequest.build(
        url="https://textback.example.com/webhooks/twilio/a/voice",
        headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
        body=body,
    )
    adapter.verify_request(request)
    tampered = WebhookRequest.build(
        url=request.url, headers=dict(request.headers), body=body.replace(b"no-answer", b"busy")
    )
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(tampered)


def json_request(body: bytes, *, body_hash: str | None = None, token: str = AUTH_TOKEN) -> WebhookRequest:
    digest = hashlib.sha256(body).hexdigest() if body_hash is None else body_hash
    url = f"{WEBHOOK_BASE}/status?bodySHA256={digest}"
    signature = RequestValidator(token).compute_signature(url, {})
    return WebhookRequest.build(
        url=url,
        headers={"Content-Type": "application/json", "X-Twilio-Signature": signature},
        body=body,
    )


JSON_BODY = json.dumps({"MessageSid": MESSAGE_SID, "MessageStatus": "delivered"}).encode()


def test_json_body_with_matching_hash_is_accepted(adapter: TwilioCarrier) -> None:
    request = json_request(JSON_BODY)
    assert RequestValidator(AUTH_TOKEN).validate(
        request.url, JSON_BODY.decode(), request.headers["X-Twilio-Signature"]
    )
    adapter.verify_request(request)


def test_json_body_not_matching_its_hash_is_rejected(adapter: TwilioCarrier) -> None:
    signed = json_request(JSON_BODY)
    swapped = WebhookRequest.build(
        url=signed.url,
        headers=dict(signed.headers),
        body=JSON_BODY.replace(b"delivered", b"failed"),
    )
    with pytest.raises(WebhookVerificationError, match="bodySHA256"):
        adapter.verify_request(swapped)


def test_json_body_without_hash_is_rejected(adapter: TwilioCarrier) -> None:
    url = f"{WEBHOOK_BASE}/status"
    request = WebhookRequest.build(
        url=url,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, {}),
        },
        body=JSON_BODY,
    )
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request)


@pytest.mark.parametrize("header", ["", "   "])
def test_empty_signature_header_is_rejected(adapter: TwilioCarrier, header: str) -> None:
    body = fixture_body("sms_inbound")
    request = WebhookRequest.build(
        url=f"{WEBHOOK_BASE}/sms",
        headers={"Content-Type": FORM, "X-Twilio-Signature": header},
        body=body,
    )
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request)


def test_verification_error_does_not_echo_the_signature(adapter: TwilioCarrier) -> None:
    request = form_request(fixture_body("sms_inbound"), kind="sms", token="someone-else")
    given = request.headers["X-Twilio-Signature"]
    expected = sdk_signature(request.url, list(request.form_items))
    with pytest.raises(WebhookVerificationError) as info:
        adapter.verify_request(request)
    assert given not in str(info.value) and expected not in str(info.value)


def test_signature_is_checked_against_the_auth_token_not_the_api_key() -> None:
    adapter = TwilioCarrier(
        credentials(api_key_sid=API_KEY_SID, api_key_secret=API_KEY_SECRET), api_base_url=API_BASE
    )
    body = fixture_body("status_delivered")
    adapter.verify_request(form_request(body, kind="status"))
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(form_request(body, kind="status", token=API_KEY_SECRET))


# -- voice webhooks --------------------------------------------------------------------------


def test_dial_action_is_fully_parsed(adapter: TwilioCarrier) -> None:
    form = fixture_form("voice_dial_no_answer")
    event = adapter.parse_call_event(form_request(fixture_body("voice_dial_no_answer")))
    assert isinstance(event, MissedCall)
    assert event.event_id == form["CallSid"]
    assert event.caller == CALLER and event.caller_raw == CALLER
    assert event.called == BUSINESS
    assert event.ring_seconds == 0.0
    assert event.voicemail is False
    assert event.attestation == "TN-Validation-Passed-A"
    assert dict(event.raw) == form


def test_dial_action_and_status_callback_of_one_call_share_the_event_id(
    adapter: TwilioCarrier,
) -> None:
    dial = adapter.parse_call_event(form_request(fixture_body("voice_dial_no_answer")))
    status = adapter.parse_call_event(form_request(fixture_body("voice_status_no_answer")))
    assert dial is not None and status is not None
    assert dial.event_id == status.event_id == fixture_form("voice_incoming_call")["CallSid"]


def test_child_leg_callback_is_keyed_by_the_parent_call(adapter: TwilioCarrier) -> None:
    parent = fixture_form("voice_dial_no_answer")["CallSid"]
    child = variant(
        "voice_status_no_answer",
        CallSid="CA0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        ParentCallSid=parent,
        Direction="outbound-dial",
    )
    event = adapter.parse_call_event(form_request(child))
    assert event is not None and event.event_id == parent


def test_status_callback_timestamp_is_the_event_time(adapter: TwilioCarrier) -> None:
    event = adapter.parse_call_event(form_request(fixture_body("voice_status_no_answer")))
    assert event is not None
    assert event.occurred_at == datetime(2026, 4, 14, 15, 4, 27, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize("timestamp", [None, "not a date"])
def test_missing_or_bad_timestamp_means_now(adapter: TwilioCarrier, timestamp: str | None) -> None:
    form = variant("voice_status_busy", drop=("Timestamp",))
    if timestamp is not None:
        form["Timestamp"] = timestamp
    before = datetime.now(UTC)
    event = adapter.parse_call_event(form_request(form))
    assert event is not None
    assert before <= event.occurred_at <= datetime.now(UTC)


def test_withheld_caller_has_no_number(adapter: TwilioCarrier) -> None:
    event = adapter.parse_call_event(form_request(fixture_body("voice_dial_no_answer_anonymous")))
    assert event is not None
    assert event.caller is None
    assert event.caller_raw == "anonymous"
    assert event.attestation is None


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        ({"RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingDuration": "17"}, True),
        ({"RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingDuration": "0"}, False),
        ({"RecordingUrl": "https://api.twilio.com/rec/RE1"}, True),
        ({}, False),
    ],
)
def test_voicemail_flag_follows_the_recording(
    adapter: TwilioCarrier, recording: dict[str, str], expected: bool
) -> None:
    event = adapter.parse_call_event(form_request(variant("voice_dial_no_answer", **recording)))
    assert event is not None and event.voicemail is expected


def test_ring_seconds_come_from_the_call_duration(adapter: TwilioCarrier) -> None:
    event = adapter.parse_call_event(form_request(variant("voice_status_busy", CallDuration="23")))
    assert event is not None and event.ring_seconds == 23.0
    dial = adapter.parse_call_event(
        form_request(variant("voice_dial_busy", drop=("DialCallDuration",)))
    )
    assert dial is not None and dial.ring_seconds is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", None),
        ("initiated", None),
        ("ringing", None),
        ("in-progress", None),
        ("completed", None),
        ("no-answer", CallOutcome.NO_ANSWER),
        ("busy", CallOutcome.BUSY),
        ("failed", CallOutcome.FAILED),
        ("canceled", CallOutcome.CANCELED),
        ("teleported", CallOutcome.UNKNOWN),
    ],
)
def test_status_callback_statuses(
    adapter: TwilioCarrier, status: str, expected: CallOutcome | None
) -> None:
    event = adapter.parse_call_event(form_request(variant("voice_status_busy", CallStatus=status)))
    assert (event.outcome if event else None) is expected


@pytest.mark.parametrize(
    ("changes", "drop", "expected"),
    [
        ({"DialCallStatus": "completed"}, ("DialBridged",), None),
        ({"DialCallStatus": "answered", "DialBridged": "true"}, (), None),
        ({"DialCallStatus": "answered", "DialBridged": "false"}, (), CallOutcome.CANCELED),
        ({"DialCallStatus": "completed", "DialBridged": "False"}, (), CallOutcome.CANCELED),
        ({"DialCallStatus": "No-Answer"}, (), CallOutcome.NO_ANSWER),
    ],
)
def test_dial_bridged_decides_completed_dials(
    adapter: TwilioCarrier,
    changes: dict[str, str],
    drop: tuple[str, ...],
    expected: CallOutcome | None,
) -> None:
    form = variant("voice_dial_answered", drop=drop, **changes)
    event = adapter.parse_call_event(form_request(form))
    assert (event.outcome if event else None) is expected


@pytest.mark.parametrize(
    "drop", [("CallSid",), ("From",), ("DialCallStatus", "CallStatus")], ids=str
)
def test_voice_webhook_without_required_fields_is_malformed(
    adapter: TwilioCarrier, drop: tuple[str, ...]
) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(form_request(variant("voice_dial_no_answer", drop=drop)))


@pytest.mark.parametrize(
    "form",
    [
        variant("voice_incoming_call", CallbackSource="call-progress-events"),
        variant("voice_incoming_call", Direction="outbound-dial"),
        variant("voice_incoming_call", CallStatus="in-progress"),
    ],
    ids=["status-callback-ringing", "child-leg-ringing", "in-progress"],
)
def test_other_ringing_webhooks_are_not_incoming_calls(
    adapter: TwilioCarrier, form: dict[str, str]
) -> None:
    assert adapter.is_incoming_call(form_request(form)) is False


# -- messaging webhooks ----------------------------------------------------------------------


def test_inbound_message_with_media(adapter: TwilioCarrier) -> None:
    form = variant("sms_inbound", NumMedia="2", OptOutType="help")
    message = adapter.parse_inbound_message(form_request(form, kind="sms"))
    assert message.media_count == 2
    assert message.opt_out_type == "HELP"
    assert dict(message.raw) == form


def test_inbound_message_with_unreadable_media_count(adapter: TwilioCarrier) -> None:
    form = variant("sms_inbound", NumMedia="many")
    assert adapter.parse_inbound_message(form_request(form, kind="sms")).media_count == 0


@pytest.mark.parametrize("drop", ["MessageSid", "From"])
def test_inbound_message_without_required_fields_is_malformed(
    adapter: TwilioCarrier, drop: str
) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_inbound_message(form_request(variant("sms_inbound", drop=(drop,))))


def test_status_with_legacy_sms_status_only(adapter: TwilioCarrier) -> None:
    form = variant("status_delivered", drop=("MessageStatus",), SmsStatus="sent")
    update = adapter.parse_status(form_request(form, kind="status"))
    assert update.status is DeliveryStatus.SENT
    assert update.event_id.endswith(":sent")


def test_status_with_empty_error_code(adapter: TwilioCarrier) -> None:
    form = variant("status_delivered", ErrorCode="")
    assert adapter.parse_status(form_request(form, kind="status")).error_code is None


@pytest.mark.parametrize("drop", [("MessageSid",), ("MessageStatus", "SmsStatus")], ids=str)
def test_status_without_required_fields_is_malformed(
    adapter: TwilioCarrier, drop: tuple[str, ...]
) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_status(form_request(variant("status_delivered", drop=drop)))


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [
        ("accepted", DeliveryStatus.QUEUED),
        ("queued", DeliveryStatus.QUEUED),
        ("sending", DeliveryStatus.QUEUED),
        ("sent", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("undelivered", DeliveryStatus.UNDELIVERED),
        ("failed", DeliveryStatus.FAILED),
        ("read", DeliveryStatus.READ),
        ("canceled", DeliveryStatus.CANCELED),
        ("partially_delivered", DeliveryStatus.UNKNOWN),
    ],
)
def test_delivery_status_table(
    adapter: TwilioCarrier, twilio_status: str, expected: DeliveryStatus
) -> None:
    form = variant("status_delivered", MessageStatus=twilio_status)
    assert adapter.parse_status(form_request(form, kind="status")).status is expected


# -- TwiML replies ---------------------------------------------------------------------------


def routing(*numbers: str, timeout: int = 20) -> CallRouting:
    return CallRouting(
        forward_to=numbers or ("+14155550199",),
        ring_timeout_seconds=timeout,
        action_url=f"{WEBHOOK_BASE}/voice?step=dial&leg=<1>",
        status_callback_url=f"{WEBHOOK_BASE}/voice",
    )


def test_incoming_call_reply_dials_every_number(adapter: TwilioCarrier) -> None:
    route = routing("+14155550199", "+14155550188")
    reply = adapter.reply("voice", form_request(fixture_body("voice_incoming_call")), route)
    assert reply.content_type == "text/xml" and reply.status == 200
    root = parse_xml(reply.body)
    assert root.tag == "Response"
    (dial,) = list(root)
    assert dial.tag == "Dial"
    assert dial.attrib == {
        "action": route.action_url,  # "&" and "<" survive the escaping
        "method": "POST",
        "timeout": "20",
        "answerOnBridge": "true",
    }
    assert [(n.tag, n.text, n.attrib) for n in dial] == [
        ("Number", "+14155550199", {}),
        ("Number", "+14155550188", {}),
    ]
    assert b"&amp;" in reply.body and b"&lt;1&gt;" in reply.body


@pytest.mark.parametrize(("asked", "sent"), [(1, "5"), (45, "45"), (9000, "600")])
def test_ring_timeout_is_kept_within_twilio_bounds(
    adapter: TwilioCarrier, asked: int, sent: str
) -> None:
    dial = parse_xml(adapter.reply("voice", routing=routing(timeout=asked)).body)[0]
    assert dial.get("timeout") == sent


@pytest.mark.parametrize("count", [0, 11])
def test_routing_needs_one_to_ten_numbers(adapter: TwilioCarrier, count: int) -> None:
    route = CallRouting(tuple(f"+1415555{100 + i:04d}" for i in range(count)), 20, "a", "b")
    with pytest.raises(ValueError):
        adapter.reply("voice", routing=route)


def test_voice_reply_without_routing_hangs_up(adapter: TwilioCarrier) -> None:
    reply = adapter.reply("voice", form_request(fixture_body("voice_dial_no_answer")))
    root = parse_xml(reply.body)
    assert reply.content_type == "text/xml"
    assert root.tag == "Response" and [c.tag for c in root] == ["Hangup"]


def test_sms_reply_is_an_empty_response(adapter: TwilioCarrier) -> None:
    reply = adapter.reply("sms")
    root = parse_xml(reply.body)
    assert reply.content_type == "text/xml"
    assert root.tag == "Response" and len(root) == 0 and not (root.text or "").strip()


def test_status_reply_is_an_empty_200(adapter: TwilioCarrier) -> None:
    reply = adapter.reply("status")
    assert (reply.body, reply.status) == (b"", 200)


def test_unknown_kind_is_a_programming_error(adapter: TwilioCarrier) -> None:
    with pytest.raises(ValueError):
        adapter.reply("fax")


# -- sending ---------------------------------------------------------------------------------


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


SEND = {
    "to": CALLER,
    "from_": BUSINESS,
    "body": "Sorry we missed your call! This is Acme Plumbing. How can we help?",
}


def test_send_posts_the_message_form(adapter: TwilioCarrier, http: responses.RequestsMock) -> None:
    callback = f"{WEBHOOK_BASE}/status"
    http.add(
        responses.POST,
        MESSAGES_URL,
        json=message_json(),
        status=201,
        match=[
            matchers.urlencoded_params_matcher(
                {"To": CALLER, "From": BUSINESS, "Body": SEND["body"], "StatusCallback": callback}
            )
        ],
    )
    result = adapter.send_sms(**SEND, status_callback_url=callback)
    assert result.message_id == MESSAGE_SID
    (call,) = http.calls
    assert call.request.headers["Authorization"] == basic_auth(ACCOUNT_SID, AUTH_TOKEN)
    assert call.request.req_kwargs["timeout"] == DEFAULT_TIMEOUT


def test_send_without_status_callback_omits_it(
    adapter: TwilioCarrier, http: responses.RequestsMock
) -> None:
    http.add(
        responses.POST,
        MESSAGES_URL,
        json=message_json(),
        status=201,
        match=[
            matchers.urlencoded_params_matcher(
                {"To": CALLER, "From": BUSINESS, "Body": SEND["body"]}
            )
        ],
    )
    adapter.send_sms(**SEND)


def test_send_uses_the_api_key_and_messaging_service(http: responses.RequestsMock) -> None:
    adapter = TwilioCarrier(
        credentials(
            api_key_sid=API_KEY_SID,
            api_key_secret=API_KEY_SECRET,
            messaging_service_sid=SERVICE_SID,
        ),
        api_base_url=API_BASE,
    )
    http.add(
        responses.POST,
        MESSAGES_URL,
        json=message_json(status="accepted", messaging_service_sid=SERVICE_SID),
        status=201,
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "To": CALLER,
                    "From": BUSINESS,
                    "Body": SEND["body"],
                    "MessagingServiceSid": SERVICE_SID,
                }
            )
        ],
    )
    result = adapter.send_sms(**SEND)
    assert result.status is DeliveryStatus.QUEUED
    assert http.calls[0].request.headers["Authorization"] == basic_auth(API_KEY_SID, API_KEY_SECRET)


@pytest.mark.parametrize(
    ("status", "code", "error", "reason"),
    [
        (400, 21610, RecipientRejectedError, "opted_out"),
        (400, 21614, RecipientRejectedError, "not_mobile"),
        (400, 21635, RecipientRejectedError, "not_mobile"),
        (400, 30006, RecipientRejectedError, "not_mobile"),
        (400, 21211, RecipientRejectedError, "invalid"),
        (401, 20003, ProviderAuthError, None),
        (403, 20003, ProviderAuthError, None),
        (400, 20429, RateLimitedError, None),
        (429, 20429, RateLimitedError, None),
        (400, 21602, PermanentProviderError, None),
        (404, 20404, PermanentProviderError, None),
        (500, 21610, TransientProviderError, None),
    ],
)
def test_send_errors_are_classified_by_twilio_code(
    adapter: TwilioCarrier,
    http: responses.RequestsMock,
    status: int,
    code: int,
    error: type[Exception],
    reason: str | None,
) -> None:
    body = twilio_error(code, status, f"The 'To' number {CALLER} cannot receive this message")
    http.add(responses.POST, MESSAGES_URL, json=body, status=status)
    with pytest.raises(error) as info:
        adapter.send_sms(**SEND)
    exc = info.value
    assert type(exc) is error
    assert exc.code == str(code) and exc.status == status and exc.provider == "twilio"
    if reason is not None:
        assert exc.reason == reason
    if isinstance(exc, RateLimitedError):
        assert exc.retry_after == 1.0
    if isinstance(exc, TransientProviderError):
        assert exc.ambiguous is not isinstance(exc, RateLimitedError)
    text = f"{exc} {exc!r}"
    assert CALLER not in text and CALLER[1:] not in text and "cannot receive" not in text
    assert AUTH_TOKEN not in text


def test_retry_after_header_is_honoured(
    adapter: TwilioCarrier, http: responses.RequestsMock
) -> None:
    http.add(
        responses.POST,
        MESSAGES_URL,
        json=twilio_error(20429, 429, "Too Many Requests"),
        status=429,
        headers={"Retry-After": "7"},
    )
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(**SEND)
    assert info.value.retry_after == 7.0


def test_non_json_gateway_error_is_transient(
    adapter: TwilioCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, MESSAGES_URL, body="<html>Bad Gateway</html>", status=502)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(**SEND)
    assert info.value.ambiguous is True and info.value.code is None


@pytest.mark.parametrize(
    "body", ["not json", json.dumps({"status": "queued"})], ids=["garbage", "no-sid"]
)
def test_accepted_send_without_a_readable_sid_is_ambiguous(
    adapter: TwilioCarrier, http: responses.RequestsMock, body: str
) -> None:
    http.add(responses.POST, MESSAGES_URL, body=body, status=201)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(**SEND)
    assert info.value.ambiguous is True


def test_nothing_secret_is_logged(
    adapter: TwilioCarrier, http: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http.add(responses.POST, MESSAGES_URL, json=twilio_error(21211, 400, CALLER), status=400)
    with pytest.raises(RecipientRejectedError):
        adapter.send_sms(**SEND)
    bad = form_request(fixture_body("sms_inbound"), kind="sms", token="wrong")
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(bad)
    logged = caplog.text
    for secret in (AUTH_TOKEN, CALLER, CALLER[1:], SEND["body"], bad.headers["X-Twilio-Signature"]):
        assert secret not in logged


# -- reconciling an ambiguous send -----------------------------------------------------------

SENT_AFTER = datetime(2026, 4, 14, 15, 5, 0, tzinfo=UTC)


def stub_list(http: responses.RequestsMock, messages: list[dict[str, Any]]) -> None:
    http.add(
        responses.GET,
        MESSAGES_URL,
        json={"messages": messages, "page": 0, "page_size": 50, "next_page_uri": None},
        status=200,
        match=[
            matchers.query_param_matcher({"To": CALLER, "From": BUSINESS, "PageSize": "50"})
        ],
    )


def test_find_sent_message_finds_our_text(
    adapter: TwilioCarrier, http: responses.RequestsMock
) -> None:
    older = message_json(sid="SM" + "1" * 32, date_created="Tue, 14 Apr 2026 14:00:00 +0000")
    other = message_json(sid="SM" + "2" * 32, body="Another text")
    ours = message_json(status="delivered", date_created="Tue, 14 Apr 2026 15:04:30 +0000")
    stub_list(http, [other, ours, older])
    found = adapter.find_sent_message(
        to=CALLER, from_=BUSINESS, body=SEND["body"], sent_after=SENT_AFTER
    )
    assert found is not None
    assert found.message_id == MESSAGE_SID  # 30 s before sent_after: within the clock skew
    assert found.status is DeliveryStatus.DELIVERED


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [message_json(body="Sorry we missed your call!")],
        [message_json(date_created="Tue, 14 Apr 2026 15:03:59 +0000")],
        [message_json(date_created=None)],
    ],
    ids=["empty", "other-body", "too-old", "no-date"],
)
def test_find_sent_message_returns_none_without_a_match(
    adapter: TwilioCarrier, http: responses.RequestsMock, messages: list[dict[str, Any]]
) -> None:
    stub_list(http, messages)
    assert (
        adapter.find_sent_message(
            to=CALLER, from_=BUSINESS, body=SEND["body"], sent_after=SENT_AFTER
        )
        is None
    )


def test_find_sent_message_needs_an_aware_time(adapter: TwilioCarrier) -> None:
    with pytest.raises(ValueError):
        adapter.find_sent_message(
            to=CALLER, from_=BUSINESS, body="x", sent_after=datetime(2026, 4, 14, 15, 5)
        )


def test_find_sent_message_classifies_errors(
    adapter: TwilioCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.GET, MESSAGES_URL, json=twilio_error(20003, 401, "Authenticate"), status=401)
    with pytest.raises(ProviderAuthError):
        adapter.find_sent_message(
            to=CALLER, from_=BUSINESS, body=SEND["body"], sent_after=SENT_AFTER
        )
    http.replace(responses.GET, MESSAGES_URL, body=requests.exceptions.ReadTimeout())
    with pytest.raises(TransientProviderError):
        adapter.find_sent_message(
            to=CALLER, from_=BUSINESS, body=SEND["body"], sent_after=SENT_AFTER - timedelta(1)
        )


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "creds",
    [
        {"auth_token": AUTH_TOKEN},
        {"account_sid": ACCOUNT_SID},
        {"account_sid": ACCOUNT_SID, "auth_token": ""},
        {"account_sid": "XX3f0c5e1b7a9d42c68e1f0a2b4c6d8e0f", "auth_token": AUTH_TOKEN},
        {"account_sid": "AC123", "auth_token": AUTH_TOKEN},
        credentials(api_key_sid=API_KEY_SID),
        credentials(api_key_secret=API_KEY_SECRET),
        credentials(api_key_sid="AB" + "0" * 32, api_key_secret=API_KEY_SECRET),
        credentials(messaging_service_sid="PN" + "0" * 32),
    ],
    ids=[
        "no-sid",
        "no-token",
        "empty-token",
        "not-AC",
        "short-sid",
        "key-without-secret",
        "secret-without-key",
        "bad-key-sid",
        "bad-service-sid",
    ],
)
def test_invalid_credentials_are_refused(creds: dict[str, str]) -> None:
    with pytest.raises(marshmallow.ValidationError):
        TwilioCarrier(creds)


def test_default_api_base_url() -> None:
    assert TwilioCarrier(credentials()).api_base_url == "https://api.twilio.com"


def test_a_delivery_report_on_the_sms_url_is_not_an_inbound_text(adapter: TwilioCarrier) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_inbound_message(form_request(fixture_body("status_delivered"), kind="sms"))


def test_an_incoming_message_on_the_status_url_is_not_a_delivery_report(adapter: TwilioCarrier) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_status(form_request(fixture_body("sms_inbound"), kind="status"))
