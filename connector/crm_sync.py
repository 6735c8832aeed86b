"""The CRM jobs: each step idempotent through ``crm_links``, so a retry never duplicates a record.

For a missed call: contact, lead (deal) in its pipeline stage, the call logged, the text logged,
the follow-up task. For a customer's reply: logged on the same contact and added to the task.
For a failed delivery: a line on the task.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.errors import (
    ConfigurationError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
)
from connector.events import CallOutcome, utcnow
from connector.phone import mask
from connector.steps import (
    audit,
    backoff,
    call_with_retries,
    get_link,
    release_lease,
    set_link,
    take_lease,
)
from connector.storage.models import Account, Call, Message
from crm_adapters.base import CallLog, CrmAdapter, LeadSpec, MessageLog, TaskSpec

if TYPE_CHECKING:
    from connector.runtime import Runtime

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10

OUTCOME_WORDS = {
    "no-answer": "rang out with no answer",
    "busy": "got a busy line",
    "failed": "could not be connected",
    "canceled": "hung up while it was ringing",
    "rejected": "was rejected",
    "voicemail": "went to voicemail",
    "after-hours": "called after hours",
    "unknown": "ended in a state the carrier did not explain",
}
REASON_WORDS = {
    "caller_withheld": "the caller ID was withheld",
    "opted_out": "this number has opted out of texts",
    "cooldown": "we already texted this number recently",
    "unknown_outcome": "the call's outcome was unclear",
    "no_business_number": "the account has no number to text from",
}


def _local(account: Account, when: object) -> str:
    return when.astimezone(ZoneInfo(account.timezone)).strftime("%a %d %b %Y %H:%M %Z")  # type: ignore[attr-defined]


def task_body(account: Account, call: Call, text: Message | None) -> str:
    """What the rep reads on the follow-up task: who, when, what happened, what we texted."""
    lines = [
        f"Missed call from {call.caller or call.caller_raw or 'a withheld number'} "
        f"to {call.called or 'the business line'} at {_local(account, call.occurred_at)}.",
        f"What happened: the caller {OUTCOME_WORDS.get(call.outcome, call.outcome)}"
        + (f" (rang {call.ring_seconds:.0f} s)" if call.ring_seconds else "")
        + ("; a voicemail was left." if call.voicemail else "."),
    ]
    if text is not None and text.status in ("sent", "delivered", "ambiguous", "intent"):
        lines.append(f'Texted at {_local(account, text.updated_at)}: "{text.body}"')
    elif text is not None:
        lines.append(f"The text-back failed ({text.error_code or 'carrier error'}).")
    else:
        lines.append(f"Not texted: {REASON_WORDS.get(call.reason or '', call.reason)}.")
    lines.append(f"textback call {call.id}")
    return "\n".join(lines)


def sync_call(runtime: Runtime, call_id: str) -> None:
    """Job: write a missed call into the CRM, step by step."""
    with runtime.db.session() as session:
        call = session.get(Call, call_id)
        if call is None or call.crm_state == "done" or call.caller is None:
            return
        if call.state in ("received", "decided"):
            return  # the text step is not settled; it enqueues us when it is
        if not take_lease(session, Call, call_id):
            return
        try:
            _sync_call(runtime, session, call)
        except ProviderError as exc:
            _step_failed(session, call, exc)
        except ConfigurationError as exc:
            call.crm_state = "failed"
            call.last_error = f"configuration: {exc}"
            audit(session, call.id, "crm_failed", f"configuration: {exc.field}")
            session.commit()
        finally:
            release_lease(session, Call, call_id)


def _step_failed(session: Session, call: Call, exc: ProviderError) -> None:
    call.attempts += 1
    call.last_error = f"{type(exc).__name__} {exc.provider} code={exc.code or '-'}"
    if isinstance(exc, ProviderAuthError):
        account = session.get(Account, call.account_id)
        if account is not None:
            account.crm_needs_reauth = True
        call.crm_state = "needs_reauth"
    elif isinstance(exc, PermanentProviderError) or call.attempts >= MAX_ATTEMPTS:
        call.crm_state = "failed"
    else:
        call.crm_state = "retry"
        call.next_attempt_at = utcnow() + backoff(call.attempts)
    audit(session, call.id, "crm_" + call.crm_state, call.last_error)
    session.commit()


def _contact_id(session: Session, account: Account, crm: CrmAdapter, number: str) -> str:
    contact_id = get_link(session, account.id, crm.name, "contact", number)
    if contact_id is None:
        contact = call_with_retries(lambda: crm.find_or_create_contact(number))
        contact_id = contact.id
        set_link(session, account.id, crm.name, "contact", number, contact_id)
    return contact_id


def _sync_call(runtime: Runtime, session: Session, call: Call) -> None:
    account = session.get(Account, call.account_id)
    assert account is not None and call.caller is not None  # noqa: S101
    crm = runtime.crm_for(account)
    mapping = account.settings["crm"]["mapping"]
    owner = mapping.get("owner_id")
    text = session.scalar(
        select(Message).where(
            Message.account_id == account.id, Message.purpose_key == f"text_back:{call.id}"
        )
    )
    contact_id = _contact_id(session, account, crm, call.caller)

    lead_id = get_link(session, account.id, crm.name, "lead", call.caller)
    if "pipeline" in crm.capabilities:
        spec = LeadSpec(
            contact_id=contact_id,
            name=f"Missed call {call.caller}",
            pipeline=mapping.get("pipeline"),
            stage=mapping.get("stage"),
            owner_id=owner,
        )
        new_lead = call_with_retries(lambda: crm.set_pipeline_stage(spec, lead_id))
        if new_lead != lead_id:
            set_link(session, account.id, crm.name, "lead", call.caller, new_lead)
            audit(session, call.id, "crm_lead", f"lead {new_lead}")
            lead_id = new_lead

    if get_link(session, account.id, crm.name, "call", call.id) is None:
        log_entry = CallLog(
            contact_id=contact_id,
            caller=call.caller,
            called=call.called or "",
            outcome=CallOutcome(call.outcome),
            occurred_at=call.occurred_at,
            title=f"Missed call ({OUTCOME_WORDS.get(call.outcome, call.outcome)})",
            body=task_body(account, call, text),
            owner_id=owner,
            deal_id=lead_id,
        )
        set_link(
            session, account.id, crm.name, "call", call.id,
            call_with_retries(lambda: crm.log_call(log_entry)),
        )
        audit(session, call.id, "crm_call_logged")

    if text is not None and text.status in ("sent", "delivered", "ambiguous"):
        _log_message(session, account, crm, text, contact_id, lead_id, owner)

    if get_link(session, account.id, crm.name, "task", call.id) is None:
        task = TaskSpec(
            contact_id=contact_id,
            subject=f"Call back {call.caller}: missed call",
            body=task_body(account, call, text),
            due_at=utcnow() + timedelta(minutes=int(mapping.get("task_due_minutes", 15))),
            owner_id=owner,
            priority=mapping.get("task_priority", "HIGH"),
            queue_id=mapping.get("task_queue_id"),
            deal_id=lead_id,
        )
        task_id = call_with_retries(lambda: crm.create_task(task))
        set_link(session, account.id, crm.name, "task", call.id, task_id)
        # Replies and delivery failures from this caller are added to their latest task.
        set_link(session, account.id, crm.name, "latest_task", call.caller, task_id)
        audit(session, call.id, "crm_task_created", f"task {task_id}")

    call.crm_state = "done"
    call.last_error = None
    audit(session, call.id, "crm_synced", f"contact {contact_id}")
    session.commit()
    log.info("call synced to %s call=%s caller=%s", crm.name, call.id, mask(call.caller))


def _log_message(
    session: Session,
    account: Account,
    crm: CrmAdapter,
    message: Message,
    contact_id: str,
    lead_id: str | None,
    owner: str | None,
) -> None:
    if get_link(session, account.id, crm.name, "message", message.id) is not None:
        return
    inbound = message.direction == "inbound"
    entry = MessageLog(
        contact_id=contact_id,
        direction=message.direction,
        body=message.body,
        occurred_at=message.created_at,
        sender=message.customer if inbound else message.business_number,
        recipient=message.business_number if inbound else message.customer,
        owner_id=owner,
        deal_id=lead_id,
    )
    set_link(
        session, account.id, crm.name, "message", message.id,
        call_with_retries(lambda: crm.log_message(entry)),
    )


def sync_message(runtime: Runtime, message_id: str) -> None:
    """Job: log a customer's reply on their contact and add it to their open task."""
    with runtime.db.session() as session:
        message = session.get(Message, message_id)
        if message is None or message.crm_state == "done":
            return
        if not take_lease(session, Message, message_id):
            return
        try:
            _sync_message(runtime, session, message)
        except ProviderError as exc:
            message.crm_state = "retry" if not isinstance(exc, PermanentProviderError) else "failed"
            session.commit()
            log.warning("message sync failed message=%s error=%s", message.id, type(exc).__name__)
        finally:
            release_lease(session, Message, message_id)


def _sync_message(runtime: Runtime, session: Session, message: Message) -> None:
    account = session.get(Account, message.account_id)
    assert account is not None  # noqa: S101
    crm = runtime.crm_for(account)
    owner = account.settings["crm"]["mapping"].get("owner_id")
    task_id = get_link(session, account.id, crm.name, "latest_task", message.customer)
    if message.direction == "inbound":
        contact_id = _contact_id(session, account, crm, message.customer)
        lead_id = get_link(session, account.id, crm.name, "lead", message.customer)
        _log_message(session, account, crm, message, contact_id, lead_id, owner)
        if task_id and get_link(session, account.id, crm.name, "task_note", message.id) is None:
            when = _local(account, message.created_at)
            note = f'Customer replied at {when}: "{message.body}"'
            call_with_retries(lambda: crm.append_to_task(task_id, note))
            set_link(session, account.id, crm.name, "task_note", message.id, task_id)
    elif message.crm_state == "failure_note":
        if task_id is None:
            call = session.get(Call, message.call_id) if message.call_id else None
            if call is not None and call.crm_state not in ("done", "failed", "needs_reauth"):
                return  # the task is not made yet; the sweeper brings this back
        elif get_link(session, account.id, crm.name, "task_note", message.id) is None:
            note = (
                f"The text-back to {message.customer} was not delivered "
                f"(status {message.status}, carrier code {message.error_code or '-'})."
            )
            call_with_retries(lambda: crm.append_to_task(task_id, note))
            set_link(session, account.id, crm.name, "task_note", message.id, task_id)
    message.crm_state = "done"
    session.commit()
