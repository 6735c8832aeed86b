"""The HubSpot workflow action "Send a text with textback", through its public routes.

HubSpot's requests are signed here as HubSpot signs them (v3: HMAC-SHA256 of method, URL, body
and timestamp under the app's client secret); Twilio's Messages API is mocked with
``responses``; HubSpot's API (the callback that completes a blocked run, app events, the
logged text) is the local stub.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
import responses

from connector.marketplace import render
from connector.storage.accounts import import_account
from connector.storage.consent import record_opt_out
from connector.storage.installations import save_installation
from crm_adapters.base import OAuthTokens
from crm_adapters.hubspot import HubSpotCrm
from crm_adapters.hubspot.webhooks import signature_v3
from tests.carrier_adapters.test_twilio import ACCOUNT_SID, AUTH_TOKEN, fixture_body, message_json
from tests.connector import test_end_to_end_twilio_hubspot as e2e
from tests.connector.test_end_to_end_twilio_hubspot import (
    ACCOUNT,
    BUSINESS,
    CALLER,
    HS_TOKEN,
    MESSAGES,
    PUBLIC,
    TWILIO_API,
    twilio_post,
)
from tests.stubs.hubspot_stub import HubSpotStub, deploy_app_events

SECRET = "hubspot-app-client-secret-0123"
PORTAL = 62515
ACTION = "/hubspot/workflow-actions/send-text"
OPTIONS = ACTION + "/options"
hubspot = e2e.hubspot


@pytest.fixture
def twilio_api(hubspot: HubSpotStub) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, MESSAGES, json=message_json(), status=201)
        mock.add_passthru(hubspot.url)  # callbacks and app events go to the stub
        yield mock


@pytest.fixture
def client(app, runtime, hubspot, twilio_api, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    """Acme Plumbing, installed from HubSpot's marketplace in portal 62515, at 16:00 UTC
    (noon for its Eastern callers)."""
    frozen_clock.move_to(datetime(2026, 6, 15, 16, 0, tzinfo=UTC))
    monkeypatch.setattr(HubSpotCrm, "uses_oauth", lambda self: True)
    deploy_app_events(hubspot, [json.loads(t) for p, t in render().items() if "/app-events/" in p])
    doc = {
        "id": ACCOUNT, "name": "Acme Plumbing", "timezone": "America/New_York",
        "carrier": {"kind": "twilio", "numbers": [BUSINESS], "api_base_url": TWILIO_API,
                    "credentials": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}},
        "crm": {"kind": "hubspot", "api_base_url": hubspot.url,
                "credentials": {"access_token": HS_TOKEN, "client_secret": SECRET},
                "mapping": {"pipeline": "default", "stage": "appointmentscheduled",
                            "owner_id": "501"}},
    }
    with runtime.db.session() as s:
        import_account(s, runtime.box, doc)
    save_installation(runtime.db, runtime.box, ACCOUNT, "hubspot",
                      OAuthTokens("access", "refresh"), external_id=str(PORTAL))
    return app.test_client()


def signed(client, path: str, payload: dict[str, object], *, secret: str = SECRET):  # type: ignore[no-untyped-def]
    body = json.dumps(payload).encode()
    stamp = str(int(time.time() * 1000))
    return client.post(path, data=body, content_type="application/json", headers={
        "X-HubSpot-Signature-v3": signature_v3(secret, "POST", PUBLIC + path, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp})


def run(contact_id: str, callback: str = "ap-1-2-3-0", *, phone: str | None = "(202) 555-0143",
        **inputs: str) -> dict[str, object]:
    """A run of the action as HubSpot posts it."""
    return {"callbackId": callback,
            "origin": {"portalId": PORTAL, "actionDefinitionId": 7, "actionDefinitionVersion": 1},
            "context": {"source": "WORKFLOWS", "workflowId": 42},
            "object": {"objectId": int(contact_id), "objectType": "CONTACT",
                       "properties": {"phone": phone} if phone else {}},
            "inputFields": {"cooldown": "respect", **inputs}}


def sends(mock: responses.RequestsMock) -> list[dict[str, list[str]]]:
    return [parse_qs(c.request.body) for c in mock.calls if c.request.url == MESSAGES]


BLOCK = {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P1D"}}


def test_a_signed_run_texts_the_contact_and_completes_through_the_callback(
        client, hubspot, twilio_api):  # type: ignore[no-untyped-def]
    contact = hubspot.add_contact(phone=CALLER, firstname="Dana")
    response = signed(client, ACTION, run(contact, template="appointment"))
    assert response.status_code == 200 and response.json == BLOCK
    (sent,) = sends(twilio_api)
    assert sent["To"] == [CALLER] and sent["From"] == [BUSINESS]
    assert "Acme Plumbing" in sent["Body"][0] and "book" in sent["Body"][0]
    assert hubspot.callbacks["ap-1-2-3-0"] == {"outputFields": {"status": "sent", "reason": ""}}
    comms = hubspot.records("communications")  # the text is on the contact's timeline
    assert len(comms) == 1 and ("contacts", contact) in {
        (t, i) for t, i, _ in comms[0]["associations"]}


def test_a_retried_run_sends_once(client, hubspot, twilio_api):  # type: ignore[no-untyped-def]
    contact = hubspot.add_contact(phone=CALLER)
    first = signed(client, ACTION, run(contact, template="general"))
    again = signed(client, ACTION, run(contact, template="general"))
    assert first.json == BLOCK
    assert again.status_code == 200
    assert again.json == {"outputFields": {"status": "sent", "reason": ""}}
    assert len(sends(twilio_api)) == 1 and len(hubspot.callbacks) == 1


def test_a_forged_or_stray_run_is_refused_and_changes_nothing(
        client, hubspot, twilio_api, runtime):  # type: ignore[no-untyped-def]
    contact = hubspot.add_contact(phone=CALLER)
    assert signed(client, ACTION, run(contact, template="general"),
                  secret="not-the-secret").status_code == 403
    stray = run(contact, template="general")
    stray["origin"] = {"portalId": 999}
    assert signed(client, ACTION, stray).status_code == 403
    unsigned = client.post(ACTION, data=json.dumps(run(contact)), content_type="application/json")
    assert unsigned.status_code == 403
    assert signed(client, ACTION, {"origin": {"portalId": PORTAL}}).status_code == 400
    assert sends(twilio_api) == [] and hubspot.callbacks == {}
    from connector.storage.models import Message

    with runtime.db.session() as s:
        assert s.query(Message).count() == 0


def test_an_opted_out_contact_is_suppressed_with_the_reason(
        client, hubspot, twilio_api, runtime):  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        record_opt_out(s, ACCOUNT, CALLER, "test", BUSINESS)
        s.commit()
    contact = hubspot.add_contact(phone=CALLER)
    response = signed(client, ACTION, run(contact, template="general"))
    assert response.json == {"outputFields": {"status": "suppressed", "reason": "opted_out"}}
    assert sends(twilio_api) == [] and hubspot.callbacks == {}


def test_quiet_hours_hold_the_text_back(client, hubspot, twilio_api, frozen_clock):  # type: ignore[no-untyped-def]
    frozen_clock.move_to(datetime(2026, 6, 16, 7, 0, tzinfo=UTC))  # 03:00 in Washington
    contact = hubspot.add_contact(phone=CALLER)
    response = signed(client, ACTION, run(contact, template="general"))
    outputs = response.json["outputFields"]
    assert outputs["status"] == "suppressed" and outputs["reason"].startswith("quiet_hours")
    assert sends(twilio_api) == []


def test_the_cooldown_applies_when_the_workflow_says_so(client, hubspot, twilio_api):  # type: ignore[no-untyped-def]
    contact = hubspot.add_contact(phone=CALLER)
    signed(client, ACTION, run(contact, "cb-1", template="general"))
    second = signed(client, ACTION, run(contact, "cb-2", template="general"))
    assert second.json == {"outputFields": {"status": "suppressed", "reason": "cooldown"}}
    third = signed(client, ACTION, run(contact, "cb-3", template="general", cooldown="ignore"))
    assert third.json == BLOCK
    assert len(sends(twilio_api)) == 2
    assert hubspot.callbacks["cb-3"]["outputFields"]["status"] == "sent"


def test_a_custom_message_is_personalised_and_mistakes_are_named(
        client, hubspot, twilio_api):  # type: ignore[no-untyped-def]
    contact = hubspot.add_contact(phone=CALLER)
    custom = signed(client, ACTION, run(contact, "cb-m", message="Your quote is ready - "
                                        "{business_name}. Reply STOP to opt out."))
    assert custom.json == BLOCK
    assert sends(twilio_api)[0]["Body"] == ["Your quote is ready - Acme Plumbing. Reply STOP to "
                                             "opt out."]
    nothing = signed(client, ACTION, run(contact, "cb-n"))
    assert nothing.json["outputFields"] == {"status": "failed",
                                            "reason": "choose a template or write a message"}
    unknown = signed(client, ACTION, run(contact, "cb-u", template="nope"))
    assert unknown.json["outputFields"]["reason"] == "no template named nope"
    foreign = signed(client, ACTION, run(contact, "cb-f", template="general",
                                         business_number="+14155550111"))
    assert "not one of the account's numbers" in foreign.json["outputFields"]["reason"]
    no_phone = signed(client, ACTION, run(str(int(contact) + 999), "cb-p", phone=None,
                                          template="general"))
    assert no_phone.json["outputFields"] == {"status": "failed",
                                             "reason": "the contact has no phone number to text"}
    assert len(sends(twilio_api)) == 1


def test_a_carrier_refusal_completes_the_run_as_failed(client, hubspot, twilio_api):  # type: ignore[no-untyped-def]
    twilio_api.replace(responses.POST, MESSAGES, status=400, json={
        "code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})
    contact = hubspot.add_contact(phone=CALLER)
    assert signed(client, ACTION, run(contact, template="general")).json == BLOCK
    outputs = hubspot.callbacks["ap-1-2-3-0"]["outputFields"]
    assert outputs["status"] == "failed" and "21211" in outputs["reason"]


def test_a_lost_callback_is_completed_by_the_sweeper(
        client, hubspot, twilio_api, runtime, frozen_clock):  # type: ignore[no-untyped-def]
    from connector.jobs.sweeper import sweep

    contact = hubspot.add_contact(phone=CALLER)
    hubspot.fail_next(503, path="/automation/", count=3)  # HubSpot down while completing
    assert signed(client, ACTION, run(contact, template="general")).json == BLOCK
    assert hubspot.callbacks == {} and len(sends(twilio_api)) == 1
    frozen_clock.shift(120)
    assert sweep(runtime) >= 1
    assert hubspot.callbacks["ap-1-2-3-0"]["outputFields"]["status"] == "sent"
    assert len(sends(twilio_api)) == 1  # completed, not sent again


def test_the_options_list_the_accounts_templates_and_numbers(client):  # type: ignore[no-untyped-def]
    base = {"origin": {"portalId": PORTAL}, "inputFields": {}, "fetchOptions": {}}
    templates = signed(client, OPTIONS, {**base, "inputFieldName": "template"}).json["options"]
    values = [o["value"] for o in templates]
    assert "general" in values and "appointment" in values
    assert "help" not in values and "opt_out_confirmation" not in values
    numbers = signed(client, OPTIONS, {**base, "inputFieldName": "business_number"}).json
    assert numbers["options"] == [{"label": BUSINESS, "value": BUSINESS}]
    assert signed(client, OPTIONS, {**base, "inputFieldName": "template"},
                  secret="forged").status_code == 403


# -- the workflows an admin builds from textback's events and action -----------------------------


def test_customer_replied_then_create_deal(client, hubspot, twilio_api):  # type: ignore[no-untyped-def]
    """Trigger "textback: customer replied" -> HubSpot's own "create deal" action."""
    twilio_post(client, "voice", fixture_body("voice_dial_no_answer"))
    twilio_post(client, "sms", fixture_body("sms_inbound"))
    enrolled = [e for e in hubspot.app_events if e["eventTypeName"] == "textback_customer_replied"]
    assert len(enrolled) == 1
    contact = str(enrolled[0]["objectId"])
    # HubSpot's workflow: for each enrolled contact, create a deal associated with it.
    before = len(hubspot.records("deals"))
    hubspot.handle("POST", "/crm/v3/objects/deals", {"authorization": f"Bearer {HS_TOKEN}"},
                   json.dumps({"properties": {"dealname": "Replied to textback",
                                              "pipeline": "default",
                                              "dealstage": "appointmentscheduled"},
                               "associations": [{"to": {"id": contact}, "types": [
                                   {"associationCategory": "HUBSPOT_DEFINED",
                                    "associationTypeId": 3}]}]}).encode())
    deals = hubspot.records("deals")
    assert len(deals) == before + 1
    assert contact == hubspot.records("contacts")[0]["id"]
    assert "leaky faucet" in str(enrolled[0]["properties"]["reply_text"])


def test_deal_closed_lost_then_text_a_follow_up(client, hubspot, twilio_api):  # type: ignore[no-untyped-def]
    """Trigger "deal stage is closed lost" -> "Send a text with textback" on the deal's contact."""
    twilio_post(client, "voice", fixture_body("voice_dial_no_answer"))  # textback made the deal
    (deal,) = hubspot.records("deals")
    contact = hubspot.records("contacts")[0]["id"]
    hubspot.close_deal(deal["id"], won=False)
    # HubSpot's workflow runs the action for the deal's contact, a day later.
    texts_before = len(sends(twilio_api))
    response = signed(client, ACTION, run(contact, "ap-lost-1", template="general",
                                          cooldown="ignore"))
    assert response.json == BLOCK
    assert len(sends(twilio_api)) == texts_before + 1
    assert sends(twilio_api)[-1]["To"] == [CALLER]
    assert hubspot.callbacks["ap-lost-1"]["outputFields"] == {"status": "sent", "reason": ""}
