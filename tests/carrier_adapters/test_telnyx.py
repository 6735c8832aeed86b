"""The Telnyx adapter: the carrier contract suite plus Telnyx's own rules.

Fixtures in ``tests/fixtures/telnyx`` are signed here, at test time, with an Ed25519 key pair
generated for this test run (``cryptography``), exactly as Telnyx signs: Base64 of the
signature over ``"{telnyx-timestamp}|{raw body}"``. HTTP goes to ``responses`` stubs.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree as ET

import marshmallow
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from responses import matchers

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.telnyx import TelnyxCarrier
from connector.domain.optout import Intent, classify
from connector.kernel.errors import (
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
from tests.stubs.telnyx_numbers import TelnyxNumbersFake

FIXTURES = Fixtures("telnyx", keep_json_newline=True)
SIGNING_KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
PUBLIC_KEY = base64.b64encode(
    SIGNING_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()
API_KEY = "KEY0188D2E6B4A0C9F1E2D3C4B5A6_test5f2b9c7e1d3a4f60"
PROFILE_ID = "4001767e-ce0f-4cae-9d5f-0d5e636e7809"
API_BASE = "https://telnyx-api.test"
MESSAGES_URL = f"{API_BASE}/v2/messages"
WEBHOOK_BASE = "https://textback.example.com/webhooks/telnyx/acme-plumbing"
CALLER, BUSINESS, FORWARD = "+12025550143", "+14155550100", "+14155550199"
MESSAGE_ID = "40385f64-5717-4562-b3fc-2c963f66afa6"
SIG, TS = "telnyx-signature-ed25519", "telnyx-timestamp"
SEND = {
    "to": CALLER,
    "from_": BUSINESS,
    "body": "Sorry we missed your call! This is Acme Plumbing. How can we help?",
}


# -- helpers ---------------------------------------------------------------------------------


fixture_body = FIXTURES.body


fixture_json = FIXTURES.json


def fixture_form(scenario: str) -> dict[str, str]:
    return dict(parse_qsl(fixture_body(scenario).decode(), keep_blank_values=True))


def sign(body: bytes, timestamp: int, key: Ed25519PrivateKey = SIGNING_KEY) -> str:
    """What Telnyx puts in ``telnyx-signature-ed25519``."""
    return base64.b64encode(key.sign(str(timestamp).encode() + b"|" + body)).decode()


def signed(
    body: bytes | Mapping[str, Any],
    *,
    kind: str = "voice",
    timestamp: int | None = None,
    key: Ed25519PrivateKey = SIGNING_KEY,
    form: bool | None = None,
) -> WebhookRequest:
    """A webhook to our ``kind`` URL signed with ``key`` at ``timestamp`` (default now).

    A mapping becomes compact JSON, or a form when ``form`` is true; bytes are sent as given.
    """
    if isinstance(body, Mapping):
        raw = urlencode(body).encode() if form else json.dumps(body).encode()
    else:
        raw = body
    is_form = form if form is not None else not raw.lstrip().startswith(b"{")
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/x-www-form-urlencoded" if is_form else "application/json",
        TS: str(ts),
        SIG: sign(raw, ts, key),
    }
    return WebhookRequest.build(url=f"{WEBHOOK_BASE}/{kind}", headers=headers, body=raw)


def scenario_request(scenario: str, kind: str = "voice", **kwargs: Any) -> WebhookRequest:
    return signed(fixture_body(scenario), kind=kind, **kwargs)


def data_variant(scenario: str, **payload_changes: Any) -> dict[str, Any]:
    """A JSON fixture with ``data.payload`` fields changed (None removes a field)."""
    doc = fixture_json(scenario)
    payload = doc["data"]["payload"]
    for name, value in payload_changes.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    return doc


def form_variant(scenario: str, *, drop: tuple[str, ...] = (), **changes: str) -> dict[str, str]:
    form = {k: v for k, v in fixture_form(scenario).items() if k not in drop}
    form.update(changes)
    return form


def credentials(**extra: str) -> dict[str, str]:
    return {"api_key": API_KEY, "public_key": PUBLIC_KEY, **extra}


def message_response(**changes: Any) -> dict[str, Any]:
    """The documented ``POST /v2/messages`` answer: ``{"data": OutboundMessagePayload}``."""
    data: dict[str, Any] = {
        "record_type": "message",
        "direction": "outbound",
        "id": MESSAGE_ID,
        "type": "SMS",
        "messaging_profile_id": PROFILE_ID,
        "organization_id": "b448f9cc-a842-4784-98e9-03c1a5872950",
        "from": {"phone_number": BUSINESS, "carrier": "Telnyx", "line_type": "Wireless"},
        "to": [{"phone_number": CALLER, "status": "queued", "carrier": "T-Mobile USA",
                "line_type": "Wireless"}],
        "text": SEND["body"],
        "media": [],
        "webhook_url": f"{WEBHOOK_BASE}/status",
        "webhook_failover_url": None,
        "encoding": "GSM-7",
        "parts": 1,
        "tags": [],
        "cost": None,
        "received_at": "2026-04-14T15:05:02.118+00:00",
        "sent_at": None,
        "completed_at": None,
        "valid_until": "2026-04-14T16:05:02.118+00:00",
        "errors": [],
    }
    data.update(changes)
    return {"data": data}


def telnyx_error(code: str, title: str = "Error", detail: str = "") -> dict[str, Any]:
    return {"errors": [{"code": code, "title": title, "detail": detail}]}


def parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - our own TeXML, not untrusted input


@pytest.fixture
def adapter() -> TelnyxCarrier:
    return TelnyxCarrier(credentials(), api_base_url=API_BASE)


# -- the contract suite ----------------------------------------------------------------------


class TestTelnyxContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, IncomingCallContract, MessagingContract,
    TimestampedSignatureContract, SignsBodyContract,
):
    """The generic carrier contract, fed with Telnyx's fixtures."""

    adapter_class = TelnyxCarrier
    secret_credentials = frozenset({"api_key"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_cc_call_initiated": None,
        "voice_cc_hangup_timeout": CallOutcome.NO_ANSWER,
        "voice_cc_hangup_no_answer": CallOutcome.NO_ANSWER,
        "voice_cc_hangup_user_busy": CallOutcome.BUSY,
        "voice_cc_hangup_call_rejected": CallOutcome.REJECTED,
        "voice_cc_hangup_not_found": CallOutcome.FAILED,
        "voice_cc_hangup_originator_cancel": CallOutcome.CANCELED,
        "voice_cc_hangup_normal_clearing": None,
        "voice_cc_hangup_unknown_cause": CallOutcome.UNKNOWN,
        "voice_cc_machine_detected": CallOutcome.VOICEMAIL,
        "voice_texml_incoming_call": None,
        "voice_texml_dial_no_answer": CallOutcome.NO_ANSWER,
        "voice_texml_dial_busy": CallOutcome.BUSY,
        "voice_texml_dial_answered": None,
        "voice_texml_dial_unknown_status": CallOutcome.UNKNOWN,
        "voice_texml_status_canceled": CallOutcome.CANCELED,
        "voice_texml_status_completed": None,
    }
    unknown_call_scenario = "voice_cc_hangup_unknown_cause"
    incoming_call_scenario = "voice_texml_incoming_call"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "b0c7e8cb-6227-4c74-9f32-c7f80c30934b",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "opt_out_type": None,
            "media_count": 0,
            "received_at": datetime(2026, 4, 14, 15, 7, 12, 304000, tzinfo=UTC),
        },
        "sms_inbound_revoke": {"sender": CALLER, "body": "Revoke", "opt_out_type": None},
    }
    status_scenarios: Mapping[str, Mapping[str, Any]] = {
        "status_sent": {
            "message_id": MESSAGE_ID,
            "event_id": f"{MESSAGE_ID}:sent",
            "status": DeliveryStatus.SENT,
            "error_code": None,
        },
        "status_delivered": {
            "message_id": MESSAGE_ID,
            "event_id": f"{MESSAGE_ID}:delivered",
            "status": DeliveryStatus.DELIVERED,
            "error_code": None,
        },
        "status_delivery_failed_landline": {
            "status": DeliveryStatus.UNDELIVERED,
            "error_code": "40001",
        },
        "status_unknown": {"status": DeliveryStatus.UNKNOWN, "error_code": None},
    }
    unknown_status_scenario = "status_unknown"
    signature_headers = (SIG, TS)
    fake_api_base_url = API_BASE
    owned_numbers = ("+14155550100", "+14155550101")

    def credentials(self) -> Mapping[str, Any]:
        return credentials(messaging_profile_id=PROFILE_ID)

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        TelnyxNumbersFake(API_KEY, self.owned_numbers).install(http, API_BASE)

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        TelnyxNumbersFake("KEY-another", self.owned_numbers).install(http, API_BASE)
        return adapter

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return scenario_request(scenario, kind)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return scenario_request(scenario, kind, key=OTHER_KEY)

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        timestamp = int(time.time())
        headers = {"Content-Type": content_type, TS: str(timestamp), SIG: sign(body, timestamp)}
        return WebhookRequest.build(url=url, headers=headers, body=body)

    def stale_request(self, kind: str, scenario: str) -> WebhookRequest | None:
        return scenario_request(scenario, kind, timestamp=int(time.time()) - 600)

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
        expected = {"message_id": MESSAGE_ID, "status": DeliveryStatus.QUEUED, "segments": 1}
        return 200, message_response(), expected

    def error_body(self, status: int) -> Any:
        codes = {400: "10015", 401: "10009", 429: "10011", 500: "10007", 503: "10007"}
        return telnyx_error(codes[status], "Error", f"Messages cannot be sent to '{CALLER}'")


# -- signatures ------------------------------------------------------------------------------


def test_public_key_from_the_credentials_verifies(adapter: TelnyxCarrier) -> None:
    adapter.verify_request(scenario_request("sms_inbound", "sms"))
    other = TelnyxCarrier(
        credentials(
            public_key=base64.b64encode(
                OTHER_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            ).decode()
        )
    )
    with pytest.raises(WebhookVerificationError):
        other.verify_request(scenario_request("sms_inbound", "sms"))


def test_the_raw_body_is_verified_not_its_json(adapter: TelnyxCarrier) -> None:
    """Telnyx signs the bytes it sent; the same JSON spelled differently must not verify."""
    original = scenario_request("status_delivered", "status")
    respelled = json.dumps(json.loads(original.body), separators=(",", ":")).encode()
    assert respelled != original.body
    forged = WebhookRequest.build(url=original.url, headers=dict(original.headers), body=respelled)
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(forged)


@pytest.mark.parametrize("age", [-299, 0, 299])
def test_timestamps_within_300_seconds_are_accepted(adapter: TelnyxCarrier, age: int) -> None:
    adapter.verify_request(
        scenario_request("voice_cc_hangup_timeout", timestamp=int(time.time()) - age)
    )


@pytest.mark.parametrize("age", [-400, 301, 86_400])
def test_timestamps_outside_300_seconds_are_rejected(adapter: TelnyxCarrier, age: int) -> None:
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(
            scenario_request("voice_cc_hangup_timeout", timestamp=int(time.time()) - age)
        )


def test_signature_is_bound_to_its_timestamp(adapter: TelnyxCarrier) -> None:
    """A fresh timestamp header cannot be paired with an old signature."""
    body = fixture_body("voice_cc_hangup_timeout")
    now = int(time.time())
    request = WebhookRequest.build(
        url=f"{WEBHOOK_BASE}/voice",
        headers={"Content-Type": "application/json", TS: str(now), SIG: sign(body, now - 1)},
        body=body,
    )
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        ("not-a-time", None),
        ("1.5e9", None),
        (None, "%%%not base64%%%"),
        (None, base64.b64encode(b"\x00" * 32).decode()),  # half a signature
        (None, ""),
        ("", None),
    ],
    ids=["word-timestamp", "float-timestamp", "bad-base64", "short", "empty-sig", "empty-ts"],
)
def test_malformed_signature_headers_are_rejected(
    adapter: TelnyxCarrier, timestamp: str | None, signature: str | None
) -> None:
    body = fixture_body("sms_inbound")
    now = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TS: timestamp if timestamp is not None else str(now),
        SIG: signature if signature is not None else sign(body, now),
    }
    request = WebhookRequest.build(url=f"{WEBHOOK_BASE}/sms", headers=headers, body=body)
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request)


def test_verification_error_does_not_echo_the_headers(adapter: TelnyxCarrier) -> None:
    request = scenario_request("sms_inbound", "sms", key=OTHER_KEY)
    with pytest.raises(WebhookVerificationError) as info:
        adapter.verify_request(request)
    assert request.headers[SIG] not in str(info.value)
    assert request.headers[TS] not in str(info.value)


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "creds",
    [
        {"public_key": PUBLIC_KEY},
        {"api_key": API_KEY},
        credentials(api_key=""),
        credentials(public_key="not base64 at all!"),
        credentials(public_key=base64.b64encode(b"\x01" * 31).decode()),
        credentials(public_key=base64.b64encode(b"\x01" * 64).decode()),
    ],
    ids=["no-api-key", "no-public-key", "empty-api-key", "garbage-key", "short-key", "long-key"],
)
def test_invalid_credentials_are_refused(creds: dict[str, str]) -> None:
    with pytest.raises(marshmallow.ValidationError):
        TelnyxCarrier(creds)


def test_default_api_base_url() -> None:
    assert TelnyxCarrier(credentials()).api_base_url == "https://api.telnyx.com"


# -- routing: one messaging webhook URL for inbound texts and delivery reports ---------------


@pytest.mark.parametrize(
    ("posted_to", "scenario", "expected"),
    [
        ("sms", "status_delivered", "status"),
        ("sms", "status_sent", "status"),
        ("status", "sms_inbound", "sms"),
        ("sms", "sms_inbound", "sms"),
        ("status", "status_delivered", "status"),
        ("sms", "voice_cc_hangup_timeout", "voice"),
        ("voice", "voice_cc_hangup_timeout", "voice"),
        ("voice", "voice_texml_dial_busy", "voice"),  # forms keep the URL's kind
        ("sms", "voice_texml_dial_busy", "sms"),
    ],
)
def test_route_follows_the_event_type(
    adapter: TelnyxCarrier, posted_to: str, scenario: str, expected: str
) -> None:
    assert adapter.route(posted_to, scenario_request(scenario, posted_to)) == expected


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"data": "nope"}', json.dumps({"data": {"event_type": "fax.received"}}).encode()],
    ids=["garbage", "no-data", "other-product"],
)
def test_route_keeps_the_kind_it_cannot_improve_on(adapter: TelnyxCarrier, body: bytes) -> None:
    assert adapter.route("status", signed(body, kind="status")) == "status"


def test_delivery_report_on_the_sms_url_is_parsed_as_a_status(adapter: TelnyxCarrier) -> None:
    request = scenario_request("status_delivered", "sms")
    kind = adapter.route("sms", request)
    assert kind == "status"
    assert adapter.parse_status(request).status is DeliveryStatus.DELIVERED
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(request)


# -- Call Control ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        ("timeout", CallOutcome.NO_ANSWER),
        ("no_answer", CallOutcome.NO_ANSWER),
        ("user_busy", CallOutcome.BUSY),
        ("call_rejected", CallOutcome.REJECTED),
        ("not_found", CallOutcome.FAILED),
        ("originator_cancel", CallOutcome.CANCELED),
        ("normal_clearing", None),
        ("time_limit", None),
        ("unspecified", CallOutcome.UNKNOWN),
        ("Timeout", CallOutcome.NO_ANSWER),
    ],
)
def test_hangup_cause_table(
    adapter: TelnyxCarrier, cause: str, expected: CallOutcome | None
) -> None:
    request = signed(data_variant("voice_cc_hangup_timeout", hangup_cause=cause))
    event = adapter.parse_call_event(request)
    assert (event.outcome if event else None) is expected


def test_hangup_is_fully_parsed(adapter: TelnyxCarrier) -> None:
    doc = fixture_json("voice_cc_hangup_timeout")
    event = adapter.parse_call_event(scenario_request("voice_cc_hangup_timeout"))
    assert isinstance(event, MissedCall)
    assert event.event_id == doc["data"]["payload"]["call_session_id"]
    assert event.caller == CALLER and event.caller_raw == CALLER
    assert event.called == FORWARD  # the B-leg's "to" is the forwarding target
    assert event.occurred_at == datetime(2026, 4, 14, 15, 4, 30, 402117, tzinfo=UTC)
    assert event.ring_seconds == pytest.approx(30.283914)
    assert event.voicemail is False
    assert dict(event.raw) == doc["data"]


def test_both_legs_of_one_call_share_the_event_id(adapter: TelnyxCarrier) -> None:
    """The B-leg's timeout and the A-leg's later hang-up key to one call session."""
    session = fixture_json("voice_cc_hangup_timeout")["data"]["payload"]["call_session_id"]
    a_leg = data_variant(
        "voice_cc_hangup_originator_cancel",
        call_session_id=session,
        call_leg_id="d1e1f1a1-0000-4000-8000-000000000001",
    )
    b_leg = adapter.parse_call_event(scenario_request("voice_cc_hangup_timeout"))
    cancel = adapter.parse_call_event(signed(a_leg))
    assert b_leg is not None and cancel is not None
    assert b_leg.event_id == cancel.event_id == session
    a_leg_after_failed_transfer = data_variant(
        "voice_cc_hangup_normal_clearing", call_session_id=session, hangup_source="callee"
    )
    assert adapter.parse_call_event(signed(a_leg_after_failed_transfer)) is None


def test_leg_id_stands_in_for_a_missing_session(adapter: TelnyxCarrier) -> None:
    doc = data_variant("voice_cc_hangup_timeout", call_session_id=None)
    event = adapter.parse_call_event(signed(doc))
    assert event is not None and event.event_id == doc["data"]["payload"]["call_leg_id"]


@pytest.mark.parametrize(
    "changes",
    [{"hangup_cause": None}, {"hangup_cause": ""}, {"call_session_id": None, "call_leg_id": None}],
    ids=["no-cause", "empty-cause", "no-ids"],
)
def test_hangup_without_required_fields_is_malformed(
    adapter: TelnyxCarrier, changes: dict[str, Any]
) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(signed(data_variant("voice_cc_hangup_timeout", **changes)))


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        json.dumps({"meta": {}}).encode(),
        json.dumps({"data": {"event_type": "call.hangup"}}).encode(),
    ],
    ids=["garbage", "no-data", "no-payload"],
)
def test_unreadable_call_control_body_is_malformed(adapter: TelnyxCarrier, body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(signed(body))


@pytest.mark.parametrize(
    "event_type", ["call.answered", "call.bridged", "call.initiated", "call.playback.ended"]
)
def test_progress_events_are_not_missed_calls(adapter: TelnyxCarrier, event_type: str) -> None:
    doc = fixture_json("voice_cc_hangup_timeout")
    doc["data"]["event_type"] = event_type
    assert adapter.parse_call_event(signed(doc)) is None


@pytest.mark.parametrize(("result", "missed"), [("machine", True), ("human", False), ("not_sure", False)])
def test_machine_detection_on_the_forward_is_voicemail(
    adapter: TelnyxCarrier, result: str, missed: bool
) -> None:
    event = adapter.parse_call_event(signed(data_variant("voice_cc_machine_detected", result=result)))
    if not missed:
        assert event is None
        return
    assert event is not None
    assert event.outcome is CallOutcome.VOICEMAIL and event.voicemail is True
    assert event.ring_seconds is None  # the event has no start_time


def test_sip_caller_has_no_number(adapter: TelnyxCarrier) -> None:
    doc = data_variant("voice_cc_hangup_timeout", **{"from": "sip:alice@example.sip.telnyx.com"})
    event = adapter.parse_call_event(signed(doc))
    assert event is not None
    assert event.caller is None and event.caller_raw == "sip:alice@example.sip.telnyx.com"


def test_call_control_is_never_routed_by_us(adapter: TelnyxCarrier) -> None:
    assert adapter.is_incoming_call(scenario_request("voice_cc_call_initiated")) is False
    assert adapter.parse_answered_call(scenario_request("voice_cc_hangup_normal_clearing")) is None


# -- TeXML -----------------------------------------------------------------------------------


def test_dial_action_is_fully_parsed(adapter: TelnyxCarrier) -> None:
    form = fixture_form("voice_texml_dial_no_answer")
    event = adapter.parse_call_event(scenario_request("voice_texml_dial_no_answer"))
    assert isinstance(event, MissedCall)
    assert event.event_id == form["CallSid"]
    assert event.caller == CALLER and event.called == BUSINESS
    assert event.ring_seconds == 0.0
    assert event.occurred_at == datetime(2026, 4, 14, 15, 4, 31, tzinfo=UTC)
    assert dict(event.raw) == form


def test_texml_callbacks_of_one_call_share_the_event_id(adapter: TelnyxCarrier) -> None:
    parent = fixture_form("voice_texml_incoming_call")["CallSid"]
    dial = adapter.parse_call_event(scenario_request("voice_texml_dial_no_answer"))
    child = form_variant(
        "voice_texml_status_canceled", CallSid="v3:child-leg-Zz9", ParentCallSid=parent
    )
    status = adapter.parse_call_event(signed(child, form=True))
    assert dial is not None and status is not None
    assert dial.event_id == status.event_id == parent


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"DialCallStatus": "completed", "HangupCause": "originator_cancel"}, CallOutcome.CANCELED),
        ({"DialCallStatus": "completed", "HangupCause": "normal_clearing"}, None),
        ({"DialCallStatus": "answered"}, None),
        ({"DialCallStatus": "failed"}, CallOutcome.FAILED),
        ({"DialCallStatus": "canceled"}, CallOutcome.CANCELED),
        ({"DialCallStatus": "No-Answer"}, CallOutcome.NO_ANSWER),
    ],
)
def test_dial_call_status_table(
    adapter: TelnyxCarrier, changes: dict[str, str], expected: CallOutcome | None
) -> None:
    form = form_variant("voice_texml_dial_answered", **changes)
    event = adapter.parse_call_event(signed(form, form=True))
    assert (event.outcome if event else None) is expected


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
        ("canceled", CallOutcome.CANCELED),
        ("teleported", CallOutcome.UNKNOWN),
    ],
)
def test_status_callback_table(
    adapter: TelnyxCarrier, status: str, expected: CallOutcome | None
) -> None:
    form = form_variant("voice_texml_status_completed", CallStatus=status)
    form["HangupCause"] = "originator_cancel"  # only a <Dial> that completed reads this
    event = adapter.parse_call_event(signed(form, form=True))
    assert (event.outcome if event else None) is expected


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2021-04-28 21:51:18.731479Z", datetime(2021, 4, 28, 21, 51, 18, 731479, tzinfo=UTC)),
        ("2024-01-15T10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("Tue, 14 Apr 2026 15:04:27 +0000", datetime(2026, 4, 14, 15, 4, 27, tzinfo=UTC)),
        ("2026-04-14T17:04:27+02:00", datetime(2026, 4, 14, 15, 4, 27, tzinfo=UTC)),
    ],
)
def test_texml_timestamp_formats(
    adapter: TelnyxCarrier, timestamp: str, expected: datetime
) -> None:
    form = form_variant("voice_texml_status_canceled", Timestamp=timestamp)
    event = adapter.parse_call_event(signed(form, form=True))
    assert event is not None and event.occurred_at == expected
    assert event.occurred_at.utcoffset() is not None and event.occurred_at.utcoffset().total_seconds() == 0


def test_missing_or_bad_timestamp_means_now(adapter: TelnyxCarrier) -> None:
    before = datetime.now(UTC)
    for form in (
        form_variant("voice_texml_status_canceled", drop=("Timestamp",)),
        form_variant("voice_texml_status_canceled", Timestamp="yesterday-ish"),
    ):
        event = adapter.parse_call_event(signed(form, form=True))
        assert event is not None and before <= event.occurred_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        ({"RecordingUrl": "https://api.telnyx.com/rec/1", "RecordingDuration": "12"}, True),
        ({"RecordingUrl": "https://api.telnyx.com/rec/1", "RecordingDuration": "0"}, False),
        ({"RecordingUrl": "https://api.telnyx.com/rec/1"}, True),
        ({}, False),
    ],
)
def test_voicemail_flag_follows_the_recording(
    adapter: TelnyxCarrier, recording: dict[str, str], expected: bool
) -> None:
    form = form_variant("voice_texml_dial_no_answer", **recording)
    event = adapter.parse_call_event(signed(form, form=True))
    assert event is not None and event.voicemail is expected


@pytest.mark.parametrize(
    "drop", [("CallSid",), ("From",), ("DialCallStatus", "CallStatus")], ids=str
)
def test_texml_callback_without_required_fields_is_malformed(
    adapter: TelnyxCarrier, drop: tuple[str, ...]
) -> None:
    form = form_variant("voice_texml_dial_no_answer", drop=drop)
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(signed(form, form=True))


@pytest.mark.parametrize(
    "form",
    [
        form_variant("voice_texml_incoming_call", CallStatus="in-progress"),
        form_variant("voice_texml_incoming_call", drop=("Direction",)),
    ],
    ids=["answered-before-fetch", "no-direction"],
)
def test_instruction_requests_are_incoming_calls(
    adapter: TelnyxCarrier, form: dict[str, str]
) -> None:
    assert adapter.is_incoming_call(signed(form, form=True)) is True


@pytest.mark.parametrize(
    "form",
    [
        form_variant("voice_texml_incoming_call", CallbackSource="call-progress-events"),
        form_variant("voice_texml_incoming_call", Direction="outbound-dial"),
        form_variant("voice_texml_incoming_call", CallStatus="completed"),
        form_variant("voice_texml_incoming_call", DialCallStatus="no-answer"),
        form_variant("voice_texml_incoming_call", drop=("CallSid",)),
    ],
    ids=["status-callback", "child-leg", "completed", "dial-action", "no-call-sid"],
)
def test_other_texml_requests_are_not_incoming_calls(
    adapter: TelnyxCarrier, form: dict[str, str]
) -> None:
    assert adapter.is_incoming_call(signed(form, form=True)) is False


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (form_variant("voice_texml_dial_answered"), ("inbound", CALLER)),
        (form_variant("voice_texml_dial_answered", HangupCause="originator_cancel"), None),
        (form_variant("voice_texml_dial_no_answer"), None),
        (form_variant("voice_texml_status_completed"), None),  # the inbound parent
        (
            form_variant("voice_texml_status_completed", Direction="outbound-api",
                         From=BUSINESS, To=CALLER),
            ("outbound", CALLER),
        ),
        (
            form_variant("voice_texml_status_completed", Direction="outbound-api",
                         From=BUSINESS, To=CALLER, CallDuration="0"),
            None,
        ),
    ],
    ids=["forward-bridged", "forward-cancelled", "forward-missed", "inbound-parent",
         "call-back-answered", "call-back-unanswered"],
)
def test_answered_calls(
    adapter: TelnyxCarrier, form: dict[str, str], expected: tuple[str, str] | None
) -> None:
    answered = adapter.parse_answered_call(signed(form, form=True))
    if expected is None:
        assert answered is None
        return
    assert answered is not None
    assert (answered.direction, answered.customer) == expected
    assert answered.event_id == f"{form['CallSid']}:{expected[0]}"


# -- TeXML replies ---------------------------------------------------------------------------


def routing(*numbers: str, timeout: int = 20) -> CallRouting:
    return CallRouting(
        forward_to=numbers or (FORWARD,),
        ring_timeout_seconds=timeout,
        action_url=f"{WEBHOOK_BASE}/voice?step=dial&leg=<1>",
        status_callback_url=f"{WEBHOOK_BASE}/voice",
    )


def test_incoming_call_reply_dials_every_number(adapter: TelnyxCarrier) -> None:
    route = routing(FORWARD, "+14155550188")
    reply = adapter.reply("voice", scenario_request("voice_texml_incoming_call"), route)
    assert reply.content_type == "text/xml" and reply.status == 200
    root = parse_xml(reply.body)
    assert root.tag == "Response"
    (dial,) = list(root)
    assert dial.tag == "Dial"
    assert dial.attrib == {"action": route.action_url, "method": "POST", "timeout": "20"}
    assert [(n.tag, n.text) for n in dial] == [("Number", FORWARD), ("Number", "+14155550188")]
    assert b"&amp;" in reply.body and b"&lt;1&gt;" in reply.body


@pytest.mark.parametrize(("asked", "sent"), [(1, "5"), (45, "45"), (600, "120")])
def test_ring_timeout_is_kept_within_texml_bounds(
    adapter: TelnyxCarrier, asked: int, sent: str
) -> None:
    dial = parse_xml(adapter.reply("voice", routing=routing(timeout=asked)).body)[0]
    assert dial.get("timeout") == sent


@pytest.mark.parametrize("count", [0, 11])
def test_routing_needs_one_to_ten_numbers(adapter: TelnyxCarrier, count: int) -> None:
    route = CallRouting(tuple(f"+1415555{100 + i:04d}" for i in range(count)), 20, "a", "b")
    with pytest.raises(ValueError):
        adapter.reply("voice", routing=route)


def test_texml_reply_without_routing_hangs_up(adapter: TelnyxCarrier) -> None:
    for request in (scenario_request("voice_texml_dial_no_answer"), None):
        reply = adapter.reply("voice", request)
        root = parse_xml(reply.body)
        assert reply.content_type == "text/xml"
        assert root.tag == "Response" and [c.tag for c in root] == ["Hangup"]


def test_call_control_events_get_an_empty_200(adapter: TelnyxCarrier) -> None:
    reply = adapter.reply("voice", scenario_request("voice_cc_hangup_timeout"))
    assert (reply.body, reply.status) == (b"", 200)


@pytest.mark.parametrize("kind", ["sms", "status"])
def test_messaging_replies_are_empty(adapter: TelnyxCarrier, kind: str) -> None:
    reply = adapter.reply(kind, scenario_request("sms_inbound", kind))
    assert (reply.body, reply.status) == (b"", 200)


def test_unknown_kind_is_a_programming_error(adapter: TelnyxCarrier) -> None:
    with pytest.raises(ValueError):
        adapter.reply("fax")


# -- messaging webhooks ----------------------------------------------------------------------


def test_inbound_message_with_media(adapter: TelnyxCarrier) -> None:
    media = [{"url": "https://media.telnyx.com/a.jpg", "content_type": "image/jpeg",
              "size": 1024, "hash_sha256": "00" * 32}] * 2
    message = adapter.parse_inbound_message(
        signed(data_variant("sms_inbound", media=media, type="MMS"), kind="sms")
    )
    assert message.media_count == 2


def test_inbound_message_time_falls_back_to_the_event_time(adapter: TelnyxCarrier) -> None:
    message = adapter.parse_inbound_message(
        signed(data_variant("sms_inbound", received_at=None), kind="sms")
    )
    assert message.received_at == datetime(2026, 4, 14, 15, 7, 12, 402000, tzinfo=UTC)


def test_revoke_is_left_to_the_connector_which_honours_it(adapter: TelnyxCarrier) -> None:
    """Telnyx's default list lacks REVOKE and OPTOUT: the adapter passes the text through
    untouched (no carrier keyword class) and the connector's rules classify it as opt-out."""
    message = adapter.parse_inbound_message(scenario_request("sms_inbound_revoke", "sms"))
    assert message.opt_out_type is None
    assert classify(message.body) is Intent.OPT_OUT
    optout = signed(data_variant("sms_inbound_revoke", text="OPTOUT"), kind="sms")
    assert classify(adapter.parse_inbound_message(optout).body) is Intent.OPT_OUT


@pytest.mark.parametrize(
    "changes", [{"id": None, "from": None}, {"from": None}, {"from": {"carrier": "x"}}],
    ids=["no-ids", "no-sender", "sender-without-number"],
)
def test_inbound_message_without_required_fields_is_malformed(
    adapter: TelnyxCarrier, changes: dict[str, Any]
) -> None:
    doc = data_variant("sms_inbound", **changes)
    if "id" in changes:
        doc["data"].pop("id")
    with pytest.raises(MalformedWebhookError):
        adapter.parse_inbound_message(signed(doc, kind="sms"))


def test_inbound_message_id_falls_back_to_the_event_id(adapter: TelnyxCarrier) -> None:
    doc = data_variant("sms_inbound", id=None)
    message = adapter.parse_inbound_message(signed(doc, kind="sms"))
    assert message.event_id == doc["data"]["id"]


def test_inbound_message_event_on_the_status_parser_is_unsupported(adapter: TelnyxCarrier) -> None:
    with pytest.raises(UnsupportedEventError):
        adapter.parse_status(scenario_request("sms_inbound", "status"))


@pytest.mark.parametrize(
    ("telnyx_status", "expected"),
    [
        ("queued", DeliveryStatus.QUEUED),
        ("sending", DeliveryStatus.QUEUED),
        ("sent", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("delivery_unconfirmed", DeliveryStatus.SENT),
        ("delivery_failed", DeliveryStatus.UNDELIVERED),
        ("expired", DeliveryStatus.UNDELIVERED),
        ("sending_failed", DeliveryStatus.FAILED),
        ("Delivered", DeliveryStatus.DELIVERED),
    ],
)
def test_delivery_status_table(
    adapter: TelnyxCarrier, telnyx_status: str, expected: DeliveryStatus
) -> None:
    doc = fixture_json("status_delivered")
    doc["data"]["payload"]["to"][0]["status"] = telnyx_status
    update = adapter.parse_status(signed(doc, kind="status"))
    assert update.status is expected
    assert update.event_id == f"{MESSAGE_ID}:{telnyx_status.lower()}"


def test_status_time_is_the_event_time(adapter: TelnyxCarrier) -> None:
    update = adapter.parse_status(scenario_request("status_delivered", "status"))
    assert update.occurred_at == datetime(2026, 4, 14, 15, 5, 4, 501000, tzinfo=UTC)


@pytest.mark.parametrize(
    "changes", [{"id": None}, {"to": None}, {"to": []}, {"to": [{"phone_number": CALLER}]}],
    ids=["no-id", "no-to", "empty-to", "no-status"],
)
def test_status_without_required_fields_is_malformed(
    adapter: TelnyxCarrier, changes: dict[str, Any]
) -> None:
    doc = fixture_json("status_delivered")
    payload = doc["data"]["payload"]
    for name, value in changes.items():
        if value is None:
            payload.pop(name)
        else:
            payload[name] = value
    with pytest.raises(MalformedWebhookError):
        adapter.parse_status(signed(doc, kind="status"))


# -- sending ---------------------------------------------------------------------------------


def test_send_posts_the_documented_json(adapter: TelnyxCarrier, http: responses.RequestsMock) -> None:
    callback = f"{WEBHOOK_BASE}/status"
    http.add(
        responses.POST,
        MESSAGES_URL,
        json=message_response(),
        status=200,
        match=[
            matchers.json_params_matcher(
                {"from": BUSINESS, "to": CALLER, "text": SEND["body"], "type": "SMS",
                 "webhook_url": callback}
            ),
            matchers.header_matcher({"Authorization": f"Bearer {API_KEY}"}),
        ],
    )
    result = adapter.send_sms(**SEND, status_callback_url=callback)
    assert result.message_id == MESSAGE_ID and result.status is DeliveryStatus.QUEUED
    (call,) = http.calls
    assert call.request.req_kwargs["timeout"] == DEFAULT_TIMEOUT


def test_send_with_a_messaging_profile(http: responses.RequestsMock) -> None:
    adapter = TelnyxCarrier(credentials(messaging_profile_id=PROFILE_ID), api_base_url=API_BASE)
    http.add(
        responses.POST,
        MESSAGES_URL,
        json=message_response(),
        match=[
            matchers.json_params_matcher(
                {"from": BUSINESS, "to": CALLER, "text": SEND["body"], "type": "SMS",
                 "messaging_profile_id": PROFILE_ID}
            )
        ],
    )
    adapter.send_sms(**SEND)


@pytest.mark.parametrize(
    ("status", "code", "error", "reason"),
    [
        (400, "40300", RecipientRejectedError, "opted_out"),
        (403, "40300", RecipientRejectedError, "opted_out"),
        (422, "40300", RecipientRejectedError, "opted_out"),
        (400, "40001", RecipientRejectedError, "not_mobile"),
        (400, "40310", RecipientRejectedError, "invalid"),
        (422, "40012", RecipientRejectedError, "invalid"),
        (401, "10009", ProviderAuthError, None),
        (403, "10010", ProviderAuthError, None),
        (400, "10011", RateLimitedError, None),
        (429, "10011", RateLimitedError, None),
        (400, "40305", PermanentProviderError, None),
        (422, "10004", PermanentProviderError, None),
        (500, "40300", TransientProviderError, None),
    ],
)
def test_send_errors_are_classified_by_telnyx_code(
    adapter: TelnyxCarrier,
    http: responses.RequestsMock,
    status: int,
    code: str,
    error: type[Exception],
    reason: str | None,
) -> None:
    detail = f"Messages cannot be sent from '{BUSINESS}' to '{CALLER}' due to an existing block rule."
    http.add(responses.POST, MESSAGES_URL, json=telnyx_error(code, "Title", detail), status=status)
    with pytest.raises(error) as info:
        adapter.send_sms(**SEND)
    exc = info.value
    assert type(exc) is error
    assert exc.code == code and exc.status == status and exc.provider == "telnyx"
    if reason is not None:
        assert exc.reason == reason
    if isinstance(exc, RateLimitedError):
        assert exc.retry_after == 1.0
    if isinstance(exc, TransientProviderError):
        assert exc.ambiguous is not isinstance(exc, RateLimitedError)
    text = f"{exc} {exc!r}"
    assert CALLER not in text and CALLER[1:] not in text and BUSINESS not in text
    assert "block rule" not in text and API_KEY not in text


def test_retry_after_header_is_honoured(
    adapter: TelnyxCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, MESSAGES_URL, json=telnyx_error("10011"), status=429,
             headers={"Retry-After": "9"})
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(**SEND)
    assert info.value.retry_after == 9.0


@pytest.mark.parametrize(
    "body", ["<html>Bad Gateway</html>", json.dumps({"errors": []}), json.dumps({"errors": "x"})],
    ids=["html", "no-errors", "odd-errors"],
)
def test_error_without_a_readable_code(
    adapter: TelnyxCarrier, http: responses.RequestsMock, body: str
) -> None:
    http.add(responses.POST, MESSAGES_URL, body=body, status=502)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(**SEND)
    assert info.value.ambiguous is True and info.value.code is None


@pytest.mark.parametrize(
    "body", ["not json", json.dumps({"data": {"to": []}}), json.dumps({"errors": []})],
    ids=["garbage", "no-id", "no-data"],
)
def test_accepted_send_without_a_readable_id_is_ambiguous(
    adapter: TelnyxCarrier, http: responses.RequestsMock, body: str
) -> None:
    http.add(responses.POST, MESSAGES_URL, body=body, status=200)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(**SEND)
    assert info.value.ambiguous is True


def test_send_result_keeps_parts_and_status(
    adapter: TelnyxCarrier, http: responses.RequestsMock
) -> None:
    body = message_response(parts=3, to=[{"phone_number": CALLER, "status": "sending"}])
    http.add(responses.POST, MESSAGES_URL, json=body)
    result = adapter.send_sms(**SEND)
    assert result.segments == 3 and result.status is DeliveryStatus.QUEUED


def test_find_sent_message_is_not_available(adapter: TelnyxCarrier) -> None:
    with pytest.raises(NotImplementedError):
        adapter.find_sent_message(
            to=CALLER, from_=BUSINESS, body=SEND["body"],
            sent_after=datetime(2026, 4, 14, 15, 5, tzinfo=UTC),
        )


def test_nothing_secret_is_logged(
    adapter: TelnyxCarrier, http: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http.add(responses.POST, MESSAGES_URL, json=telnyx_error("40300", detail=CALLER), status=400)
    with pytest.raises(RecipientRejectedError):
        adapter.send_sms(**SEND)
    bad = scenario_request("sms_inbound", "sms", key=OTHER_KEY)
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(bad)
    for secret in (API_KEY, CALLER, CALLER[1:], SEND["body"], bad.headers[SIG]):
        assert secret not in caplog.text



# -- line-type lookups -----------------------------------------------------------------------

LOOKUP_URL = f"{API_BASE}/v2/number_lookup/%2B12025550143"


def lookup_response(kind: str | None) -> dict[str, Any]:
    """The documented ``GET /v2/number_lookup/{number}?type=carrier`` answer."""
    return {
        "data": {
            "caller_name": None,
            "carrier": {"error_code": None, "mobile_country_code": "310",
                        "mobile_network_code": "260", "name": "T-Mobile USA", "type": kind,
                        "normalized_carrier": "T-Mobile"},
            "country_code": "US",
            "national_format": "(202) 555-0143",
            "phone_number": CALLER,
            "portability": {"line_type": kind, "ported_status": "N"},
            "record_type": "number_lookup",
        }
    }


@pytest.mark.parametrize(
    ("telnyx_type", "expected"),
    [
        ("mobile", "mobile"),
        ("fixed line", "landline"),
        ("voip", "voip"),
        ("toll free", "tollFree"),
        ("premium rate", "premium"),
        ("shared cost", "sharedCost"),
        ("pager", "pager"),
        ("voicemail", "voicemail"),
        ("fixed line or mobile", "fixedLineOrMobile"),
        ("unknown", None),
        (None, None),
    ],
)
def test_line_type_lookup(
    adapter: TelnyxCarrier, http: responses.RequestsMock, telnyx_type: str | None,
    expected: str | None,
) -> None:
    http.add(
        responses.GET,
        LOOKUP_URL,
        json=lookup_response(telnyx_type),
        match=[
            matchers.query_param_matcher({"type": "carrier"}),
            matchers.header_matcher({"Authorization": f"Bearer {API_KEY}"}),
        ],
    )
    assert adapter.lookup_line_type(CALLER) == expected


def test_landline_lookup_feeds_the_policys_untextable_set(
    adapter: TelnyxCarrier, http: responses.RequestsMock
) -> None:
    from connector.domain.policy import UNTEXTABLE_LINE_TYPES

    http.add(responses.GET, LOOKUP_URL, json=lookup_response("fixed line"))
    assert adapter.lookup_line_type(CALLER) in UNTEXTABLE_LINE_TYPES


def test_line_type_lookup_errors_are_classified(
    adapter: TelnyxCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.GET, LOOKUP_URL, json=telnyx_error("10009"), status=401)
    with pytest.raises(ProviderAuthError):
        adapter.lookup_line_type(CALLER)
    http.replace(responses.GET, LOOKUP_URL, body="not json", status=200)
    assert adapter.lookup_line_type(CALLER) is None


# -- end to end through the connector's webhook views ----------------------------------------

ACCOUNT = "acme-plumbing"
PUBLIC = "https://hooks.example.test"  # TEXTBACK_PUBLIC_URL of the test settings


def register_carrier(monkeypatch: pytest.MonkeyPatch, adapter: type[CarrierAdapter]) -> None:
    """Make ``adapter`` a known ``carrier.kind`` for one test.

    Until ``carrier_adapters.CARRIERS`` lists it, the registry and the account schema's list
    of kinds (built from the registry at import) are extended here; once it is registered,
    this does nothing.
    """
    from carrier_adapters import CARRIERS
    from connector.settings import account_schema

    monkeypatch.setitem(CARRIERS, adapter.name, adapter)
    for validator in account_schema.CarrierSchema._declared_fields["kind"].validators:
        choices = getattr(validator, "choices", None)
        if choices is not None and adapter.name not in choices:
            monkeypatch.setattr(validator, "choices", [*choices, adapter.name])


@pytest.fixture
def client(app, runtime, monkeypatch):  # type: ignore[no-untyped-def]
    """The app with a Telnyx account on the sandbox CRM."""
    from connector.storage.accounts import import_account

    register_carrier(monkeypatch, TelnyxCarrier)
    doc = {
        "id": ACCOUNT,
        "name": "Acme Plumbing",
        "timezone": "America/New_York",
        "carrier": {
            "kind": "telnyx",
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


def post(client, kind: str, scenario: str | bytes, *, key: Ed25519PrivateKey = SIGNING_KEY):  # type: ignore[no-untyped-def]
    request = signed(
        fixture_body(scenario) if isinstance(scenario, str) else scenario, kind=kind, key=key
    )
    return client.post(
        f"/webhooks/telnyx/{ACCOUNT}/{kind}", data=request.body, headers=dict(request.headers)
    )


def test_end_to_end_missed_call_text_and_shared_messaging_url(client, runtime, http) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from connector.storage.models import Message, OptOut

    http.add(responses.POST, MESSAGES_URL, json=message_response(), status=200)
    http.add(responses.GET, LOOKUP_URL, json=lookup_response("mobile"))

    incoming = post(client, "voice", "voice_texml_incoming_call")
    assert incoming.status_code == 200 and incoming.mimetype == "text/xml"
    dial = parse_xml(incoming.data).find("Dial")
    assert dial is not None and dial.get("action") == f"{PUBLIC}/webhooks/telnyx/{ACCOUNT}/voice"
    assert [n.text for n in dial.findall("Number")] == [FORWARD]

    assert post(client, "voice", "voice_cc_hangup_timeout", key=OTHER_KEY).status_code == 403
    for _ in range(2):  # Telnyx re-delivers; one text all the same
        assert post(client, "voice", "voice_cc_hangup_timeout").status_code == 200
    lookup, send = http.calls  # the caller's line type first (Number Lookup), then the text
    assert lookup.request.method == "GET" and lookup.request.url.startswith(LOOKUP_URL)
    sent = json.loads(send.request.body)
    assert (sent["to"], sent["from"]) == (CALLER, BUSINESS)
    assert sent["webhook_url"] == f"{PUBLIC}/webhooks/telnyx/{ACCOUNT}/status"

    # The messaging profile posts delivery reports and inbound texts to one URL, ours for sms.
    assert post(client, "sms", "status_delivered").status_code == 200
    # The status URL (each text's webhook_url) takes delivery reports only.
    assert post(client, "status", "sms_inbound_revoke").status_code == 400
    with runtime.db.session() as s:
        assert s.get(OptOut, (ACCOUNT, CALLER)) is None
    assert post(client, "sms", "sms_inbound_revoke").status_code == 200
    with runtime.db.session() as s:
        message = s.scalar(select(Message).where(Message.carrier_message_id == MESSAGE_ID))
        assert message is not None and message.status == "delivered"
        assert s.get(OptOut, (ACCOUNT, CALLER)) is not None  # REVOKE, which Telnyx ignores


@pytest.mark.parametrize("odd", [["message.finalized"], {"x": 1}, 7])
def test_an_event_type_that_is_not_text_is_unsupported_not_a_crash(
    adapter: TelnyxCarrier, odd: Any
) -> None:
    # Found by an outside probe: a list as ``event_type`` raised an unhashable-type TypeError.
    doc = fixture_json("status_delivered")
    doc["data"]["event_type"] = odd
    odd_request = signed(doc, kind="status")
    with pytest.raises(UnsupportedEventError):
        adapter.parse_status(odd_request)
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(odd_request)
