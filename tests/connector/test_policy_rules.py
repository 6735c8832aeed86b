"""Every policy rule and reason code, driven through the webhook on the sandbox carrier and CRM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from connector.kernel import clock
from connector.reporting.explain import explain
from connector.storage.models import Call, CallerState, ConsentEvent, Message, OptOut
from tests.connector.helpers import (
    BUSINESS,
    CALLER,
    add_account,
    missed,
    post,
    records,
    sandbox_account,
)

OPEN_ALL_WEEK = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat",
                                                       "sun")}


def account(secret: str, **policy: Any) -> dict[str, Any]:
    doc = sandbox_account("acme", secret)
    doc["policy"] = policy
    doc["carrier"]["credentials"]["landlines"] = ["+14155550177"]
    return doc


def call_row(runtime, event_id: str = "CALL1") -> Call:  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        return s.scalar(select(Call).where(Call.event_id == event_id))


# (name, policy overrides, list of voice events, expected reason of the last call, texts sent)
SCENARIOS: list[tuple[str, dict[str, Any], list[dict[str, Any]], str, int]] = [
    ("texted", {}, [missed()], "missed", 1),
    ("withheld caller", {}, [missed(caller="anonymous")], "caller_withheld", 0),
    ("team number", {"internal_numbers": [CALLER]}, [missed()], "internal_number", 0),
    ("blocklist", {"blocklist": ["(415) 555-0123"]}, [missed()], "blocklisted", 0),
    ("country", {"text_countries": ["CA"]}, [missed()], "country_not_texted", 0),
    ("unknown outcome", {}, [missed(outcome="exploded")], "unknown_outcome", 0),
    ("busy not texted", {"texted_outcomes": ["no-answer"]}, [missed(outcome="busy")],
     "outcome_not_texted", 0),
    ("misdial", {}, [missed(outcome="canceled", ring_seconds=1.5)], "misdial", 0),
    ("hang-up after ringing", {}, [missed(outcome="canceled", ring_seconds=9)], "missed", 1),
    ("failed attestation", {}, [missed(attestation="TN-Validation-Failed-B")], "likely_spam", 0),
    ("unattested", {}, [missed(attestation="No-TN-Validation")], "likely_spam", 0),
    ("unattested allowed", {"spam": {"unattested": False}},
     [missed(attestation="No-TN-Validation")], "missed", 1),
    ("robocall bursts", {"min_ring_seconds": 3},
     [missed("C1", outcome="canceled", ring_seconds=1, minutes_ago=3),
      missed("C2", outcome="canceled", ring_seconds=1, minutes_ago=2),
      missed("C3", outcome="no-answer")], "likely_spam", 0),
    ("burst", {}, [missed("C1", minutes_ago=5), missed("C2")], "burst", 1),
    ("cooldown", {}, [missed("C1", minutes_ago=60), missed("C2")], "cooldown", 1),
    ("cooldown off", {"cooldown_hours": 0, "burst_window_minutes": 0},
     [missed("C1", minutes_ago=60), missed("C2")], "missed", 2),
    ("landline", {}, [missed(caller="+14155550177")], "landline", 0),
]


@pytest.mark.parametrize(("name", "policy", "events", "reason", "texts"), SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_rule(app, runtime, webhook_secret, name, policy, events, reason, texts):
    add_account(runtime, account(webhook_secret, **policy))
    client = app.test_client()
    for event in events:
        assert post(client, "acme", "voice", event, webhook_secret).status_code == 200
    last = call_row(runtime, events[-1]["call_id"])
    assert last.reason == reason
    assert len(records(runtime, "acme", "sms")) == texts
    assert last.decision_trace, "every decision keeps its rule-by-rule trace"
    stopped = [rule for rule, passed, _ in last.decision_trace if not passed]
    assert (stopped == []) == (reason == "missed")


def test_burst_gives_one_text_and_one_task_that_counts_the_calls(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret))
    client = app.test_client()
    for n, ago in enumerate((6, 4, 2)):
        post(client, "acme", "voice", missed(f"C{n}", minutes_ago=ago), webhook_secret)
    assert len(records(runtime, "acme", "sms")) == 1
    tasks = records(runtime, "acme", "task")
    assert len(tasks) == 1
    assert "3 calls in a row" in tasks[0]["body"] and "2 calls in a row" in tasks[0]["body"]
    assert len(records(runtime, "acme", "call")) == 3  # every call is still logged


def test_spam_is_logged_as_such_without_task_or_lead(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret))
    post(app.test_client(), "acme", "voice", missed(attestation="TN-Validation-Failed-C"),
         webhook_secret)
    calls = records(runtime, "acme", "call")
    assert len(calls) == 1 and calls[0]["title"].startswith("Likely spam")
    assert records(runtime, "acme", "task") == [] and records(runtime, "acme", "lead") == []


def test_landline_gets_a_callback_task_instead_of_a_text(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret))
    post(app.test_client(), "acme", "voice", missed(caller="+14155550177"), webhook_secret)
    task = records(runtime, "acme", "task")[0]
    assert "landline" in task["subject"] and "call them back" in task["body"]
    assert call_row(runtime).line_type == "landline"


def test_line_type_is_looked_up_once_and_cached(app, runtime, webhook_secret, monkeypatch):
    from carrier_adapters.sandbox import SandboxCarrier

    lookups: list[str] = []
    real = SandboxCarrier.lookup_line_type

    def counting(self, number):  # type: ignore[no-untyped-def]
        lookups.append(number)
        return real(self, number)

    monkeypatch.setattr(SandboxCarrier, "lookup_line_type", counting)
    add_account(runtime, account(webhook_secret, cooldown_hours=0, burst_window_minutes=0))
    client = app.test_client()
    post(client, "acme", "voice", missed("C1"), webhook_secret)
    post(client, "acme", "voice", missed("C2"), webhook_secret)
    assert lookups == [CALLER]


def test_already_in_a_human_conversation(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret))
    with runtime.db.session() as s:
        s.add(Message(account_id="acme", direction="outbound", purpose_key="human:1",
                      customer=CALLER, business_number=BUSINESS, body="On my way",
                      status="sent"))
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    assert call_row(runtime).reason == "in_conversation"
    assert records(runtime, "acme", "sms") == []


def test_after_hours_uses_the_after_hours_text_with_next_opening(app, runtime, webhook_secret):
    doc = account(webhook_secret)
    doc["hours"] = {"weekly": {"mon": [["09:00", "09:01"]]}}  # closed at almost any time
    add_account(runtime, doc)
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    call = call_row(runtime)
    assert (call.reason, call.scenario) == ("missed", "after_hours")
    body = records(runtime, "acme", "sms")[0]["body"]
    assert "closed right now" in body and "at 9:00 AM" in body


def test_after_hours_calls_can_be_left_untexted(app, runtime, webhook_secret):
    doc = account(webhook_secret, texted_outcomes=["no-answer", "busy"])
    doc["hours"] = {"weekly": {"mon": [["09:00", "09:01"]]}}
    add_account(runtime, doc)
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    assert call_row(runtime).reason == "outcome_not_texted"


def test_voicemail_can_pick_its_own_template(app, runtime, webhook_secret):
    doc = account(webhook_secret)
    doc["hours"] = {"weekly": OPEN_ALL_WEEK}
    doc["templates"] = {"voicemail": "vm", "texts": {
        "vm": {"en": "{business_name} got your voicemail and will call you back."}}}
    add_account(runtime, doc)
    post(app.test_client(), "acme", "voice", missed(voicemail=True), webhook_secret)
    assert call_row(runtime).voicemail is True
    assert records(runtime, "acme", "sms")[0]["body"] == (
        "Acme Plumbing got your voicemail and will call you back.")


def _schedule(runtime, webhook_secret, app, **policy):  # type: ignore[no-untyped-def]
    add_account(runtime, account(webhook_secret, **policy))
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    call = call_row(runtime)
    assert call.state == "scheduled" and records(runtime, "acme", "sms") == []
    return call


def _due(runtime):  # type: ignore[no-untyped-def]
    from connector.jobs.sweeper import sweep

    with runtime.db.session() as s:
        past = clock.now() - timedelta(minutes=5)
        s.execute(update(Call).values(send_at=past, next_attempt_at=past, updated_at=past))
    sweep(runtime)


def test_send_delay_sends_later(app, runtime, webhook_secret):
    _schedule(runtime, webhook_secret, app, send_delay_seconds=120)
    assert len(records(runtime, "acme", "task")) == 1  # the task does not wait for the text
    _due(runtime)
    assert len(records(runtime, "acme", "sms")) == 1
    assert call_row(runtime).state == "texted"
    assert "Texted at" in records(runtime, "acme", "task")[0]["body"]


@pytest.mark.parametrize(("event", "reason"), [
    ({"call_id": "CB1", "direction": "outbound", "to": CALLER, "outcome": "answered"},
     "called_back"),
    ({"call_id": "IN2", "from": CALLER, "to": BUSINESS, "outcome": "answered"}, "answered_later"),
])
def test_pending_text_is_cancelled_when_someone_got_through(app, runtime, webhook_secret, event,
                                                           reason):
    _schedule(runtime, webhook_secret, app, send_delay_seconds=120)
    assert post(app.test_client(), "acme", "voice", event, webhook_secret).status_code == 200
    _due(runtime)
    call = call_row(runtime)
    assert (call.state, call.reason) == ("cancelled", reason)
    assert records(runtime, "acme", "sms") == []
    assert "cancelled" in records(runtime, "acme", "task")[0]["body"]


@pytest.mark.parametrize(("event", "reason"), [
    ({"call_id": "CB1", "direction": "outbound", "to": CALLER, "outcome": "answered"},
     "called_back"),
    ({"call_id": "IN2", "from": CALLER, "to": BUSINESS, "outcome": "answered"}, "answered_later"),
])
def test_a_text_due_at_once_is_cancelled_when_someone_got_through_before_its_job_ran(
        app, runtime, webhook_secret, monkeypatch, event, reason):  # type: ignore[no-untyped-def]
    from connector.jobs.text_back import send_text_back

    add_account(runtime, account(webhook_secret))
    waiting: list[str] = []
    monkeypatch.setattr(runtime.jobs, "enqueue_text_back",
                        lambda call_id, **_: waiting.append(call_id))
    client = app.test_client()
    post(client, "acme", "voice", missed(), webhook_secret)
    # The business reaches the caller while the text-back job is still in the queue.
    assert post(client, "acme", "voice", event, webhook_secret).status_code == 200
    monkeypatch.undo()
    send_text_back(runtime, waiting[0])
    call = call_row(runtime)
    assert (call.state, call.reason) == ("cancelled", reason)
    assert records(runtime, "acme", "sms") == []
    with runtime.db.session() as s:
        text = s.scalar(select(Message).where(Message.call_id == call.id))
        assert text is not None and (text.status, text.send_attempts) == ("cancelled", 0)
    assert "cancelled" in records(runtime, "acme", "task")[0]["body"]


def test_stop_during_the_delay_wins(app, runtime, webhook_secret):
    _schedule(runtime, webhook_secret, app, send_delay_seconds=120)
    post(app.test_client(), "acme", "sms", {"message_id": "M1", "from": CALLER, "to": BUSINESS,
                                            "body": "STOP"}, webhook_secret)
    _due(runtime)
    call = call_row(runtime)
    assert (call.state, call.reason) == ("cancelled", "opted_out")
    sms = records(runtime, "acme", "sms")
    assert len(sms) == 1 and "START" in sms[0]["body"]  # only the opt-out confirmation


LA = "America/Los_Angeles"

# (clock in UTC, texting window in the caller's zone, when the held text goes out in that zone)
HOLDS = [
    # 10:00 in Los Angeles, before a 12:00-13:00 window: held to noon the same day.
    (datetime(2026, 6, 15, 17, 0, tzinfo=UTC), ("12:00", "13:00"), datetime(2026, 6, 15, 12, 0)),
    # 23:30 in Los Angeles, after an 08:00-21:00 window: held past midnight to the next morning.
    (datetime(2026, 6, 16, 6, 30, tzinfo=UTC), ("08:00", "21:00"), datetime(2026, 6, 16, 8, 0)),
    # 00:30 in Los Angeles, a window that itself wraps midnight (22:00-00:15): held to 22:00.
    (datetime(2026, 6, 16, 7, 30, tzinfo=UTC), ("22:00", "00:15"), datetime(2026, 6, 16, 22, 0)),
]


@pytest.mark.parametrize(("at", "window", "held_to"), HOLDS, ids=["same day", "next morning",
                                                                   "window wraps midnight"])
def test_quiet_hours_hold_to_the_window(app, runtime, webhook_secret, frozen_clock, at, window,
                                        held_to):
    frozen_clock.move_to(at)
    call = _schedule(runtime, webhook_secret, app,
                     quiet_hours={"start": window[0], "end": window[1], "mode": "hold"})
    held = call.send_at.astimezone(ZoneInfo(LA))
    assert held.replace(tzinfo=None, second=0, microsecond=0) == held_to
    assert "held to" in " ".join(f for _, _, f in call.decision_trace)


def test_quiet_hours_send_anyway_because_the_customer_called_first(app, runtime, webhook_secret,
                                                                   frozen_clock):
    frozen_clock.move_to(HOLDS[0][0])  # 10:00 in Los Angeles, outside a 12:00-13:00 window
    add_account(runtime, account(webhook_secret,
                                 quiet_hours={"start": "12:00", "end": "13:00", "mode": "send"}))
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    assert len(records(runtime, "acme", "sms")) == 1


def test_explain_walks_the_rules_with_their_facts(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret))
    client = app.test_client()
    post(client, "acme", "voice", missed("C1", minutes_ago=60), webhook_secret)
    post(client, "acme", "voice", missed("C2"), webhook_secret)
    text = explain(runtime, "C2")
    assert "[pass] caller ID present" in text and "[STOP] cooldown passed" in text
    assert "last texted" in text
    first = explain(runtime, "C1")
    assert "GSM-7" in first and "segment" in first and "template: general (en)" in first


@pytest.mark.parametrize(("body", "action", "reply"), [
    ("STOP", "opt_out", "won't get more texts"),
    ("Stop texting me!", "opt_out", "won't get more texts"),
    ("HELP", "help", "this number texts you back"),
])
def test_keywords_are_logged_and_answered(app, runtime, webhook_secret, body, action, reply):
    add_account(runtime, account(webhook_secret))
    client = app.test_client()
    post(client, "acme", "voice", missed(), webhook_secret)
    post(client, "acme", "sms", {"message_id": "K1", "from": CALLER, "to": BUSINESS,
                                 "body": body}, webhook_secret)
    with runtime.db.session() as s:
        log = s.scalars(select(ConsentEvent)).all()
        assert [(e.action, e.number, e.business_number) for e in log] == [
            (action, CALLER, BUSINESS)]
    assert reply in records(runtime, "acme", "sms")[-1]["body"]
    contact = records(runtime, "acme", "contact")[0]
    assert contact.get("sms_opted_out", False) is (action == "opt_out")


def test_start_resubscribes_with_a_confirmation_and_yes_alone_is_a_reply(app, runtime,
                                                                           webhook_secret):
    add_account(runtime, account(webhook_secret))
    client = app.test_client()
    post(client, "acme", "sms", {"message_id": "Y0", "from": CALLER, "to": BUSINESS,
                                 "body": "Yes"}, webhook_secret)
    assert records(runtime, "acme", "sms") == []  # "yes" from a subscribed number: a reply
    for n, body in enumerate(("STOP", "START")):
        post(client, "acme", "sms", {"message_id": f"K{n}", "from": CALLER, "to": BUSINESS,
                                     "body": body}, webhook_secret)
    with runtime.db.session() as s:
        assert s.get(OptOut, ("acme", CALLER)) is None
        actions = [e.action for e in s.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
    assert actions == ["opt_out", "opt_in"]
    assert "can get texts from us again" in records(runtime, "acme", "sms")[-1]["body"]
    assert records(runtime, "acme", "contact")[0]["sms_opted_out"] is False


def test_no_confirmation_when_the_carrier_sends_its_own(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret, carrier_confirms_opt_out=True))
    post(app.test_client(), "acme", "sms", {"message_id": "K1", "from": CALLER, "to": BUSINESS,
                                            "body": "STOP"}, webhook_secret)
    assert records(runtime, "acme", "sms") == []
    with runtime.db.session() as s:
        assert s.get(OptOut, ("acme", CALLER)) is not None


def test_keyword_inside_a_longer_message_is_just_a_reply(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret))
    post(app.test_client(), "acme", "sms", {"message_id": "K1", "from": CALLER, "to": BUSINESS,
                                            "body": "Don't stop by today, tomorrow works"},
         webhook_secret)
    with runtime.db.session() as s:
        assert s.get(OptOut, ("acme", CALLER)) is None
        assert s.scalars(select(ConsentEvent)).all() == []


def test_spanish_contact_gets_the_spanish_text_with_their_name(app, runtime, webhook_secret):
    from connector.storage.models import ContactProfile

    add_account(runtime, account(webhook_secret))
    with runtime.db.session() as s:
        s.add(ContactProfile(account_id="acme", number=CALLER, first_name="Lucía",
                             language="es-MX"))
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    body = records(runtime, "acme", "sms")[0]["body"]
    assert body.startswith("Hola Lucía,") and "Acme Plumbing" in body
    assert call_row(runtime).language == "es"


def test_composing_a_text_reads_the_contacts_profile_once(runtime, webhook_secret):
    from sqlalchemy import event

    from connector.jobs.compose import compose
    from connector.storage.models import Account

    add_account(runtime, account(webhook_secret))
    reads: list[str] = []

    def listener(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if "contact_profiles" in statement:
            reads.append(statement)

    with runtime.db.session() as s:
        acme = s.get(Account, "acme")
        event.listen(runtime.db.engine, "before_cursor_execute", listener)
        try:
            body, language = compose(s, acme, CALLER, BUSINESS, "general", clock.now())
        finally:
            event.remove(runtime.db.engine, "before_cursor_execute", listener)
    assert len(reads) == 1  # for both its language and its first name
    assert language == "en" and "Acme Plumbing" in body


def test_number_default_language(app, runtime, webhook_secret):
    doc = account(webhook_secret)
    doc["templates"] = {"language_by_number": {BUSINESS: "es"}}
    add_account(runtime, doc)
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    assert records(runtime, "acme", "sms")[0]["body"].startswith("Hola,")


def test_cooldown_state_is_per_account(app, runtime, webhook_secret):
    add_account(runtime, account(webhook_secret))
    other = sandbox_account("other", webhook_secret)
    add_account(runtime, other)
    client = app.test_client()
    post(client, "acme", "voice", missed("A1"), webhook_secret)
    post(client, "other", "voice", missed("B1"), webhook_secret)
    assert len(records(runtime, "acme", "sms")) == 1 and len(records(runtime, "other", "sms")) == 1
    with runtime.db.session() as s:
        assert len(s.scalars(select(CallerState)).all()) == 2
