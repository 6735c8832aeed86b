"""Routing, alerts, relayed replies and escalation on the sandbox carrier and CRM."""

from __future__ import annotations

import socketserver
import threading
from collections import Counter
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connector.jobs.sweeper import sweep
from connector.kernel import clock
from connector.runtime import Runtime
from connector.storage.models import Account, Call, EscalationTimer, Message
from tests.connector.helpers import BUSINESS, add_account, missed, post, records, sandbox_account

DANA, SAM, LEE = "+14155550181", "+14155550182", "+14155550183"


def account(secret: str, account_id: str = "acme", **routing: Any) -> dict[str, Any]:
    doc = sandbox_account(account_id, secret)
    doc["routing"] = {
        "owners": [
            {"id": "101", "name": "Dana", "mobile": DANA},
            {"id": "102", "name": "Sam", "mobile": SAM},
            {"id": "103", "name": "Lee", "mobile": LEE, "away": True},
        ],
        **routing,
    }
    doc["policy"] = {"cooldown_hours": 0, "burst_window_minutes": 0}
    return doc


def caller(n: int) -> str:
    return f"+1415555{2000 + n:04d}"


def calls(runtime) -> list[Call]:  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        return list(s.scalars(select(Call).order_by(Call.created_at)))


def sms_to(runtime, number: str, account_id: str = "acme") -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [m for m in records(runtime, account_id, "sms") if m["to"] == number]


def test_round_robin_is_fair_skips_people_away_and_survives_a_restart(app, runtime,
                                                                       webhook_secret):
    add_account(runtime, account(webhook_secret, round_robin=["101", "102", "103"]))
    client = app.test_client()
    for n in range(10):
        post(client, "acme", "voice", missed(f"C{n}", caller=caller(n)), webhook_secret)
    restarted = Runtime(runtime.settings, immediate_queue=True)  # a new process, same database
    try:
        from connector.web import create_app

        client = create_app(restarted).test_client()
        for n in range(10, 20):
            post(client, "acme", "voice", missed(f"C{n}", caller=caller(n)), webhook_secret)
    finally:
        restarted.close()
    owners = [c.owner_id for c in calls(runtime)]
    assert Counter(owners) == {"101": 10, "102": 10}
    assert all(a != b for a, b in zip(owners, owners[1:], strict=False))  # strictly alternating
    tasks = records(runtime, "acme", "task")
    assert {t["owner_id"] for t in tasks} == {"101", "102"}


def test_number_and_after_hours_owners(app, runtime, webhook_secret):
    doc = account(webhook_secret, by_number={BUSINESS: "102"}, default_owner="101",
                  after_hours_owner="101")
    doc["hours"] = {"weekly": {"mon": [["09:00", "09:01"]]}}  # closed almost always
    add_account(runtime, doc)
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    assert calls(runtime)[0].owner_id == "101"  # after hours wins over the number's owner


def test_owner_is_alerted_then_answers_by_replying_to_the_alert(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret, default_owner="101"))
    client = app.test_client()
    post(client, "acme", "voice", missed(caller=caller(1)), webhook_secret)
    alert = sms_to(runtime, DANA)
    assert len(alert) == 1 and "we texted them" in alert[0]["body"]
    assert alert[0]["from"] == BUSINESS

    post(client, "acme", "sms", {"message_id": "R1", "from": caller(1), "to": BUSINESS,
                                 "body": "Water everywhere, please come"}, webhook_secret)
    alerts = sms_to(runtime, DANA)
    assert len(alerts) == 2 and "Water everywhere" in alerts[1]["body"]

    post(client, "acme", "sms", {"message_id": "O1", "from": DANA, "to": BUSINESS,
                                 "body": "On my way, 20 minutes"}, webhook_secret)
    relayed = sms_to(runtime, caller(1))
    assert relayed[-1]["body"] == "On my way, 20 minutes" and relayed[-1]["from"] == BUSINESS
    logged = [m for m in records(runtime, "acme", "message") if m["body"] == "On my way, 20 minutes"]
    assert len(logged) == 1 and logged[0]["direction"] == "outbound"
    call = calls(runtime)[0]
    assert call.customer_replied_at is not None and call.human_responded_at is not None
    assert call.human_responded_at >= call.customer_replied_at
    # Nothing about the alerts reached the CRM.
    assert not any("we texted them" in m["body"] for m in records(runtime, "acme", "message"))


def test_an_owners_reply_never_reaches_another_accounts_customer(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret, default_owner="101"))
    add_account(runtime, account(webhook_secret, "other", default_owner="101"))
    client = app.test_client()
    post(client, "acme", "voice", missed(caller=caller(1)), webhook_secret)
    # Dana answers on the other account's webhook: that account sent her no alert.
    post(client, "other", "sms", {"message_id": "O1", "from": DANA, "to": BUSINESS,
                                  "body": "Hello?"}, webhook_secret)
    assert [m for m in records(runtime, "other", "sms") if m["body"] == "Hello?"] == []
    assert [m for m in records(runtime, "acme", "sms") if m["body"] == "Hello?"] == []
    with runtime.db.session() as s:
        kept = s.scalar(select(Message).where(Message.purpose_key.like("inbound:%O1")))
        assert kept is not None and kept.intent == "owner"


def _reply(app, webhook_secret, n: int = 1) -> None:  # type: ignore[no-untyped-def]
    post(app.test_client(), "acme", "sms", {"message_id": f"R{n}", "from": caller(n),
                                            "to": BUSINESS, "body": "Hello?"}, webhook_secret)


def _time_passes(runtime, minutes: float) -> None:  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        for timer in s.scalars(select(EscalationTimer)):
            timer.due_at -= timedelta(minutes=minutes)


def test_unanswered_reply_escalates_once_across_a_restart(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret, default_owner="101", backup_owner="102",
                                 escalation={"minutes": 15}))
    post(app.test_client(), "acme", "voice", missed(caller=caller(1)), webhook_secret)
    _reply(app, webhook_secret)
    assert sweep(runtime) == 0 and sms_to(runtime, SAM) == []  # not due yet
    _time_passes(runtime, 16)
    restarted = Runtime(runtime.settings, immediate_queue=True)
    try:
        sweep(restarted)
        sweep(restarted)
        sweep(runtime)
    finally:
        restarted.close()
    escalations = sms_to(runtime, SAM)
    assert len(escalations) == 1 and "escalated" in escalations[0]["body"]
    task = records(runtime, "acme", "task")[0]
    assert task["priority"] == "HIGH" and task.get("escalated") is True
    assert task["body"].count("Escalated to Sam") == 1
    with runtime.db.session() as s:
        timer = s.scalar(select(EscalationTimer).where(EscalationTimer.level == 1))
        assert timer.fired_at is not None


def test_a_human_response_stops_escalation(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret, default_owner="101", backup_owner="102"))
    client = app.test_client()
    post(client, "acme", "voice", missed(caller=caller(1)), webhook_secret)
    _reply(app, webhook_secret)
    post(client, "acme", "sms", {"message_id": "O1", "from": DANA, "to": BUSINESS,
                                 "body": "Calling you now"}, webhook_secret)
    _time_passes(runtime, 60)
    sweep(runtime)
    assert sms_to(runtime, SAM) == []
    with runtime.db.session() as s:
        timer = s.scalar(select(EscalationTimer))
        assert timer.cancelled_at is not None and timer.fired_at is None


def test_a_call_back_counts_as_a_human_response(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret, default_owner="101", backup_owner="102"))
    client = app.test_client()
    post(client, "acme", "voice", missed(caller=caller(1)), webhook_secret)
    _reply(app, webhook_secret)
    post(client, "acme", "voice", {"call_id": "OUT1", "direction": "outbound", "to": caller(1),
                                   "outcome": "answered"}, webhook_secret)
    assert calls(runtime)[0].human_responded_at is not None
    _time_passes(runtime, 60)
    sweep(runtime)
    assert sms_to(runtime, SAM) == []


def test_second_level_goes_to_the_manager(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret, default_owner="101", backup_owner="102",
                                 manager="101",
                                 escalation={"minutes": 10, "second_level_minutes": 10}))
    post(app.test_client(), "acme", "voice", missed(caller=caller(1)), webhook_secret)
    _reply(app, webhook_secret)
    _time_passes(runtime, 11)
    sweep(runtime)
    _time_passes(runtime, 11)
    sweep(runtime)
    assert len(sms_to(runtime, SAM)) == 1
    assert sum("escalated" in m["body"] for m in sms_to(runtime, DANA)) == 1


def test_escalation_counted_in_business_hours_only():
    from datetime import UTC, datetime

    from connector.domain.hours import BusinessHours, add_open_time

    hours = BusinessHours.from_settings("America/New_York", {
        "weekly": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]}})
    monday_1655 = datetime(2026, 11, 30, 21, 55, tzinfo=UTC)
    due = add_open_time(hours, monday_1655, timedelta(minutes=15))
    assert due == datetime(2026, 12, 1, 14, 10, tzinfo=UTC)  # Tuesday 09:10 New York


class _SmtpSink(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept one message and keep it."""

    def handle(self) -> None:
        self.wfile.write(b"220 sink\r\n")
        data = False
        lines: list[str] = []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            if data:
                if line == ".":
                    data = False
                    self.server.messages.append("\n".join(lines))  # type: ignore[attr-defined]
                    self.wfile.write(b"250 ok\r\n")
                else:
                    lines.append(line)
                continue
            verb = line.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 sink\r\n")
            elif verb == "DATA":
                data = True
                self.wfile.write(b"354 go\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_sink():  # type: ignore[no-untyped-def]
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpSink)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_email_alerts_through_the_deployments_smtp_server(tmp_path, smtp_sink, webhook_secret):
    from connector.storage.db import upgrade
    from connector.web import create_app
    from tests.conftest import make_settings

    port = smtp_sink.server_address[1]
    settings = make_settings(tmp_path, smtp_url=f"smtp://127.0.0.1:{port}?from=alerts@acme.test")
    upgrade(settings.database_url)
    rt = Runtime(settings, immediate_queue=True)
    try:
        doc = account(webhook_secret, default_owner="104")
        doc["routing"]["owners"].append({"id": "104", "name": "Ola", "email": "ola@acme.test",
                                         "alerts": ["email"]})
        add_account(rt, doc)
        post(create_app(rt).test_client(), "acme", "voice", missed(caller=caller(1)),
             webhook_secret)
    finally:
        rt.close()
    import email

    assert len(smtp_sink.messages) == 1
    mail = email.message_from_string(smtp_sink.messages[0])
    assert mail["To"] == "ola@acme.test" and mail["From"] == "alerts@acme.test"
    assert "we texted them" in mail.get_payload(decode=True).decode()


def test_a_completed_crm_task_stops_escalation_by_polling(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret, default_owner="101", backup_owner="102"))
    post(app.test_client(), "acme", "voice", missed(caller=caller(1)), webhook_secret)
    _reply(app, webhook_secret)
    from connector.storage.models import SandboxRecord

    with runtime.db.session() as s:  # a rep ticks the task done in the CRM
        task = s.scalar(select(SandboxRecord).where(SandboxRecord.kind == "task"))
        task.data = {**task.data, "status": "COMPLETED"}
    _time_passes(runtime, 60)
    sweep(runtime)
    assert sms_to(runtime, SAM) == []
    assert calls(runtime)[0].human_responded_at is not None


def test_hubspot_task_completed_webhook_is_a_human_response(app, runtime, webhook_secret):
    import json
    import time

    from connector.storage.models import CrmLink
    from crm_adapters.hubspot.webhooks import signature_v3

    doc = account(webhook_secret, default_owner="101")
    doc["crm"] = {"kind": "hubspot", "credentials": {"access_token": "pat-na1-test-token-1",
                                                     "client_secret": "hubspot-app-secret-1"}}
    add_account(runtime, doc)
    with runtime.db.session() as s:
        s.add(Call(id="c" * 32, account_id="acme", carrier="sandbox", event_id="E1",
                   caller=caller(1), called=BUSINESS, outcome="no-answer",
                   occurred_at=clock.now(), state="texted", crm_state="done"))
        s.flush()
        s.add(CrmLink(account_id="acme", crm="hubspot", object_type="task", local_key="c" * 32,
                      crm_id="9001"))
    body = json.dumps([{"eventId": 7, "subscriptionType": "object.propertyChange",
                        "objectId": 9001, "propertyName": "hs_task_status",
                        "propertyValue": "COMPLETED"}]).encode()
    url = "https://hooks.example.test/webhooks/crm/hubspot/acme"
    stamp = str(int(time.time() * 1000))

    def send(secret: str):  # type: ignore[no-untyped-def]
        return app.test_client().post("/webhooks/crm/hubspot/acme", data=body, headers={
            "X-HubSpot-Signature-v3": signature_v3(secret, "POST", url, body, stamp),
            "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"})

    assert send("wrong").status_code == 403
    assert calls(runtime)[0].human_responded_at is None
    assert send("hubspot-app-secret-1").status_code == 200
    assert calls(runtime)[0].human_responded_at is not None


def test_a_lead_moved_past_its_first_stage_is_a_saved_conversation(app, runtime,
                                                                     webhook_secret):
    import json
    import time

    from connector.reporting.report import build
    from connector.storage.models import CrmLink
    from crm_adapters.hubspot.webhooks import signature_v3

    doc = account(webhook_secret, default_owner="101")
    doc["crm"] = {"kind": "hubspot", "credentials": {"access_token": "pat-na1-test-token-1",
                                                     "client_secret": "hubspot-app-secret-1"},
                  "mapping": {"pipeline": "default", "stage": "appointmentscheduled"}}
    add_account(runtime, doc)
    with runtime.db.session() as s:
        s.add(Call(id="d" * 32, account_id="acme", carrier="sandbox", event_id="E1",
                   caller=caller(1), called=BUSINESS, outcome="no-answer",
                   occurred_at=clock.now(), state="texted", crm_state="done"))
        s.flush()
        s.add(CrmLink(account_id="acme", crm="hubspot", object_type="lead",
                      local_key=caller(1), crm_id="5005"))
    url = "https://hooks.example.test/webhooks/crm/hubspot/acme"

    def deal_moved(event_id: int, stage: str) -> int:
        body = json.dumps([{"eventId": event_id, "subscriptionType": "object.propertyChange",
                            "objectId": 5005, "propertyName": "dealstage",
                            "propertyValue": stage}]).encode()
        stamp = str(int(time.time() * 1000))
        return app.test_client().post("/webhooks/crm/hubspot/acme", data=body, headers={
            "X-HubSpot-Signature-v3": signature_v3("hubspot-app-secret-1", "POST", url, body,
                                                   stamp),
            "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json",
        }).status_code

    def saved() -> int:
        with runtime.db.session() as s:
            zone = ZoneInfo(s.get(Account, "acme").timezone)
            return build(s, "acme", clock.today_in(zone)).total.saved

    assert deal_moved(1, "appointmentscheduled") == 200  # still the first stage
    assert saved() == 0
    assert deal_moved(2, "qualifiedtobuy") == 200
    assert saved() == 1
