"""The workflow end to end on the sandbox carrier and CRM: webhook in, text out, CRM records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from connector.jobs.sweeper import sweep
from connector.kernel import clock
from connector.reporting.explain import explain
from connector.storage.models import Call, CallEvent, Message, OptOut
from tests.connector.helpers import (
    BUSINESS,
    CALLER,
    add_account,
    count,
    missed,
    only_call,
    post,
    records,
    sandbox_account,
)


@pytest.fixture
def acme(runtime, webhook_secret):  # type: ignore[no-untyped-def]
    add_account(runtime, sandbox_account("acme", webhook_secret))
    return "acme"


def test_missed_call_is_texted_and_written_to_the_crm(app, runtime, acme, webhook_secret):
    response = post(app.test_client(), acme, "voice", missed(), webhook_secret)
    assert response.status_code == 200

    sms = records(runtime, acme, "sms")
    assert len(sms) == 1
    assert sms[0]["to"] == CALLER and sms[0]["from"] == BUSINESS
    assert "Acme Plumbing" in sms[0]["body"]
    assert sms[0]["status_callback_url"] == "https://hooks.example.test/webhooks/sandbox/acme/status"

    contacts = records(runtime, acme, "contact")
    assert [c["phone"] for c in contacts] == [CALLER]
    calls = records(runtime, acme, "call")
    assert len(calls) == 1 and calls[0]["outcome"] == "no-answer"
    texts = records(runtime, acme, "message")
    assert len(texts) == 1 and texts[0]["direction"] == "outbound"
    leads = records(runtime, acme, "lead")
    assert len(leads) == 1 and leads[0]["stage"] == "new" and leads[0]["pipeline"] == "default"
    tasks = records(runtime, acme, "task")
    assert len(tasks) == 1
    task = tasks[0]
    assert task["owner_id"] == "owner-7" and task["deal_id"] == leads[0]["id"]
    assert CALLER in task["body"] and "no answer" in task["body"] and "Texted" in task["body"]

    call = only_call(runtime, acme)
    assert (call.state, call.decision, call.reason, call.crm_state) == (
        "texted", "text", "missed", "done"
    )


def test_same_webhook_three_times_gives_one_text_one_contact_one_task(
    app, runtime, acme, webhook_secret
):
    client = app.test_client()
    for _ in range(3):
        assert post(client, acme, "voice", missed(), webhook_secret).status_code == 200
    assert len(records(runtime, acme, "sms")) == 1
    assert len(records(runtime, acme, "contact")) == 1
    assert len(records(runtime, acme, "task")) == 1
    assert len(records(runtime, acme, "call")) == 1
    assert count(runtime, Call, account_id=acme) == 1


def test_answered_call_produces_nothing(app, runtime, acme, webhook_secret):
    response = post(app.test_client(), acme, "voice", missed(outcome="answered"), webhook_secret)
    assert response.status_code == 200
    assert count(runtime, Call, account_id=acme) == 0
    assert records(runtime, acme, "sms") == []


@pytest.mark.parametrize("signature", [None, "00" * 32])
def test_bad_signature_is_403_and_changes_nothing(app, runtime, acme, webhook_secret, signature):
    response = post(
        app.test_client(), acme, "voice", missed(), webhook_secret,
        sign=signature is not None, signature=signature,
    )
    assert response.status_code == 403
    assert count(runtime, Call, account_id=acme) == 0
    assert records(runtime, acme, "sms") == []


def test_malformed_payload_is_400_and_changes_nothing(app, runtime, acme, webhook_secret):
    response = post(app.test_client(), acme, "voice", {"from": CALLER}, webhook_secret)
    assert response.status_code == 400
    assert count(runtime, Call, account_id=acme) == 0


def test_another_accounts_secret_is_refused(app, runtime, acme, webhook_secret):
    add_account(runtime, sandbox_account("other", "another-secret"))
    response = post(app.test_client(), acme, "voice", missed(), "another-secret")
    assert response.status_code == 403
    assert count(runtime, Call) == 0


def test_unknown_account_is_404(app, webhook_secret):
    assert post(app.test_client(), "nobody", "voice", missed(), webhook_secret).status_code == 404


def test_repeat_caller_inside_cooldown_is_not_texted_twice(app, runtime, acme, webhook_secret):
    client = app.test_client()
    post(client, acme, "voice", missed("CALL1", minutes_ago=40), webhook_secret)
    post(client, acme, "voice", missed("CALL2"), webhook_secret)
    assert len(records(runtime, acme, "sms")) == 1
    with runtime.db.session() as s:
        second = s.scalar(select(Call).where(Call.event_id == "CALL2"))
        assert (second.decision, second.reason) == ("suppress", "cooldown")
    # Both calls reach the CRM: one contact, one open lead reused, two tasks.
    assert len(records(runtime, acme, "contact")) == 1
    assert len(records(runtime, acme, "lead")) == 1
    assert len(records(runtime, acme, "task")) == 2
    assert "already texted this number recently" in records(runtime, acme, "task")[1]["body"]


def test_repeat_caller_after_cooldown_is_texted_again(app, runtime, acme, webhook_secret):
    client = app.test_client()
    post(client, acme, "voice", missed("CALL1", minutes_ago=40), webhook_secret)
    with runtime.db.session() as s:
        from connector.storage.models import CallerState

        s.execute(update(CallerState).values(last_text_at=clock.now() - timedelta(hours=25)))
    post(client, acme, "voice", missed("CALL2"), webhook_secret)
    assert len(records(runtime, acme, "sms")) == 2


def test_withheld_caller_is_logged_not_texted(app, runtime, acme, webhook_secret):
    post(app.test_client(), acme, "voice", missed(caller="anonymous"), webhook_secret)
    call = only_call(runtime, acme)
    assert (call.decision, call.reason) == ("suppress", "caller_withheld")
    assert records(runtime, acme, "sms") == []


def test_stop_reply_opts_out_and_later_calls_are_not_texted(app, runtime, acme, webhook_secret):
    client = app.test_client()
    post(client, acme, "voice", missed("CALL1"), webhook_secret)
    reply = {"message_id": "IN1", "from": CALLER, "to": BUSINESS, "body": "  Stop. "}
    assert post(client, acme, "sms", reply, webhook_secret).status_code == 200
    assert count(runtime, OptOut, account_id=acme, number=CALLER) == 1
    with runtime.db.session() as s:
        from connector.storage.models import CallerState

        s.execute(update(CallerState).values(last_text_at=None))
    post(client, acme, "voice", missed("CALL2"), webhook_secret)
    with runtime.db.session() as s:
        second = s.scalar(select(Call).where(Call.event_id == "CALL2"))
        assert second.reason == "opted_out"
    sms = records(runtime, acme, "sms")  # the text-back, then the one opt-out confirmation
    assert len(sms) == 2 and "START" in sms[1]["body"] and "Acme Plumbing" in sms[1]["body"]


def test_reply_is_logged_on_the_contact_and_shown_on_the_task(app, runtime, acme, webhook_secret):
    client = app.test_client()
    post(client, acme, "voice", missed(), webhook_secret)
    reply = {"message_id": "IN1", "from": "(415) 555-0123", "to": BUSINESS,
             "body": "Leaking pipe at 12 Elm St"}
    for _ in range(2):  # re-delivered: still one log entry and one task line
        assert post(client, acme, "sms", reply, webhook_secret).status_code == 200
    inbound = [m for m in records(runtime, acme, "message") if m["direction"] == "inbound"]
    contact = records(runtime, acme, "contact")[0]
    assert len(inbound) == 1 and inbound[0]["contact_id"] == contact["id"]
    task = records(runtime, acme, "task")[0]
    assert task["body"].count("Leaking pipe at 12 Elm St") == 1


def test_delivery_failure_shows_on_the_task(app, runtime, acme, webhook_secret):
    client = app.test_client()
    post(client, acme, "voice", missed(), webhook_secret)
    sent_id = records(runtime, acme, "sms")[0]["id"]
    status = {"message_id": sent_id, "status": "undelivered", "error_code": "30006"}
    for _ in range(2):
        assert post(client, acme, "status", status, webhook_secret).status_code == 200
    with runtime.db.session() as s:
        message = s.scalar(select(Message).where(Message.carrier_message_id == sent_id))
        assert (message.status, message.error_code) == ("undelivered", "30006")
    body = records(runtime, acme, "task")[0]["body"]
    assert body.count("was not delivered") == 1 and "30006" in body


def test_late_sent_status_does_not_undo_delivered(app, runtime, acme, webhook_secret):
    client = app.test_client()
    post(client, acme, "voice", missed(), webhook_secret)
    sent_id = records(runtime, acme, "sms")[0]["id"]
    post(client, acme, "status", {"message_id": sent_id, "status": "delivered"}, webhook_secret)
    post(client, acme, "status", {"message_id": sent_id, "status": "sent"}, webhook_secret)
    with runtime.db.session() as s:
        assert s.scalar(select(Message.status).where(Message.carrier_message_id == sent_id)) == (
            "delivered"
        )


def test_crm_outage_is_retried_by_the_sweeper_with_the_same_end_state(
    app, runtime, acme, webhook_secret, monkeypatch
):
    from crm_adapters.sandbox import SandboxCrm

    real = SandboxCrm.create_task
    calls = {"n": 0}

    def flaky(self, task):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        from connector.kernel.errors import TransientProviderError

        raise TransientProviderError("CRM down", provider="sandbox")

    monkeypatch.setattr(SandboxCrm, "create_task", flaky)
    monkeypatch.setattr("connector.jobs.steps._wait", lambda state: 0)
    post(app.test_client(), acme, "voice", missed(), webhook_secret)
    call = only_call(runtime, acme)
    assert call.crm_state == "retry" and calls["n"] == 3  # the one retry layer: 3 attempts
    assert len(records(runtime, acme, "contact")) == 1 and records(runtime, acme, "task") == []

    monkeypatch.setattr(SandboxCrm, "create_task", real)
    with runtime.db.session() as s:  # time passes
        s.execute(update(Call).values(
            next_attempt_at=clock.now() - timedelta(seconds=1),
            updated_at=clock.now() - timedelta(minutes=5),
        ))
    assert sweep(runtime) == 1
    assert only_call(runtime, acme).crm_state == "done"
    # Nothing was made twice: the contact, lead, call log and text log were kept from run one.
    for kind in ("contact", "lead", "call", "message", "task", "sms"):
        assert len(records(runtime, acme, kind)) == 1, kind


def test_job_killed_after_send_before_recording_is_reconciled_not_resent(
    app, runtime, acme, webhook_secret, monkeypatch
):
    from carrier_adapters.sandbox import SandboxCarrier

    real_send = SandboxCarrier.send_sms

    def send_then_die(self, **kwargs):  # type: ignore[no-untyped-def]
        real_send(self, **kwargs)
        raise KeyboardInterrupt("worker killed")

    monkeypatch.setattr(SandboxCarrier, "send_sms", send_then_die)
    # Huey treats KeyboardInterrupt as the worker being stopped mid-task: "did not finish".
    post(app.test_client(), acme, "voice", missed(), webhook_secret)
    monkeypatch.setattr(SandboxCarrier, "send_sms", real_send)
    assert len(records(runtime, acme, "sms")) == 1
    with runtime.db.session() as s:  # the lease lapses and time passes
        s.execute(update(Call).values(lease_until=None, updated_at=clock.now() - timedelta(minutes=5)))
        s.execute(update(Message).values(last_attempt_at=clock.now() - timedelta(minutes=1)))
    sweep(runtime)
    assert len(records(runtime, acme, "sms")) == 1  # not sent twice
    call = only_call(runtime, acme)
    assert (call.state, call.crm_state) == ("texted", "done")
    with runtime.db.session() as s:
        steps = s.scalars(select(CallEvent.detail).where(CallEvent.call_id == call.id)).all()
    assert any("reconciled" in d for d in steps)
    assert len(records(runtime, acme, "task")) == 1


def test_job_killed_before_send_sends_once_after_restart(
    app, runtime, acme, webhook_secret, monkeypatch
):
    from carrier_adapters.sandbox import SandboxCarrier

    real_send = SandboxCarrier.send_sms

    def die(self, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt("worker killed")

    monkeypatch.setattr(SandboxCarrier, "send_sms", die)
    # Huey treats KeyboardInterrupt as the worker being stopped mid-task: "did not finish".
    post(app.test_client(), acme, "voice", missed(), webhook_secret)
    monkeypatch.setattr(SandboxCarrier, "send_sms", real_send)
    with runtime.db.session() as s:
        s.execute(update(Call).values(lease_until=None, updated_at=clock.now() - timedelta(minutes=5)))
        s.execute(update(Message).values(last_attempt_at=clock.now() - timedelta(minutes=1)))
    sweep(runtime)
    assert len(records(runtime, acme, "sms")) == 1
    assert only_call(runtime, acme).state == "texted"


def test_ambiguous_send_is_not_resent_while_the_carrier_may_still_list_it(
    app, runtime, acme, webhook_secret, monkeypatch
):
    from carrier_adapters.sandbox import SandboxCarrier
    from connector.kernel.errors import TransientProviderError

    real_send = SandboxCarrier.send_sms

    def timeout_after_send(self, **kwargs):  # type: ignore[no-untyped-def]
        real_send(self, **kwargs)
        raise TransientProviderError("read timeout", provider="sandbox", ambiguous=True)

    monkeypatch.setattr(SandboxCarrier, "send_sms", timeout_after_send)
    post(app.test_client(), acme, "voice", missed(), webhook_secret)
    monkeypatch.setattr(SandboxCarrier, "send_sms", real_send)
    with runtime.db.session() as s:
        message = s.scalar(select(Message).where(Message.direction == "outbound"))
        assert message.status == "ambiguous" and message.send_attempts == 1
        s.execute(update(Message).values(last_attempt_at=clock.now() - timedelta(minutes=1)))
        s.execute(update(Call).values(updated_at=clock.now() - timedelta(minutes=5)))
    sweep(runtime)
    assert len(records(runtime, acme, "sms")) == 1
    assert only_call(runtime, acme).state == "texted"


def test_opted_out_error_from_the_carrier_records_the_opt_out(
    app, runtime, acme, webhook_secret, monkeypatch
):
    from carrier_adapters.sandbox import SandboxCarrier
    from connector.kernel.errors import RecipientRejectedError

    def rejected(self, **kwargs):  # type: ignore[no-untyped-def]
        raise RecipientRejectedError("unsubscribed", provider="sandbox", code="21610",
                                     reason="opted_out")

    monkeypatch.setattr(SandboxCarrier, "send_sms", rejected)
    post(app.test_client(), acme, "voice", missed(), webhook_secret)
    call = only_call(runtime, acme)
    assert call.state == "text_failed"
    assert count(runtime, OptOut, account_id=acme, number=CALLER) == 1
    assert "failed" in records(runtime, acme, "task")[0]["body"]


def test_explain_says_what_happened_and_why(app, runtime, acme, webhook_secret):
    client = app.test_client()
    post(client, acme, "voice", missed("CALL1", minutes_ago=40), webhook_secret)
    post(client, acme, "voice", missed("CALL2", outcome="busy"), webhook_secret)
    with runtime.db.session() as s:
        first, second = (
            s.scalar(select(Call.id).where(Call.event_id == e)) for e in ("CALL1", "CALL2")
        )
    text = explain(runtime, first)
    assert "decision: text the caller" in text and "text: sent" in text
    assert "CRM sandbox task" in text and "crm_synced" in text
    text2 = explain(runtime, "CALL2")  # the carrier's id works too
    assert second in text2 and "reason cooldown" in text2 and "busy" in text2


def test_full_numbers_and_bodies_stay_out_of_the_logs(
    app, runtime, acme, webhook_secret, caplog
):
    caplog.set_level("DEBUG")
    client = app.test_client()
    post(client, acme, "voice", missed(), webhook_secret)
    post(client, acme, "sms", {"message_id": "IN9", "from": CALLER, "to": BUSINESS,
                               "body": "secret gate code 4471"}, webhook_secret)
    post(client, acme, "voice", missed(), "wrong")
    assert CALLER not in caplog.text and "4471" not in caplog.text
    assert webhook_secret not in caplog.text


def test_opt_out_reported_in_a_delivery_failure_enters_the_ledger(
    app, runtime, acme, webhook_secret, monkeypatch
):
    from carrier_adapters.sandbox import SandboxCarrier

    monkeypatch.setattr(SandboxCarrier, "opt_out_error_codes", frozenset({"21610"}))
    client = app.test_client()
    post(client, acme, "voice", missed(), webhook_secret)
    sent_id = records(runtime, acme, "sms")[0]["id"]
    post(client, acme, "status", {"message_id": sent_id, "status": "failed",
                                  "error_code": "21610"}, webhook_secret)
    assert count(runtime, OptOut, account_id=acme, number=CALLER) == 1
