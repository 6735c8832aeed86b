"""Twilio's setup calls beyond the contract: paging, the two ways of handling calls, and the
numbers whose own webhooks Twilio ignores (TwiML Apps, SIP trunks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from carrier_adapters.provisioning import webhook_urls
from carrier_adapters.twilio import TwilioCarrier, numbers
from connector.kernel.errors import PermanentProviderError
from tests.stubs.twilio_numbers import TwilioNumbersFake

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "setup-test-auth-token-0123"
API_BASE = "https://twilio-api.test"
OWNED = ("+14155550100", "+14155550101", "+14155550102")
URLS = webhook_urls("https://textback.example.com", "twilio", "acme")


@pytest.fixture
def fake() -> Iterator[TwilioNumbersFake]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        account = TwilioNumbersFake(ACCOUNT_SID, AUTH_TOKEN, OWNED)
        account.install(http, API_BASE)
        yield account


@pytest.fixture
def twilio() -> TwilioCarrier:
    return TwilioCarrier(
        {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}, api_base_url=API_BASE
    )


def test_every_page_of_numbers_is_read(
    fake: TwilioNumbersFake, twilio: TwilioCarrier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(numbers, "PAGE_SIZE", 2)
    listed = twilio.list_numbers()
    assert [n.e164 for n in listed] == list(OWNED)
    first = listed[0]
    assert first.capabilities == {"voice", "sms", "mms"}
    assert first.voice_url == "https://demo.twilio.com/welcome/voice/"
    assert first.status_url is None  # Twilio's empty string is "not set"
    assert first.carrier_id == fake.numbers[OWNED[0]]["sid"]


def test_forwarding_sets_voice_sms_and_status_in_one_update(
    fake: TwilioNumbersFake, twilio: TwilioCarrier
) -> None:
    changes = twilio.point_webhooks(OWNED[1], URLS)
    # Only what differs is sent: the methods were POST already.
    assert fake.updates == [
        {"SmsUrl": URLS.sms, "VoiceUrl": URLS.voice, "StatusCallback": URLS.voice}
    ]
    by_field = {c.field: c for c in changes}
    assert by_field["VoiceUrl"].before == "https://demo.twilio.com/welcome/voice/"
    assert by_field["VoiceUrl"].after == URLS.voice
    assert by_field["SmsMethod"].changed is False
    assert fake.numbers[OWNED[0]]["voice_url"] != URLS.voice  # the others are untouched


def test_keeping_the_own_call_flow_leaves_the_voice_url(
    fake: TwilioNumbersFake, twilio: TwilioCarrier
) -> None:
    changes = twilio.point_webhooks(OWNED[0], URLS, calls="watch")
    assert "VoiceUrl" not in {c.field for c in changes}
    assert fake.numbers[OWNED[0]]["voice_url"] == "https://demo.twilio.com/welcome/voice/"
    assert fake.numbers[OWNED[0]]["status_callback"] == URLS.voice
    assert fake.numbers[OWNED[0]]["sms_url"] == URLS.sms


def test_a_twiml_app_is_detached_so_the_voice_url_counts(
    fake: TwilioNumbersFake, twilio: TwilioCarrier
) -> None:
    app = "AP" + "2" * 32
    fake.numbers[OWNED[0]]["voice_application_sid"] = app
    fake.numbers[OWNED[0]]["sms_application_sid"] = app
    changes = {c.field: c for c in twilio.point_webhooks(OWNED[0], URLS)}
    assert (changes["VoiceApplicationSid"].before, changes["VoiceApplicationSid"].after) == (
        app, None
    )
    assert changes["SmsApplicationSid"].changed
    assert fake.updates[0]["VoiceApplicationSid"] == ""


def test_watching_calls_behind_a_twiml_app_is_refused_untouched(
    fake: TwilioNumbersFake, twilio: TwilioCarrier
) -> None:
    fake.numbers[OWNED[0]]["voice_application_sid"] = "AP" + "3" * 32
    with pytest.raises(PermanentProviderError, match="TwiML App"):
        twilio.point_webhooks(OWNED[0], URLS, calls="watch")
    assert fake.updates == []


def test_a_sip_trunk_number_is_refused_untouched(
    fake: TwilioNumbersFake, twilio: TwilioCarrier
) -> None:
    fake.numbers[OWNED[2]]["trunk_sid"] = "TK" + "4" * 32
    with pytest.raises(PermanentProviderError, match="SIP trunk"):
        twilio.point_webhooks(OWNED[2], URLS)
    assert fake.updates == []


def test_a_number_of_another_account_is_refused_without_showing_it(
    fake: TwilioNumbersFake, twilio: TwilioCarrier
) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        twilio.point_webhooks("+14155550177", URLS)
    assert "+14155550177" not in str(caught.value)
    assert fake.updates == []


def test_paste_instructions_follow_the_call_handling() -> None:
    forward = TwilioCarrier.webhook_settings(URLS, calls="forward")
    watch = TwilioCarrier.webhook_settings(URLS, calls="watch")
    assert any("A call comes in" in s.where and s.url == URLS.voice for s in forward)
    assert not any("A call comes in" in s.where for s in watch)
    for settings in (forward, watch):
        assert any("Call status changes" in s.where and s.url == URLS.voice for s in settings)
        assert any("A message comes in" in s.where and s.url == URLS.sms for s in settings)
        # Delivery reports need no setting: textback names the status URL on each text.
        assert URLS.status not in {s.url for s in settings}


SERVICE = "MG" + "5" * 32


@pytest.mark.parametrize(
    ("defers_to_number", "member", "refused"),
    [(False, True, True), (True, True, False), (False, False, False)],
)
def test_a_messaging_service_that_takes_the_numbers_texts_is_named(
    fake: TwilioNumbersFake, defers_to_number: bool, member: bool, refused: bool
) -> None:
    sid = fake.numbers[OWNED[0]]["sid"]
    fake.services[SERVICE] = {"friendly_name": "Acme texts", "numbers": {sid} if member else set(),
                              "use_inbound_webhook_on_number": defers_to_number}
    twilio = TwilioCarrier(
        {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "messaging_service_sid": SERVICE},
        api_base_url=API_BASE,
    )
    if refused:
        with pytest.raises(PermanentProviderError, match="Acme texts.*Defer to sender's webhook"):
            twilio.point_webhooks(OWNED[0], URLS)
        assert fake.updates == []
    else:
        twilio.point_webhooks(OWNED[0], URLS)
        assert fake.numbers[OWNED[0]]["sms_url"] == URLS.sms
