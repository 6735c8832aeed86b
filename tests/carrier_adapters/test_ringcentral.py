"""The RingCentral adapter: the carrier contract suite plus RingCentral's own rules.

Fixtures in ``tests/fixtures/ringcentral`` are notification envelopes; the tests add the
``Verification-Token`` header at test time with a test token. HTTP goes to ``responses`` stubs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import marshmallow
import pytest
import responses

from carrier_adapters.base import HANDSHAKE, CarrierAdapter
from carrier_adapters.provisioning import webhook_urls
from carrier_adapters.ringcentral import RingCentralCarrier
from carrier_adapters.ringcentral.api import MAX_PAGES
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
from connector.kernel.events import AnsweredCall, CallOutcome, DeliveryStatus, MissedCall
from connector.kernel.http import WebhookRequest
from tests.carrier_adapters.conftest import Fixtures
from tests.contracts.carrier_contract import (
    CallSourceContract,
    CarrierContract,
    InboundMessagingContract,
    SendingContract,
    TransportFailureContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract
from tests.stubs.ringcentral_account import RingCentralAccountFake

FIXTURES = Fixtures("ringcentral")
API_BASE = "https://ringcentral-api.test"
TOKEN_URL = f"{API_BASE}/restapi/oauth/token"
SMS_URL = f"{API_BASE}/restapi/v1.0/account/~/extension/~/sms"
STORE_URL = f"{API_BASE}/restapi/v1.0/account/~/extension/~/message-store"
WEBHOOK_URL = "https://textback.example.com/webhooks/ringcentral/acme-plumbing/voice"
VERIFICATION_TOKEN = "test-rc-verification-Zm9vYmFyYmF6"
CALLER, BUSINESS = "+12025550143", "+14155550100"
SESSION_ID = "s-a0d7e8f9b1c24d3e8f5a6b7c8d9e0f12"
MESSAGE_ID = 320270670010
BODY = "Sorry we missed your call! This is Acme Plumbing. How can we help?"


def credentials(**changes: str) -> dict[str, str]:
    return {
        "client_id": "test-client-id-1234",
        "client_secret": "test-client-secret-Zm9vYmFy",
        "jwt": "eyJ0ZXN0LWp3dC1jcmVkZW50aWFsIjp0cnVlfQ.test.jwt",
        "verification_token": VERIFICATION_TOKEN,
        **changes,
    }


fixture_body = FIXTURES.body


def signed(body: bytes, *, token: str | None = VERIFICATION_TOKEN, **headers: str) -> WebhookRequest:
    all_headers = {"Content-Type": "application/json; charset=UTF-8", **headers}
    if token is not None:
        all_headers["Verification-Token"] = token
    return WebhookRequest.build(url=WEBHOOK_URL, headers=all_headers, body=body)


VALIDATION = "6a4b2f4c-59a8-4d6d-b3a1-4e2f0c9d8e7f"


def handshake(validation: str = VALIDATION, **headers: str) -> WebhookRequest:
    """RingCentral's subscription handshake: a ``Validation-Token`` and no body."""
    all_headers = {"Validation-Token": validation, **headers}
    return WebhookRequest.build(url=WEBHOOK_URL, headers=all_headers, body=b"")


def message_record(**changes: Any) -> dict[str, Any]:
    """A message record as RingCentral's SMS API returns it (docs example, our numbers)."""
    record: dict[str, Any] = {
        "uri": f"{API_BASE}/restapi/v1.0/account/1346632010/extension/1346632010/message-store/{MESSAGE_ID}",
        "id": MESSAGE_ID,
        "to": [{"phoneNumber": CALLER}],
        "from": {"phoneNumber": BUSINESS},
        "type": "SMS",
        "creationTime": "2026-04-14T15:05:40.000Z",
        "readStatus": "Read",
        "priority": "Normal",
        "direction": "Outbound",
        "availability": "Alive",
        "subject": BODY,
        "messageStatus": "Queued",
        "conversationId": 4178398077955743750,
        "lastModifiedTime": "2026-04-14T15:05:41.000Z",
    }
    record.update(changes)
    return record


def rc_error(code: str, status: int) -> dict[str, Any]:
    """RingCentral's error body; the message quotes the number, as RingCentral's do."""
    message = f"Parameter [to] value [{CALLER}] is invalid (HTTP {status})"
    return {"errorCode": code, "message": message, "errors": [{"errorCode": code, "message": message}]}


def stub_token(http: responses.RequestsMock, access: str = "U1BCMDFUMDRKV1MwMXxzLFSvXdw5PHMs") -> None:
    http.add(
        responses.POST,
        TOKEN_URL,
        json={"access_token": access, "token_type": "bearer", "expires_in": 3600, "scope": "SMS"},
    )


def sms_posts(http: responses.RequestsMock) -> list[Any]:
    return [c for c in http.calls if c.request.url == SMS_URL]


@pytest.fixture
def adapter() -> RingCentralCarrier:
    return RingCentralCarrier(credentials(), api_base_url=API_BASE)


# -- the contract suite ----------------------------------------------------------------------


class TestRingCentralContract(
    CarrierContract, CarrierSetupContract, CallSourceContract, InboundMessagingContract, SendingContract,
    TransportFailureContract,
):
    """The generic carrier contract, fed with RingCentral's fixtures."""

    adapter_class = RingCentralCarrier
    secret_credentials = frozenset({"client_secret", "jwt", "verification_token"})
    call_scenarios: Mapping[str, CallOutcome | None] = {
        "voice_session_setup": None,
        "voice_session_proceeding": None,
        "voice_session_answered": None,
        "voice_session_disconnected_after_answer": None,
        "voice_session_caller_leg_answered": None,
        "voice_session_internal_missed": None,
        "voice_session_missed_no_answer": CallOutcome.NO_ANSWER,
        "voice_session_missed_no_reason": CallOutcome.NO_ANSWER,
        "voice_session_missed_busy": CallOutcome.BUSY,
        "voice_session_missed_cancelled": CallOutcome.CANCELED,
        "voice_session_missed_rejected": CallOutcome.REJECTED,
        "voice_session_voicemail": CallOutcome.VOICEMAIL,
        "voice_session_missed_anonymous": CallOutcome.NO_ANSWER,
        "voice_session_missed_unknown_reason": CallOutcome.UNKNOWN,
    }
    unknown_call_scenario = "voice_session_missed_unknown_reason"
    inbound_scenarios: Mapping[str, Mapping[str, Any]] = {
        "sms_inbound": {
            "event_id": "606090030016",
            "sender": CALLER,
            "recipient": BUSINESS,
            "body": "Hi! I called about the leaky faucet \u2014 can someone come by tomorrow? \u2615",
            "opt_out_type": None,
            "media_count": 0,
            "received_at": datetime(2026, 4, 14, 15, 9, tzinfo=UTC),
        },
        "sms_inbound_stop": {"sender": CALLER, "body": "STOP"},
    }
    # No DeliveryReportContract: RingCentral posts no delivery reports (message-store events
    # carry counts, not ids).
    signature_headers = ("Verification-Token",)
    fake_api_base_url = API_BASE
    owned_numbers = (BUSINESS, "+14155550101")
    points_numbers_one_by_one = False

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        RingCentralAccountFake(self.owned_numbers).install(http, API_BASE)

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        RingCentralAccountFake(self.owned_numbers, grant_ok=False).install(http, API_BASE)
        return adapter

    def credentials(self) -> Mapping[str, Any]:
        return credentials()

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario))

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return signed(fixture_body(scenario), token="not-the-verification-token")

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        headers = {"Content-Type": content_type, "Verification-Token": VERIFICATION_TOKEN}
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
            http.add(responses.POST, SMS_URL, body=body)
        else:
            http.add(responses.POST, SMS_URL, json=body, status=status, headers=headers)

    def success_send(self) -> tuple[int, Any, Mapping[str, Any]]:
        return 200, message_record(), {"message_id": str(MESSAGE_ID), "status": DeliveryStatus.QUEUED}

    def error_body(self, status: int) -> Any:
        code = {400: "CMN-101", 401: "OAU-128", 429: "CMN-301", 500: "CMN-203", 503: "CMN-201"}[status]
        return rc_error(code, status)

    def http_attempts(self, http: responses.RequestsMock, adapter: CarrierAdapter) -> int:
        """SMS posts only: fetching the access token is not a send attempt."""
        return len(sms_posts(http))


# -- the subscription handshake and the verification token -----------------------------------


def test_handshake_is_accepted_routed_and_echoed(adapter: RingCentralCarrier) -> None:
    request = handshake(VALIDATION)
    adapter.verify_request(request)
    assert adapter.route("voice", request) == HANDSHAKE
    reply = adapter.reply(HANDSHAKE, request)
    assert reply.status == 200
    assert reply.headers == {"Validation-Token": VALIDATION}
    assert reply.content_type == "application/json"  # RingCentral error SUB-525 otherwise
    assert len(reply.body) + len(VALIDATION) < 1024


def test_handshake_with_a_matching_verification_token_is_accepted(adapter: RingCentralCarrier) -> None:
    adapter.verify_request(handshake(**{"Verification-Token": VERIFICATION_TOKEN}))


def test_handshake_with_a_wrong_verification_token_is_refused(adapter: RingCentralCarrier) -> None:
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(handshake(**{"Verification-Token": "someone-elses-token"}))


def test_a_notification_carrying_only_a_validation_token_is_refused(adapter: RingCentralCarrier) -> None:
    request = signed(fixture_body("voice_session_missed_no_answer"), token=None, **{"Validation-Token": "x"})
    assert adapter.route("voice", request) == "voice"  # it has a body: not a handshake
    with pytest.raises(WebhookVerificationError):
        adapter.verify_request(request)


@pytest.mark.parametrize("token", ["bad\r\nSet-Cookie: x=1", "x" * 600, "caf\u00e9"])
def test_a_token_a_header_cannot_carry_is_not_echoed(adapter: RingCentralCarrier, token: str) -> None:
    reply = adapter.reply(HANDSHAKE, handshake(token))
    assert reply.status == 200
    assert "Validation-Token" not in reply.headers


def test_handshake_reply_without_request_has_no_header(adapter: RingCentralCarrier) -> None:
    assert adapter.reply(HANDSHAKE).headers == {}


# -- routing and parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        ("voice_session_missed_no_answer", "voice"),
        ("sms_inbound", "sms"),
        ("status_message_store", "status"),
    ],
)
def test_route_follows_the_event_filter(adapter: RingCentralCarrier, scenario: str, kind: str) -> None:
    for posted_to in ("voice", "sms", "status"):
        assert adapter.route(posted_to, signed(fixture_body(scenario))) == kind


def test_route_keeps_the_url_kind_for_an_unreadable_body(adapter: RingCentralCarrier) -> None:
    assert adapter.route("sms", signed(b"not json")) == "sms"


def test_message_store_event_is_authentic_but_unsupported(adapter: RingCentralCarrier) -> None:
    request = signed(fixture_body("status_message_store"))
    adapter.verify_request(request)
    with pytest.raises(UnsupportedEventError):
        adapter.parse_status(request)


def test_missed_call_fields(adapter: RingCentralCarrier) -> None:
    event = adapter.parse_call_event(signed(fixture_body("voice_session_missed_no_answer")))
    assert isinstance(event, MissedCall)
    assert event.event_id == SESSION_ID
    assert (event.caller, event.called, event.caller_raw) == (CALLER, BUSINESS, CALLER)
    assert event.occurred_at == datetime(2026, 4, 14, 15, 5, 32, 627000, tzinfo=UTC)
    assert event.voicemail is False


def test_voicemail_and_disconnect_are_one_missed_call(adapter: RingCentralCarrier) -> None:
    voicemail = adapter.parse_call_event(signed(fixture_body("voice_session_voicemail")))
    missed = adapter.parse_call_event(signed(fixture_body("voice_session_missed_no_answer")))
    assert voicemail is not None and missed is not None
    assert voicemail.event_id == missed.event_id
    assert voicemail.voicemail is True


def test_withheld_caller_id_gives_no_caller(adapter: RingCentralCarrier) -> None:
    event = adapter.parse_call_event(signed(fixture_body("voice_session_missed_anonymous")))
    assert event is not None and event.caller is None and event.caller_raw == "anonymous"


def test_answered_inbound_call_is_reported(adapter: RingCentralCarrier) -> None:
    answered = adapter.parse_answered_call(signed(fixture_body("voice_session_answered")))
    assert isinstance(answered, AnsweredCall)
    assert (answered.customer, answered.direction, answered.event_id) == (CALLER, "inbound", SESSION_ID)
    assert answered.occurred_at == datetime(2026, 4, 14, 15, 5, 20, 1000, tzinfo=UTC)


@pytest.mark.parametrize(
    "scenario",
    ["voice_session_caller_leg_answered", "voice_session_missed_no_answer", "voice_session_setup"],
)
def test_other_sessions_are_not_answered_calls(adapter: RingCentralCarrier, scenario: str) -> None:
    assert adapter.parse_answered_call(signed(fixture_body(scenario))) is None


def test_party_flagged_missed_but_not_inbound_is_ignored(adapter: RingCentralCarrier) -> None:
    doc = json.loads(fixture_body("voice_session_missed_no_answer"))
    doc["body"]["parties"][0]["direction"] = "Outbound"
    assert adapter.parse_call_event(signed(json.dumps(doc).encode())) is None


SESSIONS = "/restapi/v1.0/account/809646016/telephony/sessions"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"\xff",
        json.dumps({"event": SESSIONS, "body": []}).encode(),
        json.dumps({"event": SESSIONS, "body": {"parties": []}}).encode(),
    ],
)
def test_malformed_session_is_rejected(adapter: RingCentralCarrier, body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        adapter.parse_call_event(signed(body))


def test_subscription_renewal_reminder_is_ignored_not_refused(adapter: RingCentralCarrier) -> None:
    # Reminders (event filter /restapi/v1.0/subscription/~?threshold=..&interval=..) share the
    # address; a 4xx answer would count against the subscription.
    reminder = json.dumps(
        {
            "uuid": "7be4a3d0-6a65-4c4f-8a39-0d6b9e7e2a11",
            "event": "/restapi/v1.0/subscription/~?threshold=86400&interval=3600",
            "timestamp": "2026-04-14T15:00:00.000Z",
            "subscriptionId": "53300e7c-5e69-42bf-ab4d-179aabc6e869",
            "body": {"expiresIn": 86399},
        }
    ).encode()
    request = signed(reminder)
    adapter.verify_request(request)
    assert adapter.route("voice", request) == "voice"
    assert adapter.parse_call_event(request) is None
    assert adapter.parse_answered_call(request) is None
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(request)


def test_outbound_instant_message_is_not_an_inbound_text(adapter: RingCentralCarrier) -> None:
    doc = json.loads(fixture_body("sms_inbound"))
    doc["body"]["direction"] = "Outbound"
    with pytest.raises(UnsupportedEventError):
        adapter.parse_inbound_message(signed(json.dumps(doc).encode()))


# -- sending ---------------------------------------------------------------------------------


def test_send_posts_ringcentral_sms_json_with_a_bearer_token(
    adapter: RingCentralCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http, "access-token-1")
    http.add(responses.POST, SMS_URL, json=message_record())
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    token_call, sms_call = http.calls
    form = parse_qs(token_call.request.body)
    assert form == {
        "grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "assertion": [credentials()["jwt"]],
    }
    assert token_call.request.headers["Authorization"].startswith("Basic ")
    assert sms_call.request.headers["Authorization"] == "Bearer access-token-1"
    assert json.loads(sms_call.request.body) == {
        "from": {"phoneNumber": BUSINESS},
        "to": [{"phoneNumber": CALLER}],
        "text": BODY,
    }


def test_access_token_is_reused_and_renewed_after_a_401(
    adapter: RingCentralCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http, "first")
    http.add(responses.POST, SMS_URL, json=message_record())
    http.add(responses.POST, SMS_URL, json=message_record())
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert len([c for c in http.calls if c.request.url == TOKEN_URL]) == 1
    http.add(responses.POST, SMS_URL, json=rc_error("OAU-128", 401), status=401)
    with pytest.raises(ProviderAuthError):
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    stub_token(http, "second")
    http.add(responses.POST, SMS_URL, json=message_record())
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert http.calls[-1].request.headers["Authorization"] == "Bearer second"


@pytest.mark.parametrize(("status", "error"), [(400, ProviderAuthError), (401, ProviderAuthError)])
def test_refused_jwt_is_an_auth_error_and_nothing_is_sent(
    adapter: RingCentralCarrier, http: responses.RequestsMock, status: int, error: type[Exception]
) -> None:
    refusal = {"error": "invalid_grant", "errorCode": "OAU-140"}
    http.add(responses.POST, TOKEN_URL, json=refusal, status=status)
    with pytest.raises(error):
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert sms_posts(http) == []


def test_token_outage_is_transient_but_not_ambiguous(
    adapter: RingCentralCarrier, http: responses.RequestsMock
) -> None:
    http.add(responses.POST, TOKEN_URL, json={"errorCode": "CMN-201"}, status=503)
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.ambiguous is False


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (403, "MSG-240", "invalid"),
        (400, "MSG-246", "invalid"),
        (400, "MSG-247", "invalid"),
        (400, "MSG-243", "opted_out"),
    ],
)
def test_recipient_refusals(
    adapter: RingCentralCarrier, http: responses.RequestsMock, status: int, code: str, reason: str
) -> None:
    stub_token(http)
    http.add(responses.POST, SMS_URL, json=rc_error(code, status), status=status)
    with pytest.raises(RecipientRejectedError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert (info.value.reason, info.value.code) == (reason, code)
    assert CALLER not in f"{info.value} {info.value!r}"


@pytest.mark.parametrize("code", ["MSG-242", "MSG-304", "CMN-109"])
def test_forbidden_sender_is_permanent_not_a_credentials_problem(
    adapter: RingCentralCarrier, http: responses.RequestsMock, code: str
) -> None:
    stub_token(http)
    http.add(responses.POST, SMS_URL, json=rc_error(code, 403), status=403)
    with pytest.raises(PermanentProviderError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert not isinstance(info.value, RecipientRejectedError)


def test_plain_403_is_still_an_auth_error(adapter: RingCentralCarrier, http: responses.RequestsMock) -> None:
    stub_token(http)
    http.add(responses.POST, SMS_URL, json=rc_error("CMN-401", 403), status=403)
    with pytest.raises(ProviderAuthError):
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)


@pytest.mark.parametrize(("headers", "wait"), [({}, 30.0), ({"Retry-After": "7"}, 7.0)])
def test_rate_limit_wait(
    adapter: RingCentralCarrier, http: responses.RequestsMock, headers: dict[str, str], wait: float
) -> None:
    stub_token(http)
    http.add(responses.POST, SMS_URL, json=rc_error("CMN-301", 429), status=429, headers=headers)
    with pytest.raises(RateLimitedError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.retry_after == wait


def test_accepted_send_without_an_id_is_ambiguous(
    adapter: RingCentralCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    http.add(responses.POST, SMS_URL, json={"messageStatus": "Queued"})
    with pytest.raises(TransientProviderError) as info:
        adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY)
    assert info.value.ambiguous is True


# -- reconciliation --------------------------------------------------------------------------


SENT_AFTER = datetime(2026, 4, 14, 15, 5, 40, tzinfo=UTC)


def _page(records: list[dict[str, Any]], *, more: bool = False) -> dict[str, Any]:
    navigation: dict[str, Any] = {"firstPage": {"uri": STORE_URL}}
    if more:
        navigation["nextPage"] = {"uri": STORE_URL + "?page=2"}
    return {"records": records, "paging": {"page": 1, "perPage": 100}, "navigation": navigation}


def test_find_sent_message_matches_numbers_text_and_time(
    adapter: RingCentralCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    other_text = message_record(id=1, subject="another text")
    too_early = message_record(id=2, creationTime="2026-04-14T15:03:00.000Z")
    other_sender = message_record(id=3, **{"from": {"phoneNumber": "+14155550199"}})
    ours = message_record(messageStatus="Delivered")
    http.add(responses.GET, STORE_URL, json=_page([other_text, too_early, other_sender, ours]))
    found = adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=SENT_AFTER)
    assert found is not None
    assert (found.message_id, found.status) == (str(MESSAGE_ID), DeliveryStatus.DELIVERED)
    query = parse_qs(http.calls[-1].request.url.split("?", 1)[1])
    assert query["messageType"] == ["SMS"] and query["direction"] == ["Outbound"]
    assert query["phoneNumber"] == [CALLER]
    assert query["dateFrom"] == [(SENT_AFTER - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S.000Z")]


def test_find_sent_message_returns_none_when_the_store_has_none(
    adapter: RingCentralCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    http.add(responses.GET, STORE_URL, json=_page([]))
    assert adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=SENT_AFTER) is None


def test_find_sent_message_gives_up_loudly_after_max_pages(
    adapter: RingCentralCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    for _ in range(MAX_PAGES):
        http.add(responses.GET, STORE_URL, json=_page([message_record(id=9, subject="x")], more=True))
    with pytest.raises(TransientProviderError):
        adapter.find_sent_message(to=CALLER, from_=BUSINESS, body=BODY, sent_after=SENT_AFTER)


# -- credentials -----------------------------------------------------------------------------


def test_a_short_verification_token_is_refused() -> None:
    with pytest.raises(marshmallow.ValidationError) as info:
        RingCentralCarrier(credentials(verification_token="short"))
    assert "verification_token" in info.value.messages


def test_send_sms_is_not_given_a_status_callback(
    adapter: RingCentralCarrier, http: responses.RequestsMock
) -> None:
    stub_token(http)
    http.add(responses.POST, SMS_URL, json=message_record())
    adapter.send_sms(to=CALLER, from_=BUSINESS, body=BODY, status_callback_url="https://cb.example/x")
    assert "cb.example" not in sms_posts(http)[0].request.body.decode()


@pytest.mark.parametrize("odd", [5, "+14155550100", {"phoneNumber": "+14155550100"}, None])
def test_recipients_and_attachments_of_another_shape_are_ignored(
    adapter: RingCentralCarrier, odd: Any
) -> None:
    # Found by an outside probe: ``"to": 5`` raised "'int' object is not iterable" (a 500).
    doc = json.loads(fixture_body("sms_inbound"))
    doc["body"]["to"] = odd
    doc["body"]["attachments"] = odd
    message = adapter.parse_inbound_message(signed(json.dumps(doc).encode()))
    assert message.recipient is None and message.media_count == 0


def test_parties_of_another_shape_are_ignored(adapter: RingCentralCarrier) -> None:
    doc = json.loads(fixture_body("voice_session_missed_no_answer"))
    doc["body"]["parties"] = 12
    request = signed(json.dumps(doc).encode())
    assert adapter.parse_call_event(request) is None
    assert adapter.parse_answered_call(request) is None


# -- setup calls beyond the contract ----------------------------------------------------------


def test_ringcentral_subscription_is_made_once_and_its_filters_kept_current() -> None:
    urls = webhook_urls("https://textback.example.com", "ringcentral", "acme")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        fake = RingCentralAccountFake([BUSINESS, "+14155550150"])
        fake.numbers[1].update(type="FaxOnly", features=[])
        fake.install(http, API_BASE)
        rc = RingCentralCarrier(credentials(), api_base_url=API_BASE)
        assert [n.e164 for n in rc.list_numbers()] == [BUSINESS]  # fax-only left out
        rc.point_webhooks(BUSINESS, urls)
        [made] = fake.subscriptions
        assert made["expiresIn"] == 315_360_000
        assert made["deliveryMode"]["address"] == urls.voice
        made["eventFilters"] = made["eventFilters"][:1]  # someone narrowed it
        changes = {c.field: c for c in rc.point_webhooks(BUSINESS, urls)}
        assert len(fake.subscriptions) == 1
        assert changes["subscription: event filters"].changed
        assert "message-store/instant" in " ".join(fake.subscriptions[0]["eventFilters"])
        assert not any(c.changed for c in rc.point_webhooks(BUSINESS, urls))
