"""The Plivo adapter: the carrier contract suite plus Plivo's own rules.

Fixtures in ``tests/fixtures/plivo`` are signed here, at test time, with a test Auth Token:
``X-Plivo-Signature-V3`` for the ``voice`` URL, ``X-Plivo-Signature-V2`` for ``sms`` and
``status``. HTTP goes to ``responses`` stubs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree as ET

import marshmallow
import pytest
import requests
import responses
from responses import matchers

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.plivo import PlivoCarrier
from carrier_adapters.plivo.api import MAX_PAGES
from carrier_adapters.plivo.webhooks import (
    SIGNATURE_HEADERS,
    compute_v2_signature,
    compute_v3_signature,
    v3_string_to_sign,
)
from carrier_adapters.provisioning import webhook_urls
from connector.kernel.errors import (
    MalformedWebhookError,
    PermanentProviderError,
    TransientProviderError,
    WebhookVerificationError,
)
from connector.kernel.events import CallOutcome, DeliveryStatus, MissedCall
from connector.kernel.http import WebhookRequest
from tests.carrier_adapters.conftest import Fixtures
from tests.contracts.carrier_contract import (
    CallSourceContract,
    CarrierContract,
    IncomingCallContract,
    MessagingContract,
    SignsUrlContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract
from tests.stubs.plivo_numbers import PlivoNumbersFake

FIXTURES = Fixtures("plivo")
AUTH_ID = "MAODU4NJU3NDMWMGQ1ZW"
AUTH_TOKEN = "test-plivo-auth-token-Zm9vYmFy"
API_BASE = "https://plivo-api.test"
MESSAGES_URL = f"{API_BASE}/v1/Account/{AUTH_ID}/Message/"
WEBHOOK_BASE = "https://textback.example.com/webhooks/plivo/acme-plumbing"
CALLER, BUSINESS = "+12025550143", "+14155550100"
NONCE = "05429567804466091622"
CALL_UUID = "4b1e9a5c-7d2f-4e8a-9c3b-2f6d8e0a1b47"
MESSAGE_UUID = "db3ce55a-7f1d-11e1-8ea7-1231380bc196"
FORM = "application/x-www-form-urlencoded"
SEND = {
    "to": CALLER,
    "from_": BUSINESS,
    "body": "Sorry we missed your call! This is Acme Plumbing. How can we help?",
    "status_callback_url": f"{WEBHOOK_BASE}/status",
}


# -- helpers ---------------------------------------------------------------------------------


fixture_body = FIXTURES.body


def fixture_form(scenario: str) -> dict[str, str]:
    return dict(parse_qsl(fixture_body(scenario).decode("utf-8"), keep_blank_values=True))


def variant(scenario: str, *, drop: Sequence[str] = (), **changes: str) -> dict[str, str]:
    form = {k: v for k, v in fixture_form(scenario).items() if k not in drop}
    form.update(changes)
    return form


def signed(
    body: bytes | Mapping[str, str],
    *,
    kind: str = "voice",
    url: str | None = None,
    token: str = AUTH_TOKEN,
    scheme: str | None = None,
    nonce: str = NONCE,
) -> WebhookRequest:
    """A Plivo webhook signed for ``token`` with ``nonce``: V3 for voice, V2 otherwise (or
    ``scheme``)."""
    raw = body if isinstance(body, bytes) else urlencode(body).encode()
    target = url or f"{WEBHOOK_BASE}/{kind}"
    headers = {"Content-Type": FORM}
    if (scheme or ("v3" if kind == "voice" else "v2")) == "v3":
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        headers["X-Plivo-Signature-V3"] = compute_v3_signature(token, target, nonce, "POST", pairs)
        headers["X-Plivo-Signature-V3-Nonce"] = nonce
    else:
        headers["X-Plivo-Signature-V2"] = compute_v2_signature(token, target, nonce)
        headers["X-Plivo-Signature-V2-Nonce"] = nonce
    return WebhookRequest.build(url=target, headers=headers, body=raw)


def b64_hmac(key: str, message: str) -> str:
    """HMAC-SHA256, Base64: computed here independently of the adapter's helpers."""
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode()


def credentials(**changes: str) -> dict[str, str]:
    return {"auth_id": AUTH_ID, "auth_token": AUTH_TOKEN, **changes}


def plivo_error(status: int) -> dict[str, Any]:
    """Plivo's error body: an ``api_id`` and free text (which may quote the numbers)."""
    return {"api_id": "1a2b3c4d-0000-11e1-8ea7-1231380bc196", "error": f"{status}: cannot send to {CALLER}"}


def parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - our own Plivo XML, not untrusted input


@pytest.fixture
def adapter() -> PlivoCarrier:
    return PlivoCarrier(credentials(), api_base_url=API_BASE)


# -- the contract suite ----------------------------------------------------------------------


class TestPlivoContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, IncomingCallContract, MessagingContract,
    SignsUrlContract,
):
    """The generic carrier contract, fed with Plivo's fixtures."""

    adapter_class = PlivoCarrier
    secret_credentials = frozenset({"auth_token"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_incoming_call": None,
        "voice_dial_no_answer": CallOutcome.NO_ANSWER,
        "voice_dial_timeout": CallOutcome.NO_ANSWER,
        "voice_dial_busy": CallOutcome.BUSY,
        "voice_dial_failed": CallOutcome.FAILED,
        "voice_dial_completed_unanswered": CallOutcome.CANCELED,
        "voice_dial_answered": None,
        "voice_dial_unknown_status": CallOutcome.UNKNOWN,
        "voice_hangup": None,
    }
    unknown_call_scenario = "voice_dial_unknown_status"
    incoming_call_scenario = "voice_incoming_call"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "0936ec98-7c4c-11e9-a9b5-0242ac110002",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "opt_out_type": None,
            "media_count": 0,
        },
        "sms_inbound_stop": {"sender": CALLER, "body": "STOP", "opt_out_type": "STOP"},
    }
    status_scenarios: Mapping[str, Mapping[str, Any]] = {
        "status_sent": {"status": DeliveryStatus.SENT, "message_id": MESSAGE_UUID},
        "status_delivered": {
            "message_id": MESSAGE_UUID,
            "event_id": f"{MESSAGE_UUID}:delivered",
            "status": DeliveryStatus.DELIVERED,
            "error_code": None,
        },
        "status_undelivered": {"status": DeliveryStatus.UNDELIVERED, "error_code": "30"},
        "status_failed_opted_out": {"status": DeliveryStatus.FAILED, "error_code": "200"},
        "status_unknown": {"status": DeliveryStatus.UNKNOWN, "error_code": None},
    }
    unknown_status_scenario = "status_unknown"
    signature_headers = SIGNATURE_HEADERS
    fake_api_base_url = API_BASE
    owned_numbers = ("+14155550100", "+14155550101")

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        PlivoNumbersFake(AUTH_ID, AUTH_TOKEN, self.owned_numbers).install(http, API_BASE)

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        PlivoNumbersFake(AUTH_ID, "another-token", self.owned_numbers).install(http, API_BASE)
        return adapter

    def credentials(self) -> Mapping[str, Any]:
        return credentials()

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario), kind=kind)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario), kind=kind, token="not-the-auth-token")

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        """V3 (URL, parameters, nonce) on ``voice``, V2 (URL, nonce) otherwise; a fresh nonce
        each time, as Plivo does (a nonce is spent once)."""
        nonce = str(secrets.randbelow(10**20)).zfill(20)
        headers = {"Content-Type": content_type}
        if url.rstrip("/").endswith("/voice"):
            form = WebhookRequest.build(url=url, headers=headers, body=body)
            headers["X-Plivo-Signature-V3"] = compute_v3_signature(
                AUTH_TOKEN, url, nonce, "POST", form.form_items
            )
            headers["X-Plivo-Signature-V3-Nonce"] = nonce
        else:
            headers["X-Plivo-Signature-V2"] = compute_v2_signature(AUTH_TOKEN, url, nonce)
            headers["X-Plivo-Signature-V2-Nonce"] = nonce
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
        body = {
            "api_id": "db342550-7f1d-11e1-8ea7-1231380bc196",
            "message": "message(s) queued",
            "message_uuid": [MESSAGE_UUID],
        }
        return 202, body, {"message_id": MESSAGE_UUID, "status": DeliveryStatus.QUEUED}

    def error_body(self, status: int) -> Any:
        return plivo_error(status)


# -- signatures ------------------------------------------------------------------------------


def test_v2_signature_matches_plivos_published_vector() -> None:
    # The vector of plivo-python's tests/resources/test_signature.py (validate_signature).
    assert compute_v2_signature("my_auth_token", "https://answer.url", "12345") == (
        "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    )


def test_v2_signature_leaves_out_the_query() -> None:
    plain = compute_v2_signature(AUTH_TOKEN, f"{WEBHOOK_BASE}/sms", NONCE)
    assert compute_v2_signature(AUTH_TOKEN, f"{WEBHOOK_BASE}/sms?a=1", NONCE) == plain
    assert plain == b64_hmac(AUTH_TOKEN, f"{WEBHOOK_BASE}/sms{NONCE}")


@pytest.mark.parametrize(
    ("url", "method", "params", "expected"),
    [
        ("https://h.test/v", "POST", [], "https://h.test/v.N"),
        ("https://h.test/v", "POST", [("b", "2"), ("a", "1")], "https://h.test/v?a1b2.N"),
        ("https://h.test/v?z=1&y=2", "POST", [], "https://h.test/v?y=2&z=1.N"),
        ("https://h.test/v?z=1&y=2", "POST", [("b", "x")], "https://h.test/v?y=2&z=1.bx.N"),
        ("https://h.test/v?z=1&y=2", "GET", [], "https://h.test/v?y=2&z=1.N"),
        ("https://h.test/v", "GET", [], "https://h.test/v.N"),
        (
            "https://h.test/v?q=two%20words",
            "POST",
            [("A", "2"), ("A", "10"), ("a", "")],
            "https://h.test/v?q=two words.A10A2a.N",
        ),
    ],
    ids=["bare", "post-params", "query", "query-and-params", "get-query", "get-bare", "repeats"],
)
def test_v3_string_to_sign(url: str, method: str, params: list[tuple[str, str]], expected: str) -> None:
    """The construction of plivo-python's ``signature_v3`` (checked against it case by case)."""
    assert v3_string_to_sign(url, "N", method, params) == expected
    assert compute_v3_signature(AUTH_TOKEN, url, "N", method, params) == b64_hmac(AUTH_TOKEN, expected)


def test_voice_url_refuses_a_v2_signature(adapter: PlivoCarrier) -> None:
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(fixture_body("voice_dial_no_answer"), scheme="v2"))


@pytest.mark.parametrize("kind", ["sms", "status"])
def test_messaging_urls_refuse_a_v3_signature(adapter: PlivoCarrier, kind: str) -> None:
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(fixture_body("sms_inbound"), kind=kind, scheme="v3"))


def test_voice_signature_covers_the_body(adapter: PlivoCarrier) -> None:
    request = signed(fixture_body("voice_dial_no_answer"))
    tampered = WebhookRequest.build(
        url=request.url,
        headers=dict(request.headers),
        body=request.body.replace(b"DialStatus=no-answer", b"DialStatus=completed"),
    )
    adapter.verify_request(request)
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(tampered)


def test_v3_header_may_list_several_signatures(adapter: PlivoCarrier) -> None:
    request = signed(fixture_body("voice_dial_busy"))
    good = request.headers["X-Plivo-Signature-V3"]
    headers = dict(request.headers)
    headers["X-Plivo-Signature-V3"] = f"c2lnbmVkIGJ5IGFub3RoZXIgdG9rZW4=, {good}"
    adapter.verify_request(WebhookRequest.build(url=request.url, headers=headers, body=request.body))
    headers["X-Plivo-Signature-V3"] = "c2lnbmVkIGJ5IGFub3RoZXIgdG9rZW4=,"
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(WebhookRequest.build(url=request.url, headers=headers, body=request.body))


def test_nonce_is_part_of_the_signature(adapter: PlivoCarrier) -> None:
    for kind, header in (("voice", "X-Plivo-Signature-V3-Nonce"), ("sms", "X-Plivo-Signature-V2-Nonce")):
        request = signed(fixture_body("sms_inbound"), kind=kind)
        headers = dict(request.headers)
        headers[header] = "11111111111111111111"
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(WebhookRequest.build(url=request.url, headers=headers, body=request.body))


def test_voice_body_that_is_not_a_form_is_refused(adapter: PlivoCarrier) -> None:
    url = f"{WEBHOOK_BASE}/voice"
    headers = {
        "Content-Type": "application/json",
        "X-Plivo-Signature-V3": compute_v3_signature(AUTH_TOKEN, url, NONCE, "POST", []),
        "X-Plivo-Signature-V3-Nonce": NONCE,
    }
    request = WebhookRequest.build(url=url, headers=headers, body=b'{"DialStatus": "busy"}')
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request)


def test_verification_error_does_not_echo_the_signature(adapter: PlivoCarrier) -> None:
    request = signed(fixture_body("voice_dial_busy"), token="someone-else")
    with pytest.raises(WebhookVerificationError) as info:
        adapter.verify_request(request)
    assert request.headers["X-Plivo-Signature-V3"] not in str(info.value)


# -- voice webhooks --------------------------------------------------------------------------


def test_dial_action_is_fully_parsed(adapter: PlivoCarrier) -> None:
    form = fixture_form("voice_dial_no_answer")
    event = adapter.parse_call_event(signed(fixture_body("voice_dial_no_answer")))
    assert isinstance(event, MissedCall)
    assert event.event_id == CALL_UUID
    assert event.caller == CALLER and event.caller_raw == "12025550143"  # Plivo omits the +
    assert event.called == BUSINESS
    assert dict(event.raw) == form


def test_event_id_prefers_the_a_leg_uuid(adapter: PlivoCarrier) -> None:
    form = variant("voice_dial_busy", CallUUID="0a0a0a0a-1b1b-4c2c-8d3d-4e4e4e4e4e4e")
    event = adapter.parse_call_event(signed(form))
    assert event is not None and event.event_id == CALL_UUID


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"DialStatus": "completed", "DialBLegUUID": "9f3c2d1e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"}, None),
        ({"DialStatus": "completed", "DialBLegUUID": ""}, CallOutcome.CANCELED),
        ({"DialStatus": "Busy"}, CallOutcome.BUSY),
        ({"DialStatus": "cancel"}, CallOutcome.CANCELED),
    ],
)
def test_dial_statuses(adapter: PlivoCarrier, changes: dict[str, str], expected: CallOutcome | None) -> None:
    event = adapter.parse_call_event(signed(variant("voice_dial_no_answer", **changes)))
    assert (event.outcome if event else None) is expected


def test_voice_webhook_without_call_uuid_is_malformed(adapter: PlivoCarrier) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(signed(variant("voice_dial_busy", drop=("CallUUID",))))


@pytest.mark.parametrize(
    "form",
    [
        variant("voice_incoming_call", Direction="outbound"),
        variant("voice_incoming_call", CallStatus="in-progress"),
        variant("voice_incoming_call", HangupCause="NORMAL_CLEARING"),
    ],
    ids=["outbound", "in-progress", "hangup"],
)
def test_other_voice_requests_are_not_incoming_calls(adapter: PlivoCarrier, form: dict[str, str]) -> None:
    assert adapter.is_incoming_call(signed(form)) is False


def test_incoming_call_is_answered_with_a_dial() -> None:
    adapter = PlivoCarrier(credentials())
    routing = CallRouting(
        forward_to=("+14155550199", "+14155550198"),
        ring_timeout_seconds=20,
        action_url=f"{WEBHOOK_BASE}/voice",
        status_callback_url=f"{WEBHOOK_BASE}/voice",
    )
    reply = adapter.reply("voice", signed(fixture_body("voice_incoming_call")), routing)
    assert reply.content_type == "application/xml" and reply.status == 200
    root = parse_xml(reply.body)
    dial = root.find("Dial")
    assert root.tag == "Response" and dial is not None
    assert dial.attrib == {
        "action": f"{WEBHOOK_BASE}/voice",
        "method": "POST",
        "redirect": "true",
        "timeout": "20",
    }
    assert [n.text for n in dial.findall("Number")] == ["14155550199", "14155550198"]


def test_dial_needs_a_number(adapter: PlivoCarrier) -> None:
    routing = CallRouting((), 20, f"{WEBHOOK_BASE}/voice", f"{WEBHOOK_BASE}/voice")
    with pytest.raises(ValueError):
        adapter.reply("voice", None, routing)


def test_other_replies(adapter: PlivoCarrier) -> None:
    hangup = parse_xml(adapter.reply("voice").body)
    assert [child.tag for child in hangup] == ["Hangup"]
    sms = adapter.reply("sms")
    assert sms.content_type == "application/xml" and len(parse_xml(sms.body)) == 0
    assert adapter.reply("status").body == b""
    with pytest.raises(ValueError):
        adapter.reply("fax")


# -- messaging webhooks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intent", "expected"), [("optin", "START"), ("help", "HELP"), ("", None), ("other", None)]
)
def test_message_intent_becomes_opt_out_type(
    adapter: PlivoCarrier, intent: str, expected: str | None
) -> None:
    request = signed(variant("sms_inbound", MessageIntent=intent), kind="sms")
    assert adapter.parse_inbound_message(request).opt_out_type == expected


def test_mms_text_and_media_count(adapter: PlivoCarrier) -> None:
    form = variant("sms_inbound", drop=("Text",), Type="mms", Body="Photo attached", MediaCount="2")
    message = adapter.parse_inbound_message(signed(form, kind="sms"))
    assert message.body == "Photo attached" and message.media_count == 2


@pytest.mark.parametrize("drop", ["MessageUUID", "From"])
def test_inbound_message_without_required_fields_is_malformed(adapter: PlivoCarrier, drop: str) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_inbound_message(signed(variant("sms_inbound", drop=(drop,)), kind="sms"))


@pytest.mark.parametrize("drop", ["MessageUUID", "Status"])
def test_status_without_required_fields_is_malformed(adapter: PlivoCarrier, drop: str) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_status(signed(variant("status_delivered", drop=(drop,)), kind="status"))


@pytest.mark.parametrize(
    ("scenario", "url_kind"),
    [
        ("status_delivered", "sms"),
        ("status_delivered", "status"),
        ("sms_inbound", "status"),
        ("sms_inbound", "sms"),
        ("voice_dial_busy", "voice"),
    ],
)
def test_the_url_decides_what_is_parsed(adapter: PlivoCarrier, scenario: str, url_kind: str) -> None:
    # Found by an outside probe: the V2 signature covers the URL and a nonce, not the body, so
    # the headers of a delivery report to our status URL could carry an inbound text.
    request = signed(fixture_body(scenario), kind=url_kind)
    assert adapter.webhook_kind(url_kind, request) == url_kind


def test_a_delivery_report_on_the_sms_url_is_not_an_inbound_text(adapter: PlivoCarrier) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_inbound_message(signed(fixture_body("status_delivered"), kind="sms"))


def test_an_inbound_text_on_the_status_url_is_not_a_delivery_report(adapter: PlivoCarrier) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_status(signed(fixture_body("sms_inbound"), kind="status"))


@pytest.mark.parametrize("kind", ["voice", "sms", "status"])
def test_the_nonce_of_the_urls_scheme_is_the_replay_nonce(adapter: PlivoCarrier, kind: str) -> None:
    request = signed(fixture_body("sms_inbound"), kind=kind, nonce="31415926535897932384")
    adapter.verify_request(request)
    assert adapter.replay_nonce(request) == "31415926535897932384"


@pytest.mark.parametrize("kind", ["voice", "sms"])
def test_an_empty_nonce_is_refused(adapter: PlivoCarrier, kind: str) -> None:
    body = fixture_body("voice_dial_busy" if kind == "voice" else "sms_inbound")
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(signed(body, kind=kind, nonce=""))


# -- sending ---------------------------------------------------------------------------------


def test_send_posts_the_message_with_basic_auth(adapter: PlivoCarrier, http: responses.RequestsMock) -> None:
    http.add(
        responses.POST,
        MESSAGES_URL,
        json={"api_id": "x", "message": "message(s) queued", "message_uuid": [MESSAGE_UUID]},
        status=202,
        match=[
            matchers.json_params_matcher(
                {
                    "src": BUSINESS,
                    "dst": CALLER,
                    "text": SEND["body"],
                    "type": "sms",
                    "url": SEND["status_callback_url"],
                    "method": "POST",
                }
            )
        ],
    )
    result = adapter.send_sms(**SEND)
    assert result.message_id == MESSAGE_UUID and result.status is DeliveryStatus.QUEUED
    expected = "Basic " + base64.b64encode(f"{AUTH_ID}:{AUTH_TOKEN}".encode()).decode()
    assert http.calls[0].request.headers["Authorization"] == expected


def test_send_without_status_url_omits_it(adapter: PlivoCarrier, http: responses.RequestsMock) -> None:
    http.add(responses.POST, MESSAGES_URL, json={"message_uuid": [MESSAGE_UUID]}, status=202)
    adapter.send_sms(to=CALLER, from_=BUSINESS, body="Hi")
    sent = json.loads(http.calls[0].request.body)
    assert "url" not in sent and "method" not in sent


@pytest.mark.parametrize("body", [{"message": "message(s) queued"}, {"message_uuid": []}, "ok"])
def test_accepted_send_without_an_id_is_ambiguous(
    adapter: PlivoCarrier, http: responses.RequestsMock, body: Any
) -> None:
    if isinstance(body, dict):
        http.add(responses.POST, MESSAGES_URL, json=body, status=202)
    else:
        http.add(responses.POST, MESSAGES_URL, body=body, status=202)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(**SEND)
    assert info.value.ambiguous is True


def test_error_text_is_never_copied(adapter: PlivoCarrier, http: responses.RequestsMock) -> None:
    http.add(responses.POST, MESSAGES_URL, json=plivo_error(400), status=400)
    with pytest.raises(PermanentProviderError) as info:
        adapter.send_sms(**SEND)
    assert "cannot send" not in str(info.value) and info.value.status == 400


# -- reconciliation --------------------------------------------------------------------------

SENT_AFTER = datetime(2026, 4, 14, 15, 5, 0, tzinfo=UTC)


def mdr(**changes: Any) -> dict[str, Any]:
    """A message detail record as the list API returns it (fields from the Message object)."""
    record: dict[str, Any] = {
        "error_code": None,
        "from_number": "14155550100",
        "message_direction": "outbound",
        "message_state": "delivered",
        "message_time": "2026-04-14 15:04:30+00:00",
        "message_type": "sms",
        "message_uuid": MESSAGE_UUID,
        "resource_uri": f"/v1/Account/{AUTH_ID}/Message/{MESSAGE_UUID}/",
        "to_number": "12025550143",
        "total_amount": "0.00350",
        "total_rate": "0.00350",
        "units": 1,
    }
    record.update(changes)
    return record


def stub_list(
    http: responses.RequestsMock, objects: list[dict[str, Any]], *, offset: int = 0, more: bool = False
) -> None:
    next_page = f"/v1/Account/{AUTH_ID}/Message/?limit=20&offset={offset + 20}" if more else None
    meta = {"limit": 20, "offset": offset, "total_count": len(objects), "next": next_page, "previous": None}
    http.add(
        responses.GET,
        MESSAGES_URL,
        json={"api_id": "x", "meta": meta, "objects": objects},
        match=[
            matchers.query_param_matcher(
                {
                    "message_direction": "outbound",
                    "message_time__gte": "2026-04-14 15:04:00",
                    "limit": "20",
                    "offset": str(offset),
                }
            )
        ],
    )


def test_find_sent_message_finds_our_text(adapter: PlivoCarrier, http: responses.RequestsMock) -> None:
    other = mdr(message_uuid="11111111-7f1d-11e1-8ea7-1231380bc196", to_number="12025550100")
    stub_list(http, [other, mdr()])
    found = adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=SEND["body"], sent_after=SENT_AFTER)
    assert found is not None
    assert found.message_id == MESSAGE_UUID and found.status is DeliveryStatus.DELIVERED
    assert found.segments == 1


@pytest.mark.parametrize(
    "record",
    [
        mdr(message_direction="inbound"),
        mdr(from_number="14155550101"),
        mdr(message_time="2026-04-14 15:03:59+00:00"),
        mdr(message_time="2026-04-14 20:33:59+05:30"),
        mdr(message_time=None),
    ],
    ids=["inbound", "other-sender", "too-old", "too-old-with-offset", "no-time"],
)
def test_find_sent_message_ignores_other_records(
    adapter: PlivoCarrier, http: responses.RequestsMock, record: dict[str, Any]
) -> None:
    stub_list(http, [record])
    assert adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=SENT_AFTER) is None


def test_find_sent_message_reads_the_time_offset(adapter: PlivoCarrier, http: responses.RequestsMock) -> None:
    # 20:34:30+05:30 is 15:04:30 UTC: 30 s before sent_after, inside the clock-skew window.
    stub_list(http, [mdr(message_time="2026-04-14 20:34:30+05:30")])
    assert adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=SENT_AFTER)


def test_find_sent_message_follows_pages(adapter: PlivoCarrier, http: responses.RequestsMock) -> None:
    stub_list(http, [mdr(to_number="12025550100")], more=True)
    stub_list(http, [mdr()], offset=20)
    found = adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=SENT_AFTER)
    assert found is not None and len(http.calls) == 2


def test_find_sent_message_does_not_claim_absence_it_did_not_check(
    adapter: PlivoCarrier, http: responses.RequestsMock
) -> None:
    for page in range(MAX_PAGES):
        stub_list(http, [mdr(to_number="12025550100")], offset=page * 20, more=True)
    with pytest.raises(TransientProviderError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=SENT_AFTER)
    assert len(http.calls) == MAX_PAGES


def test_find_sent_message_needs_an_aware_time(adapter: PlivoCarrier) -> None:
    with pytest.raises(ValueError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=datetime(2026, 4, 14))


def test_find_sent_message_classifies_errors(adapter: PlivoCarrier, http: responses.RequestsMock) -> None:
    http.add(responses.GET, MESSAGES_URL, body=requests.exceptions.ReadTimeout())
    with pytest.raises(TransientProviderError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=SENT_AFTER)


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "creds",
    [
        {"auth_token": AUTH_TOKEN},
        {"auth_id": AUTH_ID},
        credentials(auth_token=""),
        credentials(auth_id="XA" + "0" * 18),
        credentials(auth_id="MA123"),
        credentials(auth_id="ma" + "a" * 18),
    ],
    ids=["no-id", "no-token", "empty-token", "not-MA-or-SA", "short-id", "lower-case"],
)
def test_invalid_credentials_are_refused(creds: dict[str, str]) -> None:
    with pytest.raises(marshmallow.ValidationError):
        PlivoCarrier(creds)


def test_subaccount_id_is_accepted_and_default_base_url() -> None:
    adapter = PlivoCarrier(credentials(auth_id="SA" + "Z" * 18))
    assert adapter.api_base_url == "https://api.plivo.com"


# -- setup calls beyond the contract ----------------------------------------------------------


def test_plivo_pages_numbers_and_names_the_shared_application() -> None:
    owned = [f"+1415555{n:04d}" for n in range(100, 125)]  # more than one page of 20
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        fake = PlivoNumbersFake(AUTH_ID, AUTH_TOKEN, owned)
        fake.install(http, API_BASE)
        plivo = PlivoCarrier(credentials(), api_base_url=API_BASE)
        listed = plivo.list_numbers()
        assert [n.e164 for n in listed] == owned
        assert listed[0].capabilities == {"voice", "sms"}
        urls = webhook_urls("https://textback.example.com", "plivo", "acme")
        changes = plivo.point_webhooks(owned[3], urls)
        assert {c.field for c in changes} >= {"Application Line 4: answer_url"}
        assert fake.updates == [{"answer_url": urls.voice, "answer_method": "POST",
                                 "message_url": urls.sms, "message_method": "POST"}]
        with pytest.raises(PermanentProviderError, match="must answer"):
            plivo.point_webhooks(owned[0], urls, calls="watch")
        fake.numbers[owned[1].lstrip("+")]["application"] = None
        with pytest.raises(PermanentProviderError, match="no Application"):
            plivo.point_webhooks(owned[1], urls)
        assert len(fake.updates) == 1
