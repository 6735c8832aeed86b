"""The CRM jobs: each step idempotent through ``crm_links``, so a retry never duplicates a record.

For a missed call: contact, lead (deal) in its pipeline stage, the call logged, the text logged,
the follow-up task; what is written depends on the decision's reason (a spam call is only logged,
a repeat call inside a burst adds a line to the first call's task). For a customer's reply: logged
on the same contact and added to the task. For a failed delivery: a line on the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain.policy import NO_CRM_REASONS
from connector.jobs import app_events
from connector.jobs.conversation import awaits_owner, on_customer_reply
from connector.jobs.crm_text import call_title, local_time, task_body, task_subject, text_line
from connector.jobs.steps import (
    CALL_LEASE,
    MESSAGE_LEASE,
    audit,
    backoff,
    call_with_retries,
    forget_link,
    get_link,
    release_lease,
    set_link,
    take_lease,
)
from connector.kernel import clock
from connector.kernel.errors import (
    ConfigurationError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from connector.kernel.events import CallOutcome
from connector.kernel.phone import mask
from connector.settings.account_settings import CrmMapping, account_settings
from connector.storage.locks import named_lock
from connector.storage.models import Account, Call, ContactProfile, Message
from connector.storage.states import CARRIER_HAS_TEXT, CRM_SYNCABLE_STATES, CallState, CrmState, Purpose
from crm_adapters.base import CallLog, CrmAdapter, CrmContact, LeadSpec, MessageLog, TaskSpec

if TYPE_CHECKING:
    from connector.jobs.context import JobContext

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 10
#: A customer's reply still not tied to its call after this long lost its texts-lane job.
REPLY_JOB_LOST_AFTER = timedelta(seconds=60)
#: Reasons whose call is logged on the contact and nothing more.
LOG_ONLY_REASONS = frozenset({"likely_spam"})


def _remote(session: Session, request: Callable[[], T], *, retry_ambiguous: bool = True) -> T:
    """One CRM request, made with nothing of ours held open.

    What the job has written so far is committed first: a write transaction held across a slow
    CRM would stall every other writer (on SQLite, the whole database) for as long as it takes.
    """
    session.commit()
    return call_with_retries(request, retry_ambiguous=retry_ambiguous)


def _link(session: Session, account_id: str, crm: str, object_type: str, key: str,
          crm_id: str) -> None:
    """Record the CRM id of one of our objects and commit: the step that made it is done, and a
    retry from here on skips it."""
    set_link(session, account_id, crm, object_type, key, crm_id)
    session.commit()


class NotReady(Exception):
    """A step depends on work not done yet (another call's task); the sweeper comes back."""


def sync_call(runtime: JobContext, call_id: str) -> None:
    """Job: write a missed call into the CRM, step by step."""
    with runtime.db.session() as session:
        call = session.get(Call, call_id)
        if call is None or call.crm_state == CrmState.DONE or call.caller is None:
            return
        if call.state not in CRM_SYNCABLE_STATES or call.reason in NO_CRM_REASONS:
            return
        if not take_lease(session, CALL_LEASE, call_id):
            return
        try:
            _sync_call(runtime, session, call)
        except NotReady as exc:
            call.crm_state = CrmState.RETRY
            call.next_attempt_at = clock.now() + timedelta(seconds=30)
            audit(session, call.id, "crm_waiting", str(exc))
        except ProviderError as exc:
            _step_failed(session, call, exc)
        except ConfigurationError as exc:
            call.crm_state = CrmState.FAILED
            call.last_error = f"configuration: {exc}"
            audit(session, call.id, "crm_failed", f"configuration: {exc.field}")
        finally:
            release_lease(session, CALL_LEASE, call_id)


def _step_failed(session: Session, call: Call, exc: ProviderError) -> None:
    if isinstance(exc, RateLimitedError):
        # The CRM's budget is spent (a burst): not a failure, so no attempt is counted; the
        # sweeper sends the call again once the budget has room.
        call.crm_state = CrmState.RETRY
        call.next_attempt_at = clock.now() + timedelta(seconds=exc.retry_after)
        audit(session, call.id, "crm_waiting", f"rate limited by {exc.provider}")
        return
    call.attempts += 1
    call.last_error = f"{type(exc).__name__} {exc.provider} code={exc.code or '-'}"
    if isinstance(exc, ProviderAuthError):
        account = session.get(Account, call.account_id)
        if account is not None:
            account.crm_needs_reauth = True
        call.crm_state = CrmState.NEEDS_REAUTH
    elif isinstance(exc, PermanentProviderError) or call.attempts >= MAX_ATTEMPTS:
        call.crm_state = CrmState.FAILED
    else:
        call.crm_state = CrmState.RETRY
        call.next_attempt_at = clock.now() + backoff(call.attempts)
    # Waiting for a new install: the trail says why (the message names no secret).
    detail = f"{call.last_error}: {exc}" if isinstance(exc, ProviderAuthError) else \
        call.last_error
    audit(session, call.id, f"crm_{call.crm_state}", detail)


def _remember_profile(session: Session, account_id: str, number: str, contact: CrmContact) -> None:
    profile = session.get(ContactProfile, (account_id, number))
    if profile is None:
        try:
            with session.begin_nested():
                session.add(ContactProfile(account_id=account_id, number=number,
                                           first_name=contact.first_name,
                                           language=contact.language))
        except IntegrityError:
            profile = session.get(ContactProfile, (account_id, number), populate_existing=True)
    if profile is not None:
        profile.first_name, profile.language = contact.first_name, contact.language
    session.commit()


def contact_id_for(session: Session, account: Account, crm: CrmAdapter, number: str) -> str:
    """The CRM contact of a number: from our map, else found or created (and remembered)."""
    contact_id = get_link(session, account.id, crm.name, "contact", number)
    if contact_id is not None:
        return contact_id
    # One find-or-create per caller at a time: CRMs without an upsert (Jobber, Housecall Pro)
    # would otherwise make two contacts for two quick calls from a new number.
    lock = f"contact:{account.id}:{crm.name}:{number}"
    with named_lock(session.get_bind(), lock):  # type: ignore[arg-type]
        session.expire_all()
        contact_id = get_link(session, account.id, crm.name, "contact", number)
        if contact_id is None:
            contact = _remote(session, lambda: crm.find_or_create_contact(number))
            contact_id = contact.id
            _link(session, account.id, crm.name, "contact", number, contact_id)
            _remember_profile(session, account.id, number, contact)
    return contact_id


def _text_of(session: Session, call: Call) -> Message | None:
    return session.scalar(
        select(Message).where(
            Message.account_id == call.account_id, Message.purpose_key == Purpose.TEXT_BACK.key(call.id)
        )
    )


def _sync_call(runtime: JobContext, session: Session, call: Call) -> None:
    account = session.get(Account, call.account_id)
    assert account is not None and call.caller is not None  # noqa: S101
    crm = runtime.crm_for(account)
    mapping = account_settings(account).crm_mapping
    owner = call.owner_id or mapping.owner_id
    text = _text_of(session, call)
    contact_id = contact_id_for(session, account, crm, call.caller)  # every step needs it
    full = call.reason not in LOG_ONLY_REASONS and call.reason != "burst"
    refused: list[str] = []

    def step(name: str, run: Callable[[], None]) -> None:
        # A CRM that refuses one step (a validation error, a missing permission) does not stop
        # the others; a transient failure still ends the job, and the retry skips what is done.
        try:
            run()
        except PermanentProviderError as exc:
            refused.append(name)
            audit(session, call.id, "crm_step_failed", f"{name}: {_crm_message(exc)}")

    lead_id = get_link(session, account.id, crm.name, "lead", call.caller)

    def lead() -> None:
        nonlocal lead_id
        spec = LeadSpec(contact_id=contact_id, name=f"Missed call {call.caller}",
                        pipeline=mapping.pipeline, stage=mapping.stage,
                        owner_id=owner)
        def earlier_lead() -> str | None:
            found = crm.find_lead(spec)
            # The attempt that made it may have died before the lead reached its stage (Housecall
            # Pro moves a new lead in a second request): the found lead is put there now.
            return None if found is None else crm.set_pipeline_stage(spec, found)

        new_lead = _create_once(session, account, crm, "lead", call.id,
                                create=lambda: crm.set_pipeline_stage(spec, lead_id),
                                find=earlier_lead)
        note = crm.pipeline_note(new_lead)
        if note:
            audit(session, call.id, "crm_pipeline", note)
        if new_lead != lead_id:
            _link(session, account.id, crm.name, "lead", call.caller or "", new_lead)
            audit(session, call.id, "crm_lead", f"lead {new_lead}")
            lead_id = new_lead

    def call_log() -> None:
        if get_link(session, account.id, crm.name, "call", call.id) is not None:
            return
        entry = CallLog(
            contact_id=contact_id, caller=call.caller or "", called=call.called or "",
            outcome=CallOutcome(call.outcome), occurred_at=call.occurred_at,
            title=call_title(call), body=task_body(account, call, text), owner_id=owner,
            deal_id=lead_id if full else None,
        )
        logged = _create_once(session, account, crm, "call", call.id,
                              create=lambda: crm.log_call(entry),
                              find=lambda: crm.find_call_log(entry))
        _link(session, account.id, crm.name, "call", call.id, logged)
        audit(session, call.id, "crm_call_logged")

    if full and "pipeline" in crm.capabilities and mapping.creates == "lead":
        step("lead", lead)
    step("call log", call_log)
    if text is not None and text.status in CARRIER_HAS_TEXT:
        step("text log", lambda: log_message(session, account, crm, text, contact_id, lead_id,
                                             owner))
    step("app events", lambda: app_events.call_events(session, account, crm, call, text,
                                                      contact_id))
    if call.reason == "burst":
        _note_on_leader_task(session, account, crm, call)
    elif full and mapping.creates != "contact":
        step("task", lambda: _task(session, account, crm, call, text, contact_id, lead_id,
                                   mapping))

    if call.state == CallState.SCHEDULED:
        call.crm_state = CrmState.WAITING_TEXT
    else:
        call.crm_state = CrmState.PARTIAL if refused else CrmState.DONE
    call.last_error = f"the CRM refused: {', '.join(refused)}" if refused else None
    audit(session, call.id,
          "crm_synced" if call.crm_state == CrmState.DONE else "crm_synced_partly",
          f"contact {contact_id}" + (f"; refused: {', '.join(refused)}" if refused else ""))
    log.info("call synced to %s call=%s caller=%s", crm.name, call.id, mask(call.caller))


def _crm_message(exc: ProviderError) -> str:
    """The CRM's own words for a refusal (adapters keep numbers and secrets out of them)."""
    words = str(exc).strip() or type(exc).__name__
    return f"{exc.provider} said {words[:300]}"


def _task(session: Session, account: Account, crm: CrmAdapter, call: Call, text: Message | None,
          contact_id: str, lead_id: str | None, mapping: CrmMapping) -> None:
    assert call.caller is not None  # noqa: S101
    task_id = get_link(session, account.id, crm.name, "task", call.id)
    if task_id is None:
        # Every attempt asks for the first attempt's due time, so the task an earlier attempt
        # made is where a CRM that lists tasks by their time (Jobber) looks for it.
        first_due = _recorded_time(get_link(session, account.id, crm.name, "attempt",
                                            _attempt_key("task", call.id)))
        task = TaskSpec(
            contact_id=contact_id, subject=task_subject(call),
            body=task_body(account, call, text),
            due_at=first_due or clock.now() + timedelta(minutes=mapping.task_due_minutes),
            owner_id=call.owner_id or mapping.owner_id,
            priority=mapping.task_priority, queue_id=mapping.task_queue_id, deal_id=lead_id,
        )
        task_id = _create_once(session, account, crm, "task", call.id,
                               create=lambda: crm.create_task(task),
                               find=lambda: crm.find_task(task, call.id),
                               record=task.due_at.isoformat())
        _link(session, account.id, crm.name, "task", call.id, task_id)
        # Replies and delivery failures from this caller are added to their latest task.
        _link(session, account.id, crm.name, "latest_task", call.caller, task_id)
        audit(session, call.id, "crm_task_created", f"task {task_id}")
        if call.state != CallState.SCHEDULED:  # the body already tells the text's fate
            _link(session, account.id, crm.name, "task_note", f"text:{call.id}", task_id)
    elif call.state != CallState.SCHEDULED and get_link(
        session, account.id, crm.name, "task_note", f"text:{call.id}"
    ) is None:
        line = text_line(account, call, text)  # the held text went, or was cancelled
        _remote(session, lambda: crm.append_to_task(task_id, line))
        _link(session, account.id, crm.name, "task_note", f"text:{call.id}", task_id)


def _attempt_key(object_type: str, key: str) -> str:
    """The ``attempt`` link's key for one CRM record of ours."""
    return f"{object_type}:{key}"


def _recorded_time(value: str | None) -> datetime | None:
    """The time an attempt recorded (:func:`_create_once`'s ``record``); None for an attempt
    that recorded none (``-``) or for no attempt."""
    try:
        recorded = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return recorded if recorded is not None and recorded.tzinfo is not None else None


def _create_once(session: Session, account: Account, crm: CrmAdapter, object_type: str,
                 key: str, *, create: Callable[[], str], find: Callable[[], str | None],
                 record: str = "-") -> str:
    """Create a CRM record, or find the one an earlier attempt made before it could link it.

    The attempt is recorded (committed) before the create, so a worker that dies between the
    CRM's answer and our link leaves a trace; its retry searches for the record first and only
    creates when the CRM has none. A create whose answer was lost (a timeout, a 5xx) is not
    repeated at once: the job fails, and its retry, a backoff later, searches first too. That
    wait also lets a CRM whose search lags its writes (HubSpot's index) find the record. A CRM
    that cannot search (``NotImplementedError``) may get the record twice in those narrow cases.
    ``record`` is kept with the first attempt (what it asked for that a later one must repeat).
    A first attempt the CRM refused outright made nothing, so it is forgotten: the next one is a
    first attempt again (a task retried after a reconnection days later is due from then).
    """
    attempt = _attempt_key(object_type, key)
    first = get_link(session, account.id, crm.name, "attempt", attempt) is None
    if not first:
        try:
            found = _remote(session, find)
        except NotImplementedError:
            found = None
        if found is not None:
            log.info("crm %s made by an earlier attempt found and linked crm=%s key=%s",
                     object_type, crm.name, key)
            return found
    else:
        _link(session, account.id, crm.name, "attempt", attempt, record)
    try:
        return _remote(session, create, retry_ambiguous=False)
    except ProviderError as exc:
        if first and not (isinstance(exc, TransientProviderError) and exc.ambiguous):
            forget_link(session, account.id, crm.name, "attempt", attempt)  # kept with the failure
        raise


def _note_on_leader_task(session: Session, account: Account, crm: CrmAdapter, call: Call) -> None:
    if get_link(session, account.id, crm.name, "task_note", f"burst:{call.id}") is not None:
        return
    leader = call.burst_leader_id or ""
    task_id = get_link(session, account.id, crm.name, "task", leader)
    if task_id is None:
        raise NotReady(f"the first call's task ({leader}) is not made yet")
    calls = 1 + int(session.scalar(
        select(func.count()).select_from(Call).where(
            Call.burst_leader_id == leader, Call.occurred_at <= call.occurred_at)) or 0)
    note = (f"Called again at {local_time(account, call.occurred_at)}: {calls} calls in a row "
            f"from this number; one text covers them.")
    _remote(session, lambda: crm.append_to_task(task_id, note))
    _link(session, account.id, crm.name, "task_note", f"burst:{call.id}", task_id)


def log_message(session: Session, account: Account, crm: CrmAdapter, message: Message,
                contact_id: str, lead_id: str | None, owner: str | None) -> None:
    """Log one text on the contact, once."""
    if get_link(session, account.id, crm.name, "message", message.id) is not None:
        return
    inbound = message.direction == "inbound"
    entry = MessageLog(
        contact_id=contact_id, direction=message.direction, body=message.body,
        occurred_at=message.created_at,
        sender=message.customer if inbound else message.business_number,
        recipient=message.business_number if inbound else message.customer,
        owner_id=owner, deal_id=lead_id,
    )
    logged = _create_once(session, account, crm, "message", message.id,
                          create=lambda: crm.log_message(entry),
                          find=lambda: crm.find_message_log(entry))
    _link(session, account.id, crm.name, "message", message.id, logged)


def sync_message(runtime: JobContext, message_id: str) -> None:
    """Job: log a reply (or our compliance answer) on the contact, add it to the open task."""
    with runtime.db.session() as session:
        message = session.get(Message, message_id)
        if message is None or message.crm_state == CrmState.DONE:
            return
        if not take_lease(session, MESSAGE_LEASE, message_id):
            return
        try:
            _sync_message(runtime, session, message)
        except ProviderError as exc:
            message.crm_state = (CrmState.FAILED if isinstance(exc, PermanentProviderError)
                                 else CrmState.RETRY)
            session.commit()
            log.warning("message sync failed message=%s error=%s", message.id, type(exc).__name__)
        finally:
            release_lease(session, MESSAGE_LEASE, message_id)


def _sync_message(runtime: JobContext, session: Session, message: Message) -> None:
    account = session.get(Account, message.account_id)
    assert account is not None  # noqa: S101
    if awaits_owner(message) and message.created_at < clock.now() - REPLY_JOB_LOST_AFTER:
        # The owner is alerted by the texts lane's reply_received job; only when that job was
        # lost (a crash before it was queued; the sweeper brought this sync) does it happen here.
        on_customer_reply(runtime, session, message)
    crm = runtime.crm_for(account)
    owner = account_settings(account).crm_mapping.owner_id
    call = session.get(Call, message.call_id) if message.call_id else None
    if call is not None and call.owner_id:
        owner = call.owner_id  # a relayed reply is logged as that owner's text
    task_id = get_link(session, account.id, crm.name, "latest_task", message.customer)
    noted = get_link(session, account.id, crm.name, "task_note", message.id) is not None
    if message.crm_state == CrmState.FAILURE_NOTE:
        if task_id is None:
            call = session.get(Call, message.call_id) if message.call_id else None
            if call is not None and call.crm_state not in (CrmState.DONE, CrmState.PARTIAL, CrmState.FAILED,
                                                         CrmState.NEEDS_REAUTH):
                return  # the task is not made yet; the sweeper brings this back
        elif not noted:
            note = (f"The text-back to {message.customer} was not delivered "
                    f"(status {message.status}, carrier code {message.error_code or '-'}).")
            _remote(session, lambda: crm.append_to_task(task_id, note))
            _link(session, account.id, crm.name, "task_note", message.id, task_id)
    else:
        contact_id = contact_id_for(session, account, crm, message.customer)
        lead_id = get_link(session, account.id, crm.name, "lead", message.customer)
        log_message(session, account, crm, message, contact_id, lead_id, owner)
        try:
            app_events.message_events(session, account, crm, message, contact_id)
        except PermanentProviderError as exc:  # the logged text is the record; go on
            log.warning("app event refused message=%s: %s", message.id, type(exc).__name__)
        if message.intent in ("opt_out", "opt_in"):
            _mark_contact(session, account, crm, message, contact_id)
        if message.direction == "inbound" and task_id and not noted:
            note = f'Customer replied at {local_time(account, message.created_at)}: "{message.body}"'
            _remote(session, lambda: crm.append_to_task(task_id, note))
            _link(session, account.id, crm.name, "task_note", message.id, task_id)
    message.crm_state = CrmState.DONE
    session.commit()


def _mark_contact(session: Session, account: Account, crm: CrmAdapter, message: Message,
                  contact_id: str) -> None:
    key = f"optmark:{message.id}"
    if get_link(session, account.id, crm.name, "task_note", key) is not None:
        return
    try:
        _remote(session, lambda: crm.set_opt_out(contact_id, message.intent == "opt_out"))
    except NotImplementedError:
        log.info("%s cannot mark opt-outs on contacts; the keyword text is logged instead", crm.name)
    _link(session, account.id, crm.name, "task_note", key, contact_id)
