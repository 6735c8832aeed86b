"""A human owns every conversation: alerts on replies, owners' replies relayed to the customer,
escalation when nobody answers, and the time to the first human response.

Escalation timers are rows with a due time: they survive restarts, fire from a scheduled job or,
failing that, the minute sweeper, and a conditional update makes each fire exactly once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from connector.domain.hours import BusinessHours, add_open_time
from connector.jobs.alerts import raise_alert
from connector.jobs.routing import Owner, owners
from connector.jobs.steps import audit, get_link
from connector.kernel import clock
from connector.settings.account_settings import account_settings
from connector.storage.models import Account, Call, CrmLink, EscalationTimer, Message

if TYPE_CHECKING:
    from connector.jobs.context import JobContext

log = logging.getLogger(__name__)
#: A customer's text counts as a reply to the latest missed call from them within this window.
REPLY_WINDOW = timedelta(days=7)


def latest_call(session: Session, account_id: str, customer: str, before: datetime) -> Call | None:
    """The customer's most recent missed call before ``before``, within the reply window."""
    return session.scalar(
        select(Call).where(
            Call.account_id == account_id, Call.caller == customer,
            Call.occurred_at <= before, Call.occurred_at >= before - REPLY_WINDOW,
        ).order_by(Call.occurred_at.desc()).limit(1))


def owner_of(account: Account, call: Call) -> Owner | None:
    """The call's owner as configured in ``routing.owners``."""
    return owners(account).get(call.owner_id or "")


def mark_human_response(session: Session, call: Call, at: datetime, how: str) -> None:
    """A person answered: stop escalation and record when (only the first response counts).

    Part of the caller's transaction: the view or job that saw the response commits it."""
    if call.human_responded_at is None:
        call.human_responded_at = at
        audit(session, call.id, "human_responded", how)
    session.execute(update(EscalationTimer).where(
        EscalationTimer.call_id == call.id, EscalationTimer.fired_at.is_(None),
        EscalationTimer.cancelled_at.is_(None)).values(cancelled_at=at))


def reply_received(runtime: JobContext, message_id: str) -> None:
    """Job (texts lane): a customer replied: alert the owner and start the escalation clock
    now, whatever the CRM lane is busy with."""
    with runtime.db.session() as session:
        message = session.get(Message, message_id)
        if message is not None and awaits_owner(message):
            on_customer_reply(runtime, session, message)


def awaits_owner(message: Message) -> bool:
    """A customer's own words (not a keyword) not yet tied to their call and owner."""
    return (message.direction == "inbound" and message.intent in (None, "none")
            and message.call_id is None)


def on_customer_reply(runtime: JobContext, session: Session, message: Message) -> None:
    """The customer replied: note it on the call, alert the owner, start the escalation clock."""
    account = session.get(Account, message.account_id)
    assert account is not None  # noqa: S101
    call = latest_call(session, account.id, message.customer, message.created_at)
    if call is None:
        return
    message.call_id = message.call_id or call.id
    if call.customer_replied_at is None:
        call.customer_replied_at = message.created_at
    session.commit()
    owner = owner_of(account, call)
    if owner is not None:
        raise_alert(runtime, session, account, call, owner, "reply", key=f"reply-{message.id}",
                    reply=message.body)
    if call.human_responded_at is None:
        arm(runtime, session, account, call, message.created_at, level=1)


def arm(runtime: JobContext, session: Session, account: Account, call: Call, start: datetime,
        *, level: int) -> None:
    """Start escalation timer ``level`` for the call (once per level)."""
    escalation = account_settings(account).routing.escalation
    minutes = escalation.minutes if level == 1 else escalation.second_level_minutes
    if not minutes:
        return
    delta = timedelta(minutes=float(minutes))
    if escalation.business_hours_only:
        hours = BusinessHours.from_settings(account.timezone, account.settings.get("hours"))
        due = add_open_time(hours, start, delta, call.called)
    else:
        due = start + delta
    # One timer per call and level: the insert does nothing when it is armed already, so no
    # error (and no savepoint left open) is involved. Committed at once either way.
    insert = _insert_for(session).values(
        account_id=account.id, call_id=call.id, level=level, due_at=due
    ).on_conflict_do_nothing(index_elements=["call_id", "level"]).returning(EscalationTimer.id)
    timer_id = session.scalar(insert)
    if timer_id is None:
        session.commit()
        return  # armed already
    audit(session, call.id, "escalation_armed", f"level {level} due {due:%Y-%m-%d %H:%M} UTC")
    session.commit()
    runtime.jobs.enqueue_escalation(timer_id, eta=due)


def _insert_for(session: Session) -> Any:
    """``INSERT ... ON CONFLICT`` for escalation timers, in the session's SQL dialect."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert(EscalationTimer)


def fire(runtime: JobContext, timer_id: int) -> bool:
    """Job: fire one timer if it is due and still open; True when this call fired it."""
    now = clock.now()
    with runtime.db.session() as session:
        won = session.execute(update(EscalationTimer).where(
            EscalationTimer.id == timer_id, EscalationTimer.due_at <= now,
            EscalationTimer.fired_at.is_(None), EscalationTimer.cancelled_at.is_(None),
        ).values(fired_at=now)).rowcount == 1  # type: ignore[attr-defined]
        session.commit()
        if not won:
            return False
        timer = session.get(EscalationTimer, timer_id)
        assert timer is not None  # noqa: S101
        call = session.get(Call, timer.call_id)
        account = session.get(Account, timer.account_id)
        assert call is not None and account is not None  # noqa: S101
        _escalate(runtime, session, account, call, timer)
    return True


def _escalate(runtime: JobContext, session: Session, account: Account, call: Call,
              timer: EscalationTimer) -> None:
    routing = account_settings(account).routing
    people = owners(account)
    target_id = (routing.backup_owner or routing.manager) if timer.level == 1 \
        else routing.manager
    target = people.get(target_id or "")
    minutes = routing.escalation.minutes
    audit(session, call.id, "escalated",
          f"level {timer.level} to {target.name if target else 'nobody configured'}")
    if target is not None:
        raise_alert(runtime, session, account, call, target, "escalated",
                    key=f"escalation-{timer.level}")
    session.commit()  # the escalation is on record before the CRM is asked for anything
    crm = runtime.crm_for(account)
    task_id = get_link(session, account.id, crm.name, "task", call.id)
    if task_id:
        session.commit()
        note = (f"Escalated{' to ' + target.name if target else ''}: no one answered the "
                f"customer's reply within {minutes:g} minutes.")
        try:
            crm.append_to_task(task_id, note)
            crm.raise_task_priority(task_id)
        except NotImplementedError:
            pass
        except Exception as exc:  # noqa: BLE001 - the alert went; the CRM note can be lost
            log.warning("escalation note failed call=%s: %s", call.id, type(exc).__name__)
    if timer.level == 1:
        arm(runtime, session, account, call, timer.due_at, level=2)


def fire_due(runtime: JobContext) -> int:
    """The sweeper's part: fire every due, open timer (a scheduled job may have been lost)."""
    with runtime.db.session() as session:
        due = session.scalars(select(EscalationTimer.id).where(
            EscalationTimer.fired_at.is_(None), EscalationTimer.cancelled_at.is_(None),
            EscalationTimer.due_at <= clock.now())).all()
    return sum(1 for timer_id in due if fire(runtime, timer_id))


def poll_completed_tasks(runtime: JobContext) -> int:
    """The polling fallback for CRM webhooks: a task a rep completed while its escalation clock
    runs counts as a human response. Returns how many calls it settled.

    Each CRM is asked with no transaction of ours open; a call is settled in its own commit.
    """
    with runtime.db.session() as session:
        # Call ids only (no DISTINCT over whole rows: PostgreSQL cannot compare JSON columns).
        open_call_ids = session.scalars(select(Call.id).where(
            Call.human_responded_at.is_(None),
            Call.id.in_(select(EscalationTimer.call_id).where(
                EscalationTimer.fired_at.is_(None), EscalationTimer.cancelled_at.is_(None))),
        )).all()
    return sum(1 for call_id in open_call_ids if _settle_if_task_done(runtime, call_id))


def _settle_if_task_done(runtime: JobContext, call_id: str) -> bool:
    """Ask the CRM whether the call's task is done; record the human response when it is."""
    with runtime.db.session() as session:
        call = session.get(Call, call_id)
        account = session.get(Account, call.account_id) if call else None
        if call is None or account is None:
            return False
        crm = runtime.crm_for(account)
        task_id = get_link(session, account.id, crm.name, "task", call.id)
        session.commit()  # end the read: nothing of ours is open while the CRM answers
        if task_id is None:
            return False
        try:
            done = crm.task_completed(task_id)
        except NotImplementedError:
            return False
        except Exception as exc:  # noqa: BLE001 - polling is best effort; next minute again
            log.warning("task poll failed call=%s: %s", call.id, type(exc).__name__)
            return False
        if not done:
            return False
        mark_human_response(session, call, clock.now(), "the CRM task was completed")
    return True


def task_completed_in_crm(runtime: JobContext, account_id: str, crm: str, task_id: str) -> bool:
    """A CRM webhook said a task was completed: settle the call it belongs to, if any."""
    with runtime.db.session() as session:
        call_id = session.scalar(select(CrmLink.local_key).where(
            CrmLink.account_id == account_id, CrmLink.crm == crm,
            CrmLink.object_type == "task", CrmLink.crm_id == task_id))
        call = session.get(Call, call_id) if call_id else None
        if call is None:
            return False
        mark_human_response(session, call, clock.now(), "the CRM task was completed")
    return True


def lead_stage_changed(runtime: JobContext, account_id: str, crm: str, lead_id: str,
                       stage: str) -> bool:
    """A lead we made left the account's first stage: note it on the caller's latest call (the
    report counts that conversation as saved). False when it is not ours or did not move on."""
    with runtime.db.session() as session:
        account = session.get(Account, account_id)
        caller = session.scalar(select(CrmLink.local_key).where(
            CrmLink.account_id == account_id, CrmLink.crm == crm,
            CrmLink.object_type == "lead", CrmLink.crm_id == lead_id))
        first_stage = account_settings(account).crm_mapping.stage if account else None
        if caller is None or not stage or stage == first_stage:
            return False
        call = latest_call(session, account_id, caller, clock.now())
        if call is None:
            return False
        audit(session, call.id, "lead_moved", f"{crm} lead {lead_id} now in stage {stage}")
    return True
