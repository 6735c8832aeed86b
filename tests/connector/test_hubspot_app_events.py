"""App events on the HubSpot contact timeline: sent as things happen, once each, with the
request shape the app's declared event types accept (the local HubSpot stub checks it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connector.marketplace import render
from connector.storage.consent import record_opt_out
from crm_adapters.base import AppEvent
from crm_adapters.hubspot import HubSpotCrm
from tests.carrier_adapters.test_twilio import fixture_body
from tests.connector import test_end_to_end_twilio_hubspot as e2e
from tests.connector.test_end_to_end_twilio_hubspot import (
    ACCOUNT,
    BUSINESS,
    CALLER,
    HS_TOKEN,
    twilio_post,
)
from tests.stubs.hubspot_stub import HubSpotStub, deploy_app_events

EVENTS = "/integrators/timeline/v4/events"
# The end-to-end suite's account (Twilio and HubSpot through the real adapters) and stubs.
client, hubspot, twilio_api = e2e.client, e2e.hubspot, e2e.twilio_api


def declared_event_types() -> list[dict[str, object]]:
    """The app-event components of the committed HubSpot project, as HubSpot would hold them."""
    return [json.loads(text) for path, text in render().items() if "/app-events/" in path]


@pytest.fixture
def marketplace(hubspot: HubSpotStub, twilio_api, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
                ) -> Iterator[HubSpotStub]:
    """The account is connected through the marketplace app, whose event types are deployed."""
    monkeypatch.setattr(HubSpotCrm, "uses_oauth", lambda self: True)
    twilio_api.add_passthru(hubspot.url)  # app events go over requests, to the stub
    deploy_app_events(hubspot, declared_event_types())
    yield hubspot


def by_kind(stub: HubSpotStub) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {}
    for event in stub.app_events:
        found.setdefault(str(event["eventTypeName"]), []).append(event)
    return found


def test_a_texted_missed_call_sends_missed_call_and_texted_back_once(
        client, twilio_api, marketplace):  # type: ignore[no-untyped-def]
    marketplace.fail_next(503, path=EVENTS)  # HubSpot stumbles once: retried, not doubled
    for _ in range(3):  # the dial action, re-delivered
        twilio_post(client, "voice", fixture_body("voice_dial_no_answer"))
    twilio_post(client, "voice", fixture_body("voice_status_no_answer"))
    events = by_kind(marketplace)
    contact_id = marketplace.records("contacts")[0]["id"]
    assert sorted(events) == ["textback_missed_call", "textback_texted_back"]
    (missed,), (texted,) = events["textback_missed_call"], events["textback_texted_back"]
    assert missed["objectId"] == contact_id and texted["objectId"] == contact_id
    assert missed["properties"] == {
        "business_number": BUSINESS, "outcome": "no-answer", "texted": "yes",
        "suppression_reason": "", "owner_id": "501", "call_id": missed["properties"]["call_id"]}
    assert texted["properties"]["template"] == "general"
    assert texted["properties"]["business_number"] == BUSINESS
    assert str(missed["id"]).startswith("missed_call:")
    assert datetime.fromisoformat(str(missed["timestamp"]).replace("Z", "+00:00")).tzinfo
    # The engagements are still logged: the events add the triggers.
    assert len(marketplace.records("calls")) == 1
    assert len(marketplace.records("communications")) == 1


def test_a_call_not_texted_says_why(client, twilio_api, marketplace, runtime):  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        record_opt_out(s, ACCOUNT, CALLER, "test", BUSINESS)
        s.commit()
    twilio_post(client, "voice", fixture_body("voice_dial_no_answer"))
    (missed,) = by_kind(marketplace)["textback_missed_call"]
    assert missed["properties"]["texted"] == "no"
    assert missed["properties"]["suppression_reason"] == "opted_out"
    assert "textback_texted_back" not in by_kind(marketplace)


def test_a_reply_and_an_opt_out_are_events_with_what_was_said(
        client, twilio_api, marketplace):  # type: ignore[no-untyped-def]
    twilio_post(client, "voice", fixture_body("voice_dial_no_answer"))
    twilio_post(client, "sms", fixture_body("sms_inbound"))
    twilio_post(client, "sms", fixture_body("sms_inbound"))  # Twilio redelivers
    (replied,) = by_kind(marketplace)["textback_customer_replied"]
    assert "leaky faucet" in str(replied["properties"]["reply_text"])
    assert replied["properties"]["business_number"] == BUSINESS
    assert replied["properties"]["call_id"]
    twilio_post(client, "sms", fixture_body("sms_inbound_stop"))
    (opted,) = by_kind(marketplace)["textback_opted_out"]
    assert opted["properties"] == {"business_number": BUSINESS, "keyword": "STOP"}


def test_a_private_app_token_sends_no_app_events(client, twilio_api, hubspot):  # type: ignore[no-untyped-def]
    twilio_post(client, "voice", fixture_body("voice_dial_no_answer"))
    assert len(hubspot.records("calls")) == 1
    assert not [r for r in hubspot.requests if r.path == EVENTS]


def test_resending_an_occurrence_is_a_no_op(marketplace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    crm = HubSpotCrm({"access_token": HS_TOKEN}, api_base_url=marketplace.url)
    contact = marketplace.add_contact(phone=CALLER)
    event = AppEvent(kind="opted_out", event_id="opted_out:m1", contact_id=contact,
                     occurred_at=datetime(2026, 6, 15, 12, tzinfo=UTC),
                     properties={"business_number": BUSINESS, "keyword": "STOP", "extra": "x"})
    crm.send_app_event(event)
    crm.send_app_event(event)  # HubSpot answers 409: already there
    assert len(marketplace.app_events) == 1
    assert marketplace.app_events[0]["properties"] == {"business_number": BUSINESS,
                                                       "keyword": "STOP"}
    assert [r.json["id"] for r in marketplace.requests if r.path == EVENTS] == \
        ["opted_out:m1", "opted_out:m1"]


def test_an_event_type_hubspot_does_not_know_is_refused_clearly(marketplace) -> None:  # type: ignore[no-untyped-def]
    from connector.kernel.errors import PermanentProviderError

    marketplace.app_event_types.clear()  # the project was not deployed with its events
    crm = HubSpotCrm({"access_token": HS_TOKEN}, api_base_url=marketplace.url)
    event = AppEvent(kind="opted_out", event_id="opted_out:m2", contact_id="1",
                     occurred_at=datetime(2026, 6, 15, 12, tzinfo=UTC), properties={})
    with pytest.raises(PermanentProviderError, match="app event opted_out"):
        crm.send_app_event(event)
