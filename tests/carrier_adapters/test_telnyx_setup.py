"""Telnyx's setup calls beyond the contract: shared profiles and applications, the connections
that cannot be pointed, and reading each profile and connection once."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from carrier_adapters.provisioning import webhook_urls
from carrier_adapters.telnyx import TelnyxCarrier
from connector.kernel.errors import PermanentProviderError
from tests.stubs.telnyx_numbers import TelnyxNumbersFake

API_KEY = "KEY-setup-test-0123456789"
API_BASE = "https://telnyx-api.test"
OWNED = ("+14155550100", "+14155550101", "+14155550102")
URLS = webhook_urls("https://textback.example.com", "telnyx", "acme")
PUBLIC_KEY = base64.b64encode(
    Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def fake(http: responses.RequestsMock) -> TelnyxNumbersFake:
    account = TelnyxNumbersFake(API_KEY, OWNED)
    account.install(http, API_BASE)
    return account


@pytest.fixture
def telnyx() -> TelnyxCarrier:
    return TelnyxCarrier({"api_key": API_KEY, "public_key": PUBLIC_KEY}, api_base_url=API_BASE)


def test_numbers_show_their_profile_and_application_urls(
    fake: TelnyxNumbersFake, telnyx: TelnyxCarrier, http: responses.RequestsMock
) -> None:
    fake.share_profile(OWNED[0], OWNED[1])
    listed = telnyx.list_numbers()
    assert [n.e164 for n in listed] == list(OWNED)
    assert listed[0].voice_url == "https://old.example.com/texml"
    assert listed[0].sms_url == "https://old.example.com/sms"
    assert listed[0].capabilities == {"voice", "sms"}
    profile_reads = [c for c in http.calls if "/v2/messaging_profiles/" in c.request.url]
    assert len(profile_reads) == 2, "a shared profile is read once"


def test_pointing_writes_the_profile_and_the_texml_application(
    fake: TelnyxNumbersFake, telnyx: TelnyxCarrier
) -> None:
    changes = {c.field: c for c in telnyx.point_webhooks(OWNED[0], URLS)}
    assert changes["messaging profile Profile 1: webhook_url"].after == URLS.sms
    assert changes["TeXML application App 1: voice_url"].before == "https://old.example.com/texml"
    assert changes["TeXML application App 1: status_callback"].after == URLS.voice
    app = fake.texml[fake.numbers[OWNED[0]]["connection_id"]]
    assert (app["voice_url"], app["status_callback"], app["friendly_name"]) == (
        URLS.voice, URLS.voice, "App 1"
    )


def test_watching_keeps_the_applications_own_voice_url(
    fake: TelnyxNumbersFake, telnyx: TelnyxCarrier
) -> None:
    telnyx.point_webhooks(OWNED[0], URLS, calls="watch")
    app = fake.texml[fake.numbers[OWNED[0]]["connection_id"]]
    assert app["voice_url"] == "https://old.example.com/texml"
    assert app["status_callback"] == URLS.voice


def test_a_shared_profile_is_named_so_the_admin_sees_who_else_moves(
    fake: TelnyxNumbersFake, telnyx: TelnyxCarrier
) -> None:
    fake.share_profile(OWNED[0], OWNED[1])
    telnyx.point_webhooks(OWNED[0], URLS)
    second = next(n for n in telnyx.list_numbers() if n.e164 == OWNED[1])
    assert second.sms_url == URLS.sms  # the profile serves both numbers


@pytest.mark.parametrize(
    ("record_type", "reason"),
    [("call_control_application", "Call Control"), ("credential_connection", "SIP connection")],
)
def test_numbers_off_texml_are_refused_untouched(
    fake: TelnyxNumbersFake, telnyx: TelnyxCarrier, record_type: str, reason: str
) -> None:
    fake.use_connection(OWNED[2], record_type)
    with pytest.raises(PermanentProviderError, match=reason):
        telnyx.point_webhooks(OWNED[2], URLS)
    assert fake.updates == []


def test_a_number_outside_any_messaging_profile_is_refused(
    fake: TelnyxNumbersFake, telnyx: TelnyxCarrier
) -> None:
    fake.numbers[OWNED[1]]["messaging_profile_id"] = None
    with pytest.raises(PermanentProviderError, match="messaging profile"):
        telnyx.point_webhooks(OWNED[1], URLS)
    assert fake.updates == []
    listed = next(n for n in telnyx.list_numbers() if n.e164 == OWNED[1])
    assert listed.capabilities == {"voice"}


def test_paste_instructions_name_the_profile_and_the_application() -> None:
    watch = TelnyxCarrier.webhook_settings(URLS, calls="watch")
    forward = TelnyxCarrier.webhook_settings(URLS, calls="forward")
    assert any("messaging profile" in s.where and s.url == URLS.sms for s in forward)
    assert any("Voice URL" in s.where for s in forward)
    assert not any("Voice URL" in s.where for s in watch)
    assert any("Call Control" in s.where for s in watch)
