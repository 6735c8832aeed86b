"""A missed Twilio call becomes a text and HubSpot records, through the real adapters.

Twilio's side is signed with the official ``twilio`` package's RequestValidator against
``TEXTBACK_PUBLIC_URL`` + path, and its Messages API is mocked with ``responses``; HubSpot is the
local stub on 127.0.0.1 (the SDK uses urllib3, which ``responses`` cannot see).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import parse_qs, parse_qsl

import pytest
import responses
from twilio.request_validator import RequestValidator

from connector.storage.accounts import import_account
from tests.carrier_adapters.test_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    fixture_body,
    message_json,
)
from tests.stubs.hubspot_stub import HubSpotStub

HS_TOKEN = "pat-na1-e2e-token-0123456789"
TWILIO_API = "https://twilio-api.test"
MESSAGES = f"{TWILIO_API}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
BUSINESS = "+14155550100"
CALLER = "+12025550143"
ACCOUNT = "acme-plumbing"
PUBLIC = "https://hooks.example.test"


@pytest.fixture
def hubspot() -> Iterator[HubSpotStub]:
    with HubSpotStub(access_token=HS_TOKEN) as stub:
        yield stub


@pytest.fixture
def twilio_api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, MESSAGES, json=message_json(), status=201)
        yield mock


@pytest.fixture
def client(app, runtime, hubspot):  # type: ignore[no-untyped-def]
    doc = {
        "id": ACCOUNT,
        "name": "Acme Plumbing",
        "timezone": "America/New_York",
        "carrier": {
            "kind": "twilio",
            "credentials": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
            "numbers": [BUSINESS],
            "forward_to": ["+14155550199", "+14155550198"],
            "api_base_url": TWILIO_API,
        },
        "crm": {
            "kind": "hubspot",
            "credentials": {"access_token": HS_TOKEN},
            "api_base_url": hubspot.url,
            "mapping": {"pipeline": "default", "stage": "appointmentscheduled",
                        "owner_id": "501", "task_queue_id": "7"},
        },
    }
    with runtime.db.session() as s:
        import_account(s, runtime.box, doc)
    return app.test_client()


def twilio_post(client, kind: str, body: bytes, *, token: str = AUTH_TOKEN):  # type: ignore[no-untyped-def]
    path = f"/webhooks/twilio/{ACCOUNT}/{kind}"
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return client.post(path, data=body, headers={
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    })


def test_incoming_call_is_forwarded_with_our_action_url(client):
    response = twilio_post(client, "voice", fixture_body("voice_incoming_call"))
    assert response.status_code == 200 and response.mimetype == "text/xml"
    dial = ET.fromstring(response.data).find("Dial")
    assert dial is not None
    assert dial.get("action") == f"{PUBLIC}/webhooks/twilio/{ACCOUNT}/voice"
    assert dial.get("timeout") == "20"
    assert [n.text for n in dial.findall("Number")] == ["+14155550199", "+14155550198"]


def test_missed_call_texts_first_and_lands_in_hubspot(client, twilio_api, hubspot):
    for _ in range(3):  # the dial action, re-delivered
        response = twilio_post(client, "voice", fixture_body("voice_dial_no_answer"))
        assert response.status_code == 200
        ET.fromstring(response.data)  # valid TwiML
    twilio_post(client, "voice", fixture_body("voice_status_no_answer"))  # backstop, same call

    sends = [c for c in twilio_api.calls if c.request.method == "POST"]
    assert len(sends) == 1
    form = parse_qs(sends[0].request.body)
    assert form["To"] == [CALLER] and form["From"] == [BUSINESS]
    assert form["StatusCallback"] == [f"{PUBLIC}/webhooks/twilio/{ACCOUNT}/status"]
    assert "Acme Plumbing" in form["Body"][0]

    contacts = hubspot.records("contacts")
    assert len(contacts) == 1 and contacts[0]["properties"]["phone"] == CALLER
    contact_id = contacts[0]["id"]
    deals = hubspot.records("deals")
    assert len(deals) == 1
    assert deals[0]["properties"]["dealstage"] == "appointmentscheduled"
    deal_id = deals[0]["id"]
    calls = hubspot.records("calls")
    assert len(calls) == 1
    assert calls[0]["properties"]["hs_call_direction"] == "INBOUND"
    assert calls[0]["properties"]["hs_call_status"] == "NO_ANSWER"
    comms = hubspot.records("communications")
    assert len(comms) == 1 and comms[0]["properties"]["hs_communication_channel_type"] == "SMS"
    tasks = hubspot.records("tasks")
    assert len(tasks) == 1
    task = tasks[0]["properties"]
    assert task["hubspot_owner_id"] == "501" and task["hs_task_type"] == "CALL"
    assert task["hs_queue_membership_ids"] == "7"
    assert CALLER in task["hs_task_body"] and "Texted" in task["hs_task_body"]
    linked = {(t, i) for t, i, _ in tasks[0]["associations"]}
    assert ("contacts", contact_id) in linked and ("deals", deal_id) in linked


def test_reply_and_delivery_failure_reach_the_task(client, twilio_api, hubspot, runtime):
    twilio_post(client, "voice", fixture_body("voice_dial_no_answer"))
    reply = twilio_post(client, "sms", fixture_body("sms_inbound"))
    assert reply.status_code == 200
    comms = hubspot.records("communications")
    assert len(comms) == 2
    body = hubspot.records("tasks")[0]["properties"]["hs_task_body"]
    assert "leaky faucet" in body

    from sqlalchemy import update

    from connector.storage.models import Message

    with runtime.db.session() as s:  # the status fixture reports on its own message sid
        s.execute(update(Message).where(Message.direction == "outbound").values(
            carrier_message_id="SMaaace541c00b36b2cb293ac102501f28"))
    status = twilio_post(client, "status", fixture_body("status_undelivered"))
    assert status.status_code == 200
    body = hubspot.records("tasks")[0]["properties"]["hs_task_body"]
    assert "not delivered" in body and "30006" in body


def test_answered_call_and_bad_signature_change_nothing(client, twilio_api, hubspot):
    assert twilio_post(client, "voice", fixture_body("voice_dial_answered")).status_code == 200
    forged = twilio_post(client, "voice", fixture_body("voice_dial_no_answer"), token="wrong")
    assert forged.status_code == 403
    assert len(twilio_api.calls) == 0
    assert hubspot.records("contacts") == [] and hubspot.requests == []


def test_a_call_source_can_text_through_another_carrier(app, runtime, twilio_api, webhook_secret):
    """Calls reported by one provider, texts sent (and replies taken) through Twilio."""
    from tests.connector.helpers import missed, post, records, sandbox_account

    doc = sandbox_account("acme-two", webhook_secret)
    doc["carrier"]["numbers"] = [BUSINESS]
    doc["carrier"]["sms"] = {"kind": "twilio", "api_base_url": TWILIO_API,
                             "credentials": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}}
    with runtime.db.session() as s:
        import_account(s, runtime.box, doc)
    client = app.test_client()
    assert post(client, "acme-two", "voice", missed(caller=CALLER), webhook_secret).status_code == 200
    sends = [c for c in twilio_api.calls if c.request.method == "POST"]
    assert len(sends) == 1 and parse_qs(sends[0].request.body)["To"] == [CALLER]
    assert parse_qs(sends[0].request.body)["StatusCallback"] == [
        f"{PUBLIC}/webhooks/twilio/acme-two/status"]
    assert records(runtime, "acme-two", "sms") == []  # the sandbox carrier only reports calls
    path = "/webhooks/twilio/acme-two/sms"
    body = fixture_body("sms_inbound")
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, params)
    reply = client.post(path, data=body, headers={"X-Twilio-Signature": signature,
                                                  "Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 200
    assert client.post("/webhooks/plivo/acme-two/sms", data=body).status_code == 404


def test_a_source_that_cannot_text_needs_an_sms_carrier(runtime, webhook_secret, monkeypatch):
    from carrier_adapters.sandbox import SandboxCarrier
    from connector.kernel.errors import ConfigurationError
    from connector.storage.accounts import validate_account
    from tests.connector.helpers import sandbox_account

    monkeypatch.setattr(SandboxCarrier, "sends_sms", False)
    with pytest.raises(ConfigurationError, match="carrier.sms"):
        validate_account(sandbox_account("x1", webhook_secret))
