"""The text-back job: decide, then send the text first (intent row before the carrier call).

A retried or re-delivered job never texts twice: the intent row is unique per call, a caller's
cooldown is claimed atomically, and a send whose outcome was ambiguous is reconciled against the
carrier's records before anything is sent again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector import policy
from connector.errors import (
    ProviderAuthError,
    ProviderError,
    RecipientRejectedError,
    TransientProviderError,
)
from connector.events import CallOutcome, SendResult, utcnow
from connector.phone import mask
from connector.steps import audit, call_with_retries, release_lease, take_lease
from connector.storage.models import Account, Call, CallerState, Message, OptOut

if TYPE_CHECKING:
    from connector.runtime import Runtime

log = logging.getLogger(__name__)

#: A send whose outcome is unknown is reconciled only once the carrier has had time to list it.
RECONCILE_AFTER = timedelta(seconds=30)


def business_number_for(account: Account, call: Call) -> str | None:
    """The number the text goes out from: the one that was called, if it is the account's."""
    numbers: list[str] = account.settings["carrier"]["numbers"]
    if call.called in numbers:
        return call.called
    return numbers[0] if numbers else None


def _claim_cooldown(session: Session, account: Account, call: Call, cooldown: timedelta) -> bool:
    """Atomically take the caller's 'last texted' slot; False when another call holds it."""
    assert call.caller is not None  # noqa: S101 - decided callers always have a number
    now = utcnow()
    if session.get(CallerState, (account.id, call.caller)) is None:
        try:
            with session.begin_nested():
                session.add(CallerState(account_id=account.id, number=call.caller))
        except IntegrityError:
            pass
    result = session.execute(
        update(CallerState)
        .where(
            CallerState.account_id == account.id,
            CallerState.number == call.caller,
            or_(
                CallerState.last_text_at.is_(None),
                CallerState.last_text_at < now - cooldown,
                CallerState.last_text_call_id == call.id,
            ),
        )
        .values(last_text_at=now, last_text_call_id=call.id)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _decide(session: Session, account: Account, call: Call) -> policy.Decision:
    cooldown = timedelta(hours=float(account.settings["policy"]["cooldown_hours"]))
    state = session.get(CallerState, (account.id, call.caller)) if call.caller else None
    last_text_at = state.last_text_at if state and state.last_text_call_id != call.id else None
    facts = policy.CallFacts(
        outcome=CallOutcome(call.outcome),
        caller=call.caller,
        business_number=business_number_for(account, call),
        opted_out=bool(call.caller and session.get(OptOut, (account.id, call.caller))),
        last_text_at=last_text_at,
        now=utcnow(),
        cooldown=cooldown,
    )
    decision = policy.decide(facts)
    if decision.texts and not _claim_cooldown(session, account, call, cooldown):
        decision = policy.Decision(policy.Action.SUPPRESS, policy.Reason.COOLDOWN)
    return decision


def send_text_back(runtime: Runtime, call_id: str) -> None:
    """Job: decide about a missed call and, when it is to be texted, text the caller once."""
    with runtime.db.session() as session:
        call = session.get(Call, call_id)
        if call is None or call.state not in ("received", "decided"):
            return
        if not take_lease(session, Call, call_id):
            return
        try:
            _run(runtime, session, call)
        finally:
            release_lease(session, Call, call_id)
    runtime.jobs.enqueue_crm_sync(call_id)


def _run(runtime: Runtime, session: Session, call: Call) -> None:
    account = session.get(Account, call.account_id)
    assert account is not None  # noqa: S101 - foreign key
    if call.state == "received":
        decision = _decide(session, account, call)
        call.decision = decision.action.value
        call.reason = decision.reason.value
        call.state = "decided" if decision.texts else "suppressed"
        audit(session, call.id, "decided", f"{decision.action.value}: {decision.reason.value}")
        if decision.texts:
            body = policy.render_template(
                account.settings["templates"]["missed_call"], business_name=account.name
            )
            session.add(
                Message(
                    account_id=account.id,
                    call_id=call.id,
                    direction="outbound",
                    purpose_key=f"text_back:{call.id}",
                    customer=call.caller,
                    business_number=business_number_for(account, call),
                    body=body,
                    status="intent",
                )
            )
            audit(session, call.id, "text_intent", "intent written before the carrier call")
        session.commit()
    if call.state == "decided":
        _send(runtime, session, account, call)


def _send(runtime: Runtime, session: Session, account: Account, call: Call) -> None:
    message = session.scalar(
        select(Message).where(
            Message.account_id == account.id, Message.purpose_key == f"text_back:{call.id}"
        )
    )
    assert message is not None  # noqa: S101 - written with the decision
    carrier = runtime.carrier_for(account)
    if message.send_attempts > 0 and message.status in ("intent", "ambiguous"):
        found = _reconcile(runtime, session, call, message)
        if found is Reconciled.WAIT:
            return  # rescheduled, or waiting for the carrier's status callback
        if isinstance(found, SendResult):
            _mark_sent(session, call, message, found, "reconciled: the carrier had sent it")
            return
    message.send_attempts += 1
    message.last_attempt_at = utcnow()
    session.commit()
    status_url = runtime.webhook_url(carrier.name, account.id, "status")
    try:
        result = call_with_retries(
            lambda: carrier.send_sms(
                to=message.customer,
                from_=message.business_number,
                body=message.body,
                status_callback_url=status_url,
            ),
            retry_ambiguous=False,
        )
    except TransientProviderError as exc:
        if exc.ambiguous:
            message.status = "ambiguous"
            audit(session, call.id, "text_ambiguous", f"{type(exc).__name__}; will reconcile")
            session.commit()
            runtime.jobs.enqueue_text_back(call.id, delay=RECONCILE_AFTER.total_seconds())
            return
        _mark_failed(session, call, message, exc, retry=True)
        return
    except RecipientRejectedError as exc:
        if exc.reason == "opted_out":
            _record_opt_out(session, account.id, message.customer, f"carrier:{exc.code}")
        _mark_failed(session, call, message, exc, retry=False)
        return
    except ProviderAuthError as exc:
        _mark_failed(session, call, message, exc, retry=False)
        return
    except ProviderError as exc:
        _mark_failed(session, call, message, exc, retry=False)
        return
    _mark_sent(session, call, message, result, "carrier accepted the text")


class Reconciled(Enum):
    """What reconciling an unsettled send found, when it found no text."""

    WAIT = "wait"  # too early to tell, or the carrier cannot say: try later
    ABSENT = "absent"  # the carrier has no such text: safe to send


def _reconcile(
    runtime: Runtime, session: Session, call: Call, message: Message
) -> SendResult | Reconciled:
    """The carrier's record of the text when it has one, else whether to send or wait."""
    last = message.last_attempt_at or message.created_at
    if utcnow() - last < RECONCILE_AFTER:
        runtime.jobs.enqueue_text_back(call.id, delay=RECONCILE_AFTER.total_seconds())
        return Reconciled.WAIT
    account = session.get(Account, call.account_id)
    assert account is not None  # noqa: S101
    carrier = runtime.carrier_for(account)
    try:
        found = call_with_retries(
            lambda: carrier.find_sent_message(
                to=message.customer,
                from_=message.business_number,
                body=message.body,
                sent_after=last - timedelta(minutes=2),
            )
        )
    except NotImplementedError:
        audit(session, call.id, "text_ambiguous", "carrier cannot list texts; awaiting status")
        message.status = "ambiguous"
        call.state = "texted"
        session.commit()
        return Reconciled.WAIT
    except ProviderError as exc:
        audit(session, call.id, "reconcile_failed", type(exc).__name__)
        runtime.jobs.enqueue_text_back(call.id, delay=RECONCILE_AFTER.total_seconds())
        return Reconciled.WAIT
    if found is None:
        audit(session, call.id, "reconciled", "the carrier has no such text; sending")
        return Reconciled.ABSENT
    return found


def _mark_sent(
    session: Session, call: Call, message: Message, result: SendResult, detail: str
) -> None:
    message.status = "sent"
    message.carrier_message_id = result.message_id
    message.segments = result.segments
    call.state = "texted"
    audit(session, call.id, "texted", detail)
    session.commit()
    log.info("text-back sent call=%s to=%s", call.id, mask(message.customer))


def _mark_failed(
    session: Session, call: Call, message: Message, exc: ProviderError, *, retry: bool
) -> None:
    detail = f"{type(exc).__name__} code={exc.code or '-'}"
    if retry and message.send_attempts < 5:
        message.status = "intent"
        call.next_attempt_at = utcnow() + timedelta(seconds=30 * message.send_attempts)
        call.last_error = detail
        audit(session, call.id, "text_retry_later", detail)
        session.commit()
        return
    message.status = "failed"
    message.error_code = exc.code
    call.state = "text_failed"
    call.last_error = detail
    audit(session, call.id, "text_failed", detail)
    session.commit()


def _record_opt_out(session: Session, account_id: str, number: str, source: str) -> None:
    if session.get(OptOut, (account_id, number)) is None:
        session.add(OptOut(account_id=account_id, number=number, source=source))
