"""The done-when flows with a real marketplace install (no pasted token): a portal installs the
app through the public routes, a missed call's app events reach HubSpot with the install's OAuth
token, and HubSpot's workflows use them: "customer replied -> create deal" and "deal closed-lost
-> text a follow-up" through the workflow action, signed with the app's secret."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from connector.marketplace import render
from connector.storage.models import Call, Message
from crm_adapters.hubspot.webhooks import signature_v3
from tests.connector import test_hubspot_install as install
from tests.connector.helpers import CALLER, missed, post, records
from tests.stubs.hubspot_stub import HubSpotStub, deploy_app_events

ACTION = "/hubspot/workflow-actions/send-text"
PUBLIC = "https://hooks.example.test"
BUSINESS = "+13125550100"
# The install suite's HubSpot (the marketplace app, two portals) and settings.
hubspot, settings = install.hubspot, install.settings


def _installed(app, runtime, hubspot: HubSpotStub):  # type: ignore[no-untyped-def]
    """Portal 62515 installs the app; the carrier gets a number; the events are deployed."""
    client = app.test_client()
    assert install._install(client, hubspot).status_code == 302
    deploy_app_events(hubspot, [json.loads(t) for p, t in render().items() if "/app-events/" in p])
    return client, install._give_number(runtime, install.ACME_ACCOUNT, BUSINESS)


def _run(client, contact_id: str, callback: str, **inputs: str):  # type: ignore[no-untyped-def]
    body = json.dumps({
        "callbackId": callback, "origin": {"portalId": install.ACME},
        "context": {"source": "WORKFLOWS", "workflowId": 9},
        "object": {"objectId": int(contact_id), "objectType": "CONTACT", "properties": {}},
        "inputFields": inputs}).encode()
    stamp = str(int(time.time() * 1000))
    return client.post(ACTION, data=body, content_type="application/json", headers={
        "X-HubSpot-Signature-v3": signature_v3(install.CLIENT_SECRET, "POST", PUBLIC + ACTION,
                                               body, stamp),
        "X-HubSpot-Request-Timestamp": stamp})


def test_customer_replied_then_create_deal(app, runtime, hubspot):  # type: ignore[no-untyped-def]
    client, secret = _installed(app, runtime, hubspot)
    post(client, install.ACME_ACCOUNT, "voice", missed(to=BUSINESS), secret)
    post(client, install.ACME_ACCOUNT, "sms", {"message_id": "R1", "from": CALLER,
                                                "to": BUSINESS, "body": "Can you come Friday?"},
         secret)
    kinds = [e["eventTypeName"] for e in hubspot.app_events]
    assert kinds.count("textback_missed_call") == 1 and kinds.count("textback_texted_back") == 1
    (replied,) = [e for e in hubspot.app_events
                  if e["eventTypeName"] == "textback_customer_replied"]
    assert replied["properties"]["reply_text"] == "Can you come Friday?"
    (contact,) = hubspot.records("contacts", hub_id=install.ACME)
    assert str(replied["objectId"]) == contact["id"]
    # HubSpot's workflow ("textback: customer replied" -> create deal) for the enrolled contact.
    deals_before = len(hubspot.records("deals", hub_id=install.ACME))
    with hubspot.portal(install.ACME):
        created = hubspot._create("deals", {  # noqa: SLF001 - HubSpot's own action
            "properties": {"dealname": "Replied to textback", "pipeline": "default",
                           "dealstage": "appointmentscheduled"},
            "associations": [{"to": {"id": contact["id"]}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]})
    deals = hubspot.records("deals", hub_id=install.ACME)
    assert len(deals) == deals_before + 1 and created.id in {d["id"] for d in deals}


def test_deal_closed_lost_then_text_a_follow_up(app, runtime, hubspot, frozen_clock):  # type: ignore[no-untyped-def]
    client, secret = _installed(app, runtime, hubspot)
    post(client, install.ACME_ACCOUNT, "voice", missed(to=BUSINESS), secret)
    (deal,) = hubspot.records("deals", hub_id=install.ACME)
    (contact,) = hubspot.records("contacts", hub_id=install.ACME)
    with hubspot.portal(install.ACME):
        hubspot.close_deal(deal["id"], won=False)  # a rep marks the deal closed lost
    texts_before = len(records(runtime, install.ACME_ACCOUNT, "sms"))
    # The next afternoon in the caller's time zone (the access token has expired meanwhile).
    frozen_clock.move_to(datetime(2026, 6, 16, 20, 0, tzinfo=UTC))
    # HubSpot's workflow (deal closed lost -> Send a text with textback) on the deal's contact.
    answer = _run(client, contact["id"], "ap-lost-1", template="general", cooldown="ignore")
    assert answer.status_code == 200
    assert answer.json["outputFields"].get("hs_execution_state") == "BLOCK", answer.json
    texts = records(runtime, install.ACME_ACCOUNT, "sms")
    assert len(texts) == texts_before + 1 and texts[-1]["to"] == CALLER
    assert hubspot.callbacks["ap-lost-1"] == {"outputFields": {"status": "sent", "reason": ""}}
    with runtime.db.session() as s:
        sent = s.query(Message).filter(Message.purpose_key.like("workflow:%")).one()
        assert sent.status == "sent"
    # A forged run for the same portal is refused.
    forged = client.post(ACTION, data=b"{}", content_type="application/json")
    assert forged.status_code in (400, 403)


def _webhook(client, events: list[dict[str, object]], *, secret: str = install.CLIENT_SECRET):  # type: ignore[no-untyped-def]
    path = "/webhooks/crm/hubspot"
    body = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))
    return client.post(path, data=body, content_type="application/json", headers={
        "X-HubSpot-Signature-v3": signature_v3(secret, "POST", PUBLIC + path, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp})


def test_the_apps_one_webhook_url_serves_every_installed_portal(app, runtime, hubspot):  # type: ignore[no-untyped-def]
    client, secret = _installed(app, runtime, hubspot)
    post(client, install.ACME_ACCOUNT, "voice", missed(to=BUSINESS), secret)
    (task,) = hubspot.records("tasks", hub_id=install.ACME)
    done = {"eventId": 11, "subscriptionType": "object.propertyChange", "portalId": install.ACME,
            "objectId": int(task["id"]), "propertyName": "hs_task_status",
            "propertyValue": "COMPLETED", "occurredAt": int(time.time() * 1000)}
    stranger = _webhook(client, [{**done, "portalId": 99999}])
    forged = _webhook(client, [done], secret="not-the-app-secret")
    unreadable = _webhook(client, [{"eventId": 12}])
    assert (stranger.status_code, forged.status_code, unreadable.status_code) == (403, 403, 400)
    with runtime.db.session() as s:
        assert s.query(Call).one().human_responded_at is None
    assert _webhook(client, [done]).status_code == 200
    with runtime.db.session() as s:
        assert s.query(Call).one().human_responded_at is not None
