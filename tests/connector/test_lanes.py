"""Texts first: the owner's alert for a customer's reply goes on the texts lane, and email
alerts never hold up a text."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connector.jobs.crm_sync import sync_message
from connector.storage.models import Message
from tests.connector.helpers import BUSINESS, add_account, missed, post
from tests.connector.test_conversations import DANA, account, caller, sms_to


def stall_the_crm_lane(runtime: Any, monkeypatch: Any) -> list[str]:
    """Every CRM-lane job is queued and never run, as behind a slow or throttled CRM."""
    waiting: list[str] = []
    monkeypatch.setattr(runtime.jobs, "_message_sync", waiting.append)
    monkeypatch.setattr(runtime.jobs, "_crm_sync", waiting.append)
    return waiting


def test_the_owner_hears_of_a_reply_while_the_crm_lane_is_stuck(
        app: Any, runtime: Any, webhook_secret: str, monkeypatch: Any) -> None:
    add_account(runtime, account(webhook_secret, default_owner="101"))
    client = app.test_client()
    post(client, "acme", "voice", missed(caller=caller(1)), webhook_secret)
    waiting = stall_the_crm_lane(runtime, monkeypatch)
    post(client, "acme", "sms", {"message_id": "R1", "from": caller(1), "to": BUSINESS,
                                 "body": "Water everywhere"}, webhook_secret)
    alerts = sms_to(runtime, DANA)
    assert len(alerts) == 2 and "Water everywhere" in alerts[1]["body"]
    assert len(waiting) == 1  # the reply's CRM note still waits its turn


def test_a_late_crm_sync_alerts_only_when_the_texts_lane_job_was_lost(
        app: Any, runtime: Any, webhook_secret: str, monkeypatch: Any,
        frozen_clock: Any) -> None:
    add_account(runtime, account(webhook_secret, default_owner="101"))
    client = app.test_client()
    post(client, "acme", "voice", missed(caller=caller(1)), webhook_secret)
    monkeypatch.setattr(runtime.jobs, "_reply_received", lambda message_id: None)  # lost
    waiting = stall_the_crm_lane(runtime, monkeypatch)
    post(client, "acme", "sms", {"message_id": "R1", "from": caller(1), "to": BUSINESS,
                                 "body": "Hello?"}, webhook_secret)
    assert len(sms_to(runtime, DANA)) == 1  # only the first alert: the reply's job was lost
    sync_message(runtime, waiting[0])  # at once: the texts lane's job may still be on its way
    assert len(sms_to(runtime, DANA)) == 1
    frozen_clock.shift(timedelta(minutes=2))  # the sweeper brings the sync again later
    with runtime.db.session() as s:
        s.get(Message, waiting[0]).crm_state = "pending"
    sync_message(runtime, waiting[0])
    assert len(sms_to(runtime, DANA)) == 2


def test_email_alerts_are_a_crm_lane_job_never_a_texts_lane_wait(
        app: Any, runtime: Any, webhook_secret: str, monkeypatch: Any) -> None:
    doc = account(webhook_secret, default_owner="104")
    doc["routing"]["owners"].append({"id": "104", "name": "Ola", "email": "ola@acme.test",
                                     "alerts": ["email"]})
    add_account(runtime, doc)
    mails: list[tuple[str, str, str]] = []
    monkeypatch.setattr(runtime.jobs, "_email", lambda *args: mails.append(args))
    post(app.test_client(), "acme", "voice", missed(caller=caller(1)), webhook_secret)
    assert [to for to, _, _ in mails] == ["ola@acme.test"]

def test_the_lanes_of_the_alert_jobs(runtime: Any) -> None:
    assert runtime.jobs._reply_received.huey is runtime.huey  # texts
    assert runtime.jobs._email.huey is runtime.crm_huey  # never the texts lane
