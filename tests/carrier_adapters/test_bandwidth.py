"""The Bandwidth adapter: the carrier contract suite plus Bandwidth's own rules.

Fixtures in ``tests/fixtures/bandwidth`` are JSON bodies as Bandwidth posts them; the tests add
the HTTP Basic callback credentials (Bandwidth's only callback authentication) at test time.
HTTP, including the OAuth 2.0 token endpoint, goes to ``responses`` stubs.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

import marshmallow
import pytest
import requests
import responses
from responses import matchers

import connector.kernel.http as connector_http
from carrier_adapters.bandwidth import BandwidthCarrier
from carrier_adapters.bandwidth import api as bandwidth_api
from carrier_adapters.base import CallRouting, CarrierAdapter
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
from connector.kernel.http import WebhookRequest
from tests.carrier_adapters.conftest import Fixtures
from tests.contracts.carrier_contract import (
    CallSourceContract,
    CarrierContract,
    IncomingCallContract,
    MessagingContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract

FIXTURES = Fixtures("bandwidth")
ACCOUNT_ID = "9900000"
APPLICATION_ID = "93de2206-9669-4e07-948d-329f4b722ee2"
CLIENT_ID = "test-client-id-6f1c"
CLIENT_SECRET = "test-client-secret-2b7e9d4a"
API_USER, API_PASSWORD = "api-user", "test-api-password-51ac"
CALLBACK_USER, CALLBACK_PASSWORD = "textback", "test-callback-password-8d2f"
API_BASE = "https://bandwidth-messaging.test"
TOKEN_URL = "https://bandwidth-oauth.test/api/v1/oauth2/token"
MESSAGES_URL = f"{API_BASE}/api/v2/users/{ACCOUNT_ID}/messages"
WEBHOOK_BASE = "https://textback.example.com/webhooks/bandwidth/acme-plumbing"
CALLER, BUSINESS, CELL = "+12025550143", "+14155550100", "+14155550199"
A_LEG = "c-95ac8d6e-1a31c52e-b38f-4198-93c1-51633ec68f8d"
MESSAGE_ID = "1593110555875xo7watq5px6rbe5d"
SEND = {
    "to": CALLER,
    "from_": BUSINESS,
    "body": "Sorry we missed your call! This is Acme Plumbing. How can we help?",
    "status_callback_url": f"{WEBHOOK_BASE}/status",
}


# -- helpers ---------------------------------------------------------------------------------


fixture_body = FIXTURES.body


fixture_json = FIXTURES.json


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(
    body: bytes | Any,
    *,
    kind: str = "voice",
    auth: str | None = None,
) -> WebhookRequest:
    """A Bandwidth callback with our Basic credentials (or ``auth`` as the header)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "BandwidthAPI/v2",
        "Authorization": basic(CALLBACK_USER, CALLBACK_PASSWORD) if auth is None else auth,
    }
    return WebhookRequest.build(url=f"{WEBHOOK_BASE}/{kind}", headers=headers, body=raw)


def variant(scenario: str, **changes: Any) -> dict[str, Any]:
    data = fixture_json(scenario)
    data.update(changes)
    return data


def credentials(**changes: Any) -> dict[str, Any]:
    creds: dict[str, Any] = {
        "account_id": ACCOUNT_ID,
        "application_id": APPLICATION_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "callback_username": CALLBACK_USER,
        "callback_password": CALLBACK_PASSWORD,
        "token_url": TOKEN_URL,
    }
    creds.update(changes)
    return {k: v for k, v in creds.items() if v is not None}


def legacy_credentials() -> dict[str, Any]:
    return credentials(client_id=None, client_secret=None, api_username=API_USER, api_password=API_PASSWORD)


def bandwidth_error(status: int, kind: str | None = None) -> dict[str, Any]:
    """Bandwidth's error body (https://dev.bandwidth.com/docs/messaging/errors/)."""
    kinds = {400: "request-validation", 401: "unauthorized", 429: "max-message-queue-size-exceeded"}
    return {
        "type": kind or kinds.get(status, "internal-server-error"),
        "description": f"Your request to {CALLER} could not be accepted",
    }


def message_json(**changes: Any) -> dict[str, Any]:
    """The Message object of a 202 (Bandwidth's OpenAPI ``message`` schema)."""
    message: dict[str, Any] = {
        "id": MESSAGE_ID,
        "owner": BUSINESS,
        "applicationId": APPLICATION_ID,
        "time": "2026-04-14T15:05:02.876Z",
        "segmentCount": 1,
        "direction": "out",
        "to": [CALLER],
        "from": BUSINESS,
        "text": SEND["body"],
    }
    message.update(changes)
    return message


def stub_token(http: responses.RequestsMock, expires_in: int = 3600) -> None:
    """The OAuth 2.0 token endpoint, issuing ``token-1``."""
    http.add(
        responses.POST,
        TOKEN_URL,
        json={"access_token": "token-1", "token_type": "Bearer", "expires_in": expires_in},
        match=[matchers.urlencoded_params_matcher({"grant_type": "client_credentials"})],
    )


def message_posts(http: responses.RequestsMock) -> list[Any]:
    return [c for c in http.calls if c.request.method == "POST" and c.request.url == MESSAGES_URL]


def token_requests(http: responses.RequestsMock) -> int:
    return sum(1 for c in http.calls if c.request.url == TOKEN_URL)


def parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - our own BXML, not untrusted input


@pytest.fixture
def adapter() -> BandwidthCarrier:
    return BandwidthCarrier(credentials(), api_base_url=API_BASE)


ROUTING = CallRouting(
    forward_to=(CELL,),
    ring_timeout_seconds=20,
    action_url=f"{WEBHOOK_BASE}/voice",
    status_callback_url=f"{WEBHOOK_BASE}/voice",
)


# -- the contract suite ----------------------------------------------------------------------


class TestBandwidthContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, IncomingCallContract,
    MessagingContract,
):
    """The generic carrier contract, fed with Bandwidth's fixtures (API credentials mode)."""

    adapter_class = BandwidthCarrier
    secret_credentials = frozenset({"client_secret", "api_password", "callback_password"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_initiate": None,
        "voice_transfer_complete_busy": CallOutcome.BUSY,
        "voice_transfer_complete_timeout": CallOutcome.NO_ANSWER,
        "voice_transfer_complete_rejected": CallOutcome.REJECTED,
        "voice_transfer_complete_callback_error": CallOutcome.FAILED,
        "voice_transfer_complete_hangup": None,
        "voice_transfer_complete_unknown_cause": CallOutcome.UNKNOWN,
        "voice_transfer_complete_timeout_anonymous": CallOutcome.NO_ANSWER,
        "voice_transfer_disconnect_cancel": CallOutcome.CANCELED,
        "voice_transfer_disconnect_hangup": None,
        "voice_transfer_answer": None,
        "voice_disconnect_inbound_cancel": CallOutcome.CANCELED,
        "voice_disconnect_inbound_hangup": None,
        "voice_disconnect_outbound_busy": None,
    }
    unknown_call_scenario = "voice_transfer_complete_unknown_cause"
    incoming_call_scenario = "voice_initiate"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "14762070468292kw2fuqty55yp2b2",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "opt_out_type": None,
            "media_count": 0,
        },
        "sms_inbound_stop": {"sender": CALLER, "body": "STOP", "opt_out_type": None},
        "sms_inbound_mms": {"body": "Here is a photo of the leak", "media_count": 1},
    }
    status_scenarios: Mapping[str, Mapping[str, Any]] = {
        "status_sending": {"status": DeliveryStatus.QUEUED, "message_id": MESSAGE_ID},
        "status_delivered": {
            "message_id": MESSAGE_ID,
            "event_id": f"{MESSAGE_ID}:message-delivered",
            "status": DeliveryStatus.DELIVERED,
            "error_code": None,
        },
        "status_failed": {"status": DeliveryStatus.FAILED, "error_code": "4720"},
        "status_failed_opted_out": {"status": DeliveryStatus.FAILED, "error_code": "4775"},
        "status_receipt_expired": {"status": DeliveryStatus.SENT, "error_code": "9902"},
        "status_unknown": {"status": DeliveryStatus.UNKNOWN, "error_code": None},
    }
    unknown_status_scenario = "status_unknown"
    signature_headers = ("Authorization",)
    fake_api_base_url = API_BASE

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        stub_token(http)
        http.add(responses.GET, MESSAGES_URL, json={"totalCount": 0, "messages": [],
                                                    "pageInfo": {}})

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        http.add(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_client"})
        return adapter

    def credentials(self) -> Mapping[str, Any]:
        return credentials()

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return request(fixture_body(scenario), kind=kind)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return request(fixture_body(scenario), kind=kind, auth=basic(CALLBACK_USER, "not-ours-1234"))

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        headers = {"Content-Type": content_type, "Authorization": basic(CALLBACK_USER, CALLBACK_PASSWORD)}
        return WebhookRequest.build(url=url, headers=headers, body=body)

    def stub_send(
        self,
        http: responses.RequestsMock,
        adapter: CarrierAdapter,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        stub_token(http)
        if isinstance(body, BaseException):
            http.add(responses.POST, MESSAGES_URL, body=body)
        elif isinstance(body, dict):
            http.add(responses.POST, MESSAGES_URL, json=body, status=status, headers=headers)
        else:
            http.add(responses.POST, MESSAGES_URL, body=body, status=status, headers=headers)

    def success_send(self) -> tuple[int, Any, Mapping[str, Any]]:
        expected = {"message_id": MESSAGE_ID, "status": DeliveryStatus.QUEUED, "segments": 1}
        return 202, message_json(), expected

    def error_body(self, status: int) -> Any:
        return bandwidth_error(status)

    def http_attempts(self, http: responses.RequestsMock, adapter: CarrierAdapter) -> int:
        """Message posts only: fetching the OAuth token is not a send attempt."""
        return len(message_posts(http))


# -- callback authentication -----------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Basic",
        "Bearer " + base64.b64encode(f"{CALLBACK_USER}:{CALLBACK_PASSWORD}".encode()).decode(),
        "Basic not base64!",
        "Basic " + base64.b64encode(CALLBACK_USER.encode()).decode(),  # no colon, no password
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        basic("someone", CALLBACK_PASSWORD),
        basic(CALLBACK_USER, CALLBACK_PASSWORD + "x"),
        basic(CALLBACK_USER, ""),
    ],
    ids=[
        "empty",
        "no-token",
        "bearer",
        "not-base64",
        "no-colon",
        "not-utf8",
        "wrong-user",
        "wrong-password",
        "empty-password",
    ],
)
def test_bad_credentials_are_refused(adapter: BandwidthCarrier, header: str) -> None:
    with pytest.raises(WebhookVerificationError) as info:
        adapter.verify_request(request(fixture_body("voice_initiate"), auth=header))
    assert CALLBACK_PASSWORD not in str(info.value)


def test_basic_scheme_is_case_insensitive(adapter: BandwidthCarrier) -> None:
    header = basic(CALLBACK_USER, CALLBACK_PASSWORD).replace("Basic", "basic")
    adapter.verify_request(request(fixture_body("voice_initiate"), auth=header))


def test_password_may_contain_a_colon() -> None:
    adapter = BandwidthCarrier(credentials(callback_password="pa:ss:word-1"), api_base_url=API_BASE)
    adapter.verify_request(request(fixture_body("sms_inbound"), auth=basic(CALLBACK_USER, "pa:ss:word-1")))


# -- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("sms_inbound", "sms"),
        ("status_delivered", "status"),
        ("status_failed", "status"),
        ("status_sending", "status"),
        ("voice_transfer_complete_busy", "voice"),
    ],
)
@pytest.mark.parametrize("url_kind", ["voice", "sms", "status"])
def test_route_follows_the_event_not_the_url(
    adapter: BandwidthCarrier, scenario: str, url_kind: str, expected: str
) -> None:
    assert adapter.route(url_kind, request(fixture_body(scenario), kind=url_kind)) == expected


def test_route_keeps_the_url_kind_for_unreadable_bodies(adapter: BandwidthCarrier) -> None:
    assert adapter.route("sms", request(b"not json", kind="sms")) == "sms"
    assert adapter.route("status", request([], kind="status")) == "status"


def test_single_object_callback_is_read_like_an_array(adapter: BandwidthCarrier) -> None:
    event = fixture_json("status_delivered")[0]
    single = request(event, kind="status")
    assert adapter.route("sms", single) == "status"
    assert adapter.parse_status(single).status is DeliveryStatus.DELIVERED


def test_only_the_first_of_several_events_is_parsed_and_the_rest_logged(
    adapter: BandwidthCarrier, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="carrier_adapters.bandwidth.webhooks"):
        update = adapter.parse_status(request(fixture_body("messaging_two_events"), kind="status"))
    assert update.message_id == MESSAGE_ID and update.status is DeliveryStatus.DELIVERED
    assert "2 events" in caplog.text
    assert CALLER not in caplog.text and "1661365814859loidf7mcwd4qacn7" not in caplog.text


def test_inbound_message_is_found_behind_a_status_event(adapter: BandwidthCarrier) -> None:
    events = fixture_json("status_delivered") + fixture_json("sms_inbound")
    message = adapter.parse_inbound_message(request(events, kind="sms"))
    assert message.event_id == "14762070468292kw2fuqty55yp2b2"


@pytest.mark.parametrize(
    "body",
    [b"not json", [], fixture_json("status_delivered")],
    ids=["not-json", "empty", "only-status"],
)
def test_callback_without_an_inbound_message_is_malformed(adapter: BandwidthCarrier, body: Any) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_inbound_message(request(body, kind="sms"))


def test_event_without_message_id_is_malformed(adapter: BandwidthCarrier) -> None:
    events = fixture_json("status_delivered")
    del events[0]["message"]["id"]
    with pytest.raises(MalformedWebhookError):
        adapter.parse_status(request(events, kind="status"))


def test_status_times_come_from_the_event(adapter: BandwidthCarrier) -> None:
    update = adapter.parse_status(request(fixture_body("status_delivered"), kind="status"))
    assert update.occurred_at == datetime(2026, 4, 14, 15, 5, 6, 979000, tzinfo=UTC)


# -- voice events ----------------------------------------------------------------------------


def test_transfer_complete_is_fully_parsed(adapter: BandwidthCarrier) -> None:
    event = adapter.parse_call_event(request(fixture_body("voice_transfer_complete_busy")))
    assert isinstance(event, MissedCall)
    assert event.event_id == A_LEG
    assert event.caller == CALLER and event.called == BUSINESS
    assert event.occurred_at == datetime(2026, 4, 14, 15, 4, 55, 810000, tzinfo=UTC)
    assert event.raw["cause"] == "busy"


def test_every_event_of_one_call_shares_the_event_id(adapter: BandwidthCarrier) -> None:
    ids = set()
    for scenario in (
        "voice_transfer_complete_timeout",
        "voice_transfer_disconnect_cancel",
        "voice_disconnect_inbound_cancel",
    ):
        event = adapter.parse_call_event(request(fixture_body(scenario)))
        assert event is not None
        ids.add(event.event_id)
    assert ids == {A_LEG}


def test_ring_seconds_of_an_unanswered_leg(adapter: BandwidthCarrier) -> None:
    event = adapter.parse_call_event(request(fixture_body("voice_transfer_disconnect_cancel")))
    assert event is not None and event.ring_seconds == pytest.approx(12.266)


def test_withheld_caller_has_no_number(adapter: BandwidthCarrier) -> None:
    event = adapter.parse_call_event(request(fixture_body("voice_transfer_complete_timeout_anonymous")))
    assert event is not None and event.caller is None and event.caller_raw == "Anonymous"


@pytest.mark.parametrize(
    "cause",
    ["invalid-bxml", "application-error", "account-limit", "node-capacity-exceeded", "error"],
)
def test_error_causes_are_failed_calls(adapter: BandwidthCarrier, cause: str) -> None:
    event = adapter.parse_call_event(request(variant("voice_transfer_complete_busy", cause=cause)))
    assert event is not None and event.outcome is CallOutcome.FAILED


def test_cause_unknown_maps_to_unknown(adapter: BandwidthCarrier) -> None:
    event = adapter.parse_call_event(request(variant("voice_transfer_complete_busy", cause="unknown")))
    assert event is not None and event.outcome is CallOutcome.UNKNOWN


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"not json",
        variant("voice_transfer_complete_busy", eventType=""),
        variant("voice_transfer_complete_busy", callId=""),
    ],
    ids=["array", "not-json", "no-event-type", "no-call-id"],
)
def test_malformed_voice_events(adapter: BandwidthCarrier, body: Any) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(request(body))


def test_only_an_inbound_initiate_is_an_incoming_call(adapter: BandwidthCarrier) -> None:
    assert adapter.is_incoming_call(request(variant("voice_initiate", direction="outbound"))) is False
    assert adapter.is_incoming_call(request(b"not json")) is False


# -- BXML ------------------------------------------------------------------------------------


def test_incoming_call_is_transferred_with_our_credentials(adapter: BandwidthCarrier) -> None:
    reply = adapter.reply("voice", request(fixture_body("voice_initiate")), ROUTING)
    assert reply.content_type == "application/xml" and reply.status == 200
    transfer = parse_xml(reply.body).find("Transfer")
    assert transfer is not None
    assert transfer.attrib == {
        "transferCompleteUrl": f"{WEBHOOK_BASE}/voice",
        "transferCompleteMethod": "POST",
        "callTimeout": "20",
        "username": CALLBACK_USER,
        "password": CALLBACK_PASSWORD,
    }
    (number,) = transfer.findall("PhoneNumber")
    assert number.text == CELL
    assert number.attrib == {
        "transferDisconnectUrl": f"{WEBHOOK_BASE}/voice",
        "transferDisconnectMethod": "POST",
        "username": CALLBACK_USER,
        "password": CALLBACK_PASSWORD,
    }
    assert CALLBACK_PASSWORD not in repr(reply)


def test_several_numbers_get_no_per_leg_callback(adapter: BandwidthCarrier) -> None:
    routing = CallRouting((CELL, "+14155550198"), 400, ROUTING.action_url, ROUTING.status_callback_url)
    transfer = parse_xml(adapter.reply("voice", None, routing).body).find("Transfer")
    assert transfer is not None and transfer.attrib["callTimeout"] == "300"
    numbers = transfer.findall("PhoneNumber")
    assert [n.text for n in numbers] == [CELL, "+14155550198"]
    assert all(n.attrib == {} for n in numbers)


@pytest.mark.parametrize("count", [0, 9])
def test_transfer_needs_one_to_eight_numbers(adapter: BandwidthCarrier, count: int) -> None:
    numbers = tuple(f"+1415555{i:04d}" for i in range(count))
    with pytest.raises(ValueError):
        adapter.reply("voice", None, CallRouting(numbers, 20, ROUTING.action_url, ROUTING.action_url))


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("voice_transfer_complete_timeout", ["Hangup"]),
        ("voice_transfer_answer", []),
        ("voice_transfer_disconnect_cancel", None),
        ("voice_disconnect_inbound_hangup", None),
    ],
)
def test_voice_replies_follow_the_event(
    adapter: BandwidthCarrier, scenario: str, expected: list[str] | None
) -> None:
    reply = adapter.reply("voice", request(fixture_body(scenario)))
    if expected is None:  # events that take no BXML
        assert reply.status == 204 and reply.body == b""
    else:
        assert [child.tag for child in parse_xml(reply.body)] == expected


def test_messaging_replies_are_empty(adapter: BandwidthCarrier) -> None:
    assert adapter.reply("sms").body == b"" and adapter.reply("status").status == 200
    with pytest.raises(ValueError):
        adapter.reply("fax")


# -- sending ---------------------------------------------------------------------------------


def test_send_posts_the_v2_message_with_a_bearer_token(
    adapter: BandwidthCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    http.add(
        responses.POST,
        MESSAGES_URL,
        json=message_json(),
        status=202,
        match=[
            matchers.json_params_matcher(
                {"applicationId": APPLICATION_ID, "to": [CALLER], "from": BUSINESS, "text": SEND["body"]}
            ),
            matchers.header_matcher({"Authorization": "Bearer token-1"}),
        ],
    )
    result = adapter.send_sms(**SEND)
    assert result.message_id == MESSAGE_ID and result.segments == 1
    token_request = http.calls[0].request
    assert token_request.url == TOKEN_URL
    assert token_request.headers["Authorization"] == basic(CLIENT_ID, CLIENT_SECRET)


def test_token_is_reused_until_it_nears_expiry(
    adapter: BandwidthCarrier, http: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub_token(http, expires_in=3600)
    http.add(responses.POST, MESSAGES_URL, json=message_json(), status=202)
    now = [1000.0]
    # The token cache is the shared one in connector.kernel.http; its clock is what moves.
    monkeypatch.setattr(connector_http.time, "monotonic", lambda: now[0])
    adapter.send_sms(**SEND)
    now[0] += 3000  # 600 s left: still good
    adapter.send_sms(**SEND)
    assert token_requests(http) == 1
    now[0] += 560  # 40 s left: inside the 60 s margin
    adapter.send_sms(**SEND)
    assert token_requests(http) == 2


def test_refused_token_is_dropped(adapter: BandwidthCarrier, http: responses.RequestsMock) -> None:
    stub_token(http)
    http.add(responses.POST, MESSAGES_URL, json=bandwidth_error(401), status=401)
    with pytest.raises(ProviderAuthError):
        adapter.send_sms(**SEND)
    http.replace(responses.POST, MESSAGES_URL, json=message_json(), status=202)
    adapter.send_sms(**SEND)
    assert token_requests(http) == 2  # a fresh token was fetched


@pytest.mark.parametrize(
    ("status", "error"), [(401, ProviderAuthError), (400, ProviderAuthError), (500, TransientProviderError)]
)
def test_token_failures_send_nothing_and_are_not_ambiguous(
    adapter: BandwidthCarrier, http: responses.RequestsMock, status: int, error: type[Exception]
) -> None:
    http.add(responses.POST, TOKEN_URL, json={"error": "invalid_client"}, status=status)
    with pytest.raises(error) as info:
        adapter.send_sms(**SEND)
    assert not message_posts(http)
    assert getattr(info.value, "ambiguous", False) is False
    assert CLIENT_SECRET not in f"{info.value} {info.value!r}"


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ReadTimeout(), "not json", {"token_type": "Bearer"}],
    ids=["timeout", "not-json", "no-token"],
)
def test_unusable_token_responses_are_transient(
    adapter: BandwidthCarrier, http: responses.RequestsMock, failure: Any
) -> None:
    if isinstance(failure, dict):
        http.add(responses.POST, TOKEN_URL, json=failure)
    else:
        http.add(responses.POST, TOKEN_URL, body=failure)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(**SEND)
    assert info.value.ambiguous is False and not message_posts(http)


def test_legacy_api_user_sends_with_basic_auth(http: responses.RequestsMock) -> None:
    adapter = BandwidthCarrier(legacy_credentials(), api_base_url=API_BASE)
    http.add(
        responses.POST,
        MESSAGES_URL,
        json=message_json(),
        status=202,
        match=[matchers.header_matcher({"Authorization": basic(API_USER, API_PASSWORD)})],
    )
    assert adapter.send_sms(**SEND).message_id == MESSAGE_ID
    assert len(http.calls) == 1  # no token request


def test_invalid_to_number_is_a_rejected_recipient(
    adapter: BandwidthCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    body = bandwidth_error(400) | {
        "fieldErrors": [{"fieldName": "to[0]", "description": f"'{CALLER}' must be a valid E164 number"}]
    }
    http.add(responses.POST, MESSAGES_URL, json=body, status=400)
    with pytest.raises(RecipientRejectedError) as info:
        adapter.send_sms(**SEND)
    assert info.value.reason == "invalid" and info.value.code == "request-validation"
    assert CALLER not in str(info.value)


def test_bad_from_number_is_plain_permanent(adapter: BandwidthCarrier, http: responses.RequestsMock) -> None:
    stub_token(http)
    body = bandwidth_error(400) | {"fieldErrors": [{"fieldName": "from", "description": "invalid"}]}
    http.add(responses.POST, MESSAGES_URL, json=body, status=400)
    with pytest.raises(PermanentProviderError) as info:
        adapter.send_sms(**SEND)
    assert not isinstance(info.value, RecipientRejectedError)


@pytest.mark.parametrize(("headers", "wait"), [({"Retry-After": "7"}, 7.0), ({}, 60.0)])
def test_rate_limit_wait(
    adapter: BandwidthCarrier, http: responses.RequestsMock, headers: dict[str, str], wait: float
) -> None:
    stub_token(http)
    http.add(responses.POST, MESSAGES_URL, json=bandwidth_error(429), status=429, headers=headers)
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(**SEND)
    assert info.value.retry_after == wait


def test_accepted_send_without_an_id_is_ambiguous(
    adapter: BandwidthCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    http.add(responses.POST, MESSAGES_URL, body="Accepted", status=202)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(**SEND)
    assert info.value.ambiguous is True


# -- reconciliation --------------------------------------------------------------------------

SENT_AFTER = datetime(2026, 4, 14, 15, 5, 0, tzinfo=UTC)
LIST_QUERY = {
    "sourceTn": BUSINESS,
    "destinationTn": CALLER,
    "messageDirection": "OUTBOUND",
    "fromDateTime": "2026-04-14T15:04:00.000Z",
    "limit": "100",
}


def record(**changes: Any) -> dict[str, Any]:
    """A List Messages item (Bandwidth's OpenAPI ``listMessageItem``)."""
    item: dict[str, Any] = {
        "messageId": MESSAGE_ID,
        "accountId": ACCOUNT_ID,
        "sourceTn": BUSINESS,
        "destinationTn": CALLER,
        "messageStatus": "DELIVERED",
        "messageDirection": "OUTBOUND",
        "messageType": "sms",
        "segmentCount": 1,
        "errorCode": 0,
        "receiveTime": "2026-04-14T15:04:30.000Z",
        "carrierName": "other",
        "messageLength": 66,
    }
    item.update(changes)
    return item


def stub_list(
    http: responses.RequestsMock,
    items: list[dict[str, Any]],
    *,
    page: str | None = None,
    next_page: str | None = None,
) -> None:
    query = dict(LIST_QUERY, **({"pageToken": page} if page else {}))
    http.add(
        responses.GET,
        MESSAGES_URL,
        json={
            "totalCount": len(items),
            "pageInfo": {"nextPageToken": next_page} if next_page else {},
            "messages": items,
        },
        match=[matchers.query_param_matcher(query)],
    )


def test_find_sent_message_searches_by_numbers_and_time(
    adapter: BandwidthCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    stub_list(http, [record()])
    found = adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=SEND["body"], sent_after=SENT_AFTER)
    assert found is not None
    assert found.message_id == MESSAGE_ID and found.status is DeliveryStatus.DELIVERED


@pytest.mark.parametrize(
    "item",
    [
        record(messageDirection="INBOUND"),
        record(destinationTn="+12025550100"),
        record(receiveTime="2026-04-14T15:03:59.999Z"),
        record(receiveTime=None),
    ],
    ids=["inbound", "other-recipient", "too-old", "no-time"],
)
def test_find_sent_message_ignores_other_records(
    adapter: BandwidthCarrier, http: responses.RequestsMock, item: dict[str, Any]
) -> None:
    stub_token(http)
    stub_list(http, [item])
    assert adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=SENT_AFTER) is None


def test_find_sent_message_follows_page_tokens(
    adapter: BandwidthCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    stub_list(http, [record(destinationTn="+12025550100")], next_page="GL83PD3C")
    stub_list(http, [record()], page="GL83PD3C")
    assert adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=SENT_AFTER)


def test_find_sent_message_does_not_claim_absence_it_did_not_check(
    adapter: BandwidthCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    http.add(
        responses.GET,
        MESSAGES_URL,
        json={"totalCount": 10000, "pageInfo": {"nextPageToken": "MORE"}, "messages": []},
    )
    with pytest.raises(TransientProviderError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=SENT_AFTER)
    searches = [c for c in http.calls if c.request.method == "GET"]
    assert len(searches) == bandwidth_api.MAX_PAGES


def test_find_sent_message_needs_an_aware_time(adapter: BandwidthCarrier) -> None:
    with pytest.raises(ValueError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body="x", sent_after=datetime(2026, 4, 14))


# -- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "creds",
    [
        credentials(client_secret=None),
        credentials(client_id=None),
        credentials(client_id=None, client_secret=None),
        credentials(api_username=API_USER, api_password=API_PASSWORD),
        dict(legacy_credentials(), api_password=None),
        credentials(account_id="acct-9900000"),
        credentials(application_id="not-a-uuid"),
        credentials(callback_password="short"),
        credentials(callback_username=""),
    ],
    ids=[
        "secret-missing",
        "id-missing",
        "no-api-credentials",
        "both-kinds",
        "legacy-half",
        "account-not-digits",
        "bad-application",
        "short-callback-password",
        "empty-callback-user",
    ],
)
def test_invalid_credentials_are_refused(creds: dict[str, Any]) -> None:
    with pytest.raises(marshmallow.ValidationError):
        BandwidthCarrier({k: v for k, v in creds.items() if v is not None})


def test_defaults() -> None:
    adapter = BandwidthCarrier(credentials(token_url=None))
    assert adapter.api_base_url == "https://messaging.bandwidth.com"
    assert adapter.credentials["token_url"] == "https://api.bandwidth.com/api/v1/oauth2/token"


@pytest.mark.parametrize("odd", [["message-received"], {"type": "message-received"}, 7, None])
def test_an_event_type_that_is_not_text_is_never_an_inbound_message(
    adapter: BandwidthCarrier, odd: Any
) -> None:
    # Found by an outside probe: a list or an object as ``type`` crashed the lookup with an
    # unhashable-type TypeError (a 500) instead of being read as "not an inbound message".
    event = {**fixture_json("sms_inbound")[0], "type": odd}
    odd_request = request([event], kind="sms")
    assert adapter.route("sms", odd_request) == "sms"
    with pytest.raises(MalformedWebhookError):
        adapter.parse_inbound_message(odd_request)
    assert adapter.parse_status(request([event], kind="status")).status is DeliveryStatus.UNKNOWN
