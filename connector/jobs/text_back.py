"""The text-back job: decide, then send the text first (intent row before the carrier call).

A retried or re-delivered job never texts twice: the intent row is unique per call, a caller's
cooldown is claimed atomically, and a send whose outcome was ambiguous is reconciled against the
carrier's records before anything is sent again. A delayed or held text is re-checked just before
it goes: an opt-out, a call back or an answered repeat call cancels it.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from connector.domain import policy
from connector.domain.hours import BusinessHours
from connector.jobs.alerts import raise_alert
from connector.jobs.compose import compose
from connector.jobs.facts import (
    CALLER_OPTED_OUT,
    business_number_for,
    gather,
    remember_line_type,
)
from connector.jobs.routing import choose_owner, owners
from connector.jobs.steps import Lease, audit, call_with_retries, release_lease, take_lease
from connector.kernel import clock
from connector.kernel.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RecipientRejectedError,
    TransientProviderError,
)
from connector.kernel.events import SendResult
from connector.kernel.metrics import observe_text_latency
from connector.kernel.phone import mask
from connector.settings.account_settings import account_settings
from connector.storage.consent import record_opt_out
from connector.storage.models import (
    Account,
    Call,
    CallActivity,
    Message,
    UTCDateTime,
)
from connector.storage.states import TEXT_BACK_STATES, CallState, MessageStatus, Purpose

if TYPE_CHECKING:
    from connector.jobs.context import JobContext

log = logging.getLogger(__name__)

#: A send whose outcome is unknown is reconciled only once the carrier has had time to list it.
RECONCILE_AFTER = timedelta(seconds=30)



#: A missed call still to be decided or texted, claimed by one worker.
_TEXT_BACK_LEASE = Lease(Call, Call.state.in_(TEXT_BACK_STATES))

# The claim in one statement (SQLite 3.35+ and PostgreSQL): insert the caller's row, or update
# it only when the cooldown has passed (or this call already holds it); a returned row means the
# text is ours. Plain SQL so the decision path compiles nothing.
_CLAIM_COOLDOWN = text(
    "INSERT INTO caller_states (account_id, number, last_text_at, last_text_call_id) "
    "VALUES (:account_id, :number, :now, :call_id) "
    "ON CONFLICT (account_id, number) DO UPDATE SET "
    "last_text_at = excluded.last_text_at, last_text_call_id = excluded.last_text_call_id "
    "WHERE caller_states.last_text_at IS NULL OR caller_states.last_text_at < :cutoff "
    "OR caller_states.last_text_call_id = :call_id "
    "RETURNING number"
).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("cutoff", type_=UTCDateTime()))


def _claim_cooldown(session: Session, account: Account, call: Call, cooldown: timedelta) -> bool:
    """Atomically take the caller's 'last texted' slot; False when another call holds it."""
    assert call.caller is not None  # noqa: S101 - decided callers always have a number
    now = clock.now()
    claimed = session.execute(_CLAIM_COOLDOWN, {
        "account_id": account.id, "number": call.caller, "now": now,
        "cutoff": now - cooldown, "call_id": call.id,
    }).first()
    return claimed is not None


def _line_type(runtime: JobContext, session: Session, account: Account, call: Call) -> str | None:
    """The caller's line type from one carrier lookup (the facts found none cached within its
    TTL), remembered with the decision; None when unknown."""
    assert call.caller is not None  # noqa: S101
    carrier = runtime.sms_carrier_for(account)
    try:
        found = call_with_retries(lambda: carrier.lookup_line_type(call.caller or ""))
    except NotImplementedError:
        return None
    except ProviderError as exc:
        audit(session, call.id, "line_type_lookup_failed", type(exc).__name__)
        return None
    if found:
        remember_line_type(session, account.id, call.caller, found, clock.now())
    return found


def decide_call(runtime: JobContext, session: Session, account: Account, call: Call
                ) -> policy.Decision:
    """Gather the facts, run the policy (twice when a line-type lookup is needed), claim."""
    typed = account_settings(account)
    settings = policy.settings_from(typed.policy_section, typed.templates_section)
    now = clock.now()
    facts = policy_facts = gather(session, account, call, settings, now)
    decision = policy.decide(facts, settings)
    if facts.line_type is not None:
        call.line_type = facts.line_type  # known from the cache the facts were read with
    elif decision.texts and account_settings(account).policy.line_type_lookup:
        line_type = _line_type(runtime, session, account, call)
        if line_type is not None:
            call.line_type = line_type
            policy_facts = dataclasses.replace(facts, line_type=line_type)
            decision = policy.decide(policy_facts, settings)
    if decision.texts and not _claim_cooldown(session, account, call, settings.cooldown):
        decision = policy.Decision(
            policy.Action.SUPPRESS, policy.Reason.COOLDOWN,
            trace=decision.trace + (policy.RuleCheck(
                "cooldown claim", False, "another call from this number took the text"),),
        )
    if decision.reason is policy.Reason.BURST:
        call.burst_leader_id = policy_facts.burst_leader
    return decision


def send_text_back(runtime: JobContext, call_id: str) -> None:
    """Job: decide about a missed call and, when it is to be texted, text the caller once."""
    with runtime.db.job_session() as session:
        # Claimed and read in one statement: a call another worker texted a moment ago is
        # never taken on a stale reading.
        call = take_lease(session, _TEXT_BACK_LEASE, call_id)
        if call is None:
            return
        try:
            account = session.get(Account, call.account_id)
            assert account is not None  # noqa: S101 - foreign key
            _run(runtime, session, account, call)
            call.lease_until = None  # given back in the job's last write, not one of its own
            session.commit()
        except BaseException:
            session.rollback()  # nothing half-done is kept; the sweeper brings the call back
            release_lease(session, _TEXT_BACK_LEASE, call_id)
            raise
        to_crm = call.reason not in policy.NO_CRM_REASONS and call.state != CallState.DECIDED
        if call.state == CallState.TEXTED:
            _alert_owner(runtime, session, account, call)
    if to_crm:
        runtime.jobs.enqueue_crm_sync(call_id)


def _alert_owner(runtime: JobContext, session: Session, account: Account, call: Call) -> None:
    owner = owners(account).get(call.owner_id or "")
    if owner is not None:
        raise_alert(runtime, session, account, call, owner, "texted", key="texted")


def _run(runtime: JobContext, session: Session, account: Account, call: Call) -> None:
    if call.state == CallState.RECEIVED:
        sending = _decide_and_write_intent(runtime, session, account, call)
        if sending is not None:
            _send(runtime, session, account, call, sending, attempt_recorded=True)
            return
    if call.state == CallState.SCHEDULED:
        if call.send_at is not None and clock.now() < call.send_at - timedelta(seconds=1):
            runtime.jobs.enqueue_text_back(call.id, eta=call.send_at)
            return
        call.state = CallState.DECIDED  # committed with the send attempt, or the cancel
    if call.state == CallState.DECIDED:
        message = _text_of(session, call)
        if not _cancelled(session, account, call, message):
            _send(runtime, session, account, call, message)


def _decide_and_write_intent(runtime: JobContext, session: Session, account: Account, call: Call
                             ) -> Message | None:
    """Decide, and write the decision and the text's intent row in one commit; the text to send
    now, if any.

    A text to go now is checked for an opt-out, a call back or an answered call since the missed
    call before that commit, and its first send attempt is recorded in it, as :func:`_send`
    records one before every carrier call. A worker killed before that commit leaves the call
    "received", so the sweeper decides it again; one killed after it leaves a decided call whose
    text is reconciled with the carrier's records before it is sent again. A text held for later
    is written with no attempt, and checked again when it is due.
    """
    decision = decide_call(runtime, session, account, call)
    call.decision = decision.action.value
    call.reason = decision.reason.value
    call.decision_trace = [[c.rule, c.passed, c.facts] for c in decision.trace]
    if call.reason not in policy.NO_OWNER_REASONS:
        number = business_number_for(account, call)
        hours = BusinessHours.from_settings(account.timezone, account.settings.get("hours"))
        owner = choose_owner(session, account, number, hours.is_open(call.occurred_at, number))
        call.owner_id = owner.id if owner else None
    audit(session, call.id, "decided", f"{decision.action.value}: {decision.reason.value}"
          + (f"; owner {call.owner_id}" if call.owner_id else ""))
    if not decision.texts:
        call.state = CallState.SUPPRESSED
        session.commit()
        return None
    assert call.caller is not None and decision.scenario is not None  # noqa: S101
    business_number = business_number_for(account, call)
    now = clock.now()
    later = decision.send_at is not None and decision.send_at > now + timedelta(seconds=1)
    # Not flushing the decision before these reads: the commit below writes the call once.
    with session.no_autoflush:
        body, language = compose(session, account, call.caller, business_number,
                                 decision.scenario, now)
        cancel = None if later else _cancel_reason(session, account, call)
    call.scenario, call.language, call.send_at = decision.scenario, language, decision.send_at
    sending = not later and cancel is None
    message = Message(
        account_id=account.id, call_id=call.id, direction="outbound",
        purpose_key=Purpose.TEXT_BACK.key(call.id), customer=call.caller,
        business_number=business_number or "", body=body,
        status=MessageStatus.INTENT,
        send_attempts=1 if sending else 0, last_attempt_at=now if sending else None,
    )
    session.add(message)
    if later:
        assert decision.send_at is not None  # noqa: S101
        call.state = CallState.SCHEDULED
        call.next_attempt_at = decision.send_at
        audit(session, call.id, "text_scheduled", f"for {decision.send_at:%Y-%m-%d %H:%M} UTC")
    else:
        call.state = CallState.DECIDED
        audit(session, call.id, "text_intent", "intent written before the carrier call")
        if cancel is not None:
            _cancel(session, call, message, cancel)
    session.commit()
    if later:
        runtime.jobs.enqueue_text_back(call.id, eta=decision.send_at)
    return message if sending else None


# Built once, its values bound at each text, as the decision's facts are.
_CANCEL_FACTS = select(
    CALLER_OPTED_OUT,
    select(CallActivity.direction).where(
        CallActivity.account_id == bindparam("account_id"),
        CallActivity.customer == bindparam("caller"),
        CallActivity.at >= bindparam("since"),
    ).order_by(CallActivity.at).limit(1).scalar_subquery().label("answered"),
)


def _cancel_reason(session: Session, account: Account, call: Call) -> policy.Reason | None:
    """Why the caller's text should no longer go, read in one statement: the caller opted out,
    the business called back, or a later call got through; None when it should go."""
    assert call.caller is not None  # noqa: S101 - texts go to callers with a number
    found = session.execute(_CANCEL_FACTS, {
        "account_id": account.id, "caller": call.caller, "since": call.occurred_at,
    }).one()
    if found.opted_out:
        return policy.Reason.OPTED_OUT
    if found.answered == "outbound":
        return policy.Reason.CALLED_BACK
    if found.answered == "inbound":
        return policy.Reason.ANSWERED_LATER
    return None


def _cancelled(session: Session, account: Account, call: Call, message: Message) -> bool:
    """Cancel a text that should no longer go: opted out since, called back, got through."""
    if message.send_attempts > 0:
        return False  # it may have gone: the carrier's records settle it, not a cancel
    reason = _cancel_reason(session, account, call)
    if reason is None:
        return False
    _cancel(session, call, message, reason)
    return True


def _cancel(session: Session, call: Call, message: Message, reason: policy.Reason) -> None:
    message.status = MessageStatus.CANCELLED
    call.state, call.reason = CallState.CANCELLED, reason.value
    audit(session, call.id, "text_cancelled", reason.value)


def _text_of(session: Session, call: Call) -> Message:
    message = session.scalar(
        select(Message).where(
            Message.account_id == call.account_id, Message.purpose_key == Purpose.TEXT_BACK.key(call.id)
        )
    )
    assert message is not None  # noqa: S101 - written with the decision
    return message


class Reconciled(Enum):
    """What reconciling an unsettled send found, when it found no text."""

    WAIT = "wait"  # too early to tell, or the carrier cannot say: try later
    ABSENT = "absent"  # the carrier has no such text: safe to send


def _send(runtime: JobContext, session: Session, account: Account, call: Call, message: Message,
          *, attempt_recorded: bool = False) -> None:
    """Send the text; an attempt is committed before the carrier is called (``attempt_recorded``:
    the decision's commit recorded it), and one whose outcome is unknown is reconciled first."""
    carrier = runtime.sms_carrier_for(account)
    if not attempt_recorded:
        if message.send_attempts > 0 and message.status in (MessageStatus.INTENT,
                                                            MessageStatus.AMBIGUOUS):
            found = _reconcile(runtime, session, call, message)
            if found is Reconciled.WAIT:
                return  # rescheduled, or waiting for the carrier's status callback
            if isinstance(found, SendResult):
                _mark_sent(session, call, message, found, "reconciled: the carrier had sent it")
                return
        message.send_attempts += 1
        message.last_attempt_at = clock.now()
        session.commit()
    status_url = runtime.webhook_url(carrier.name, account.id, "status")
    try:
        result = call_with_retries(
            lambda: carrier.send_sms(
                to=message.customer, from_=message.business_number, body=message.body,
                status_callback_url=status_url,
            ),
            retry_ambiguous=False,
        )
    except TransientProviderError as exc:
        if exc.ambiguous:
            message.status = MessageStatus.AMBIGUOUS
            audit(session, call.id, "text_ambiguous", f"{type(exc).__name__}; will reconcile")
            runtime.jobs.enqueue_text_back(call.id, delay=RECONCILE_AFTER.total_seconds())
            return
        _mark_failed(session, call, message, exc, retry=True)
        return
    except RecipientRejectedError as exc:
        if exc.reason == "opted_out":
            record_opt_out(session, account.id, message.customer, f"carrier:{exc.code}",
                           message.business_number)
        _mark_failed(session, call, message, exc, retry=False)
        return
    except ProviderError as exc:
        _mark_failed(session, call, message, exc, retry=False)
        return
    _mark_sent(session, call, message, result, "carrier accepted the text")
    observe_text_latency((clock.now() - call.occurred_at).total_seconds())


def _reconcile(
    runtime: JobContext, session: Session, call: Call, message: Message
) -> SendResult | Reconciled:
    """The carrier's record of the text when it has one, else whether to send or wait."""
    last = message.last_attempt_at or message.created_at
    if clock.now() - last < RECONCILE_AFTER:
        runtime.jobs.enqueue_text_back(call.id, delay=RECONCILE_AFTER.total_seconds())
        return Reconciled.WAIT
    account = session.get(Account, call.account_id)
    assert account is not None  # noqa: S101
    carrier = runtime.sms_carrier_for(account)
    try:
        found = call_with_retries(
            lambda: carrier.find_sent_message(
                to=message.customer, from_=message.business_number, body=message.body,
                sent_after=last - timedelta(minutes=2),
            )
        )
    except (NotImplementedError, ProviderAuthError, PermanentProviderError) as exc:
        # The carrier cannot (or will not let us) list texts: its status callback settles it.
        message.status = MessageStatus.AMBIGUOUS
        call.state = CallState.TEXTED
        audit(session, call.id, "text_ambiguous",
              f"cannot list texts ({type(exc).__name__}); awaiting the status callback")
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
    message.status = MessageStatus.SENT
    message.carrier_message_id = result.message_id
    message.segments = result.segments
    call.state = CallState.TEXTED
    audit(session, call.id, "texted", detail)
    log.info("text-back sent call=%s to=%s", call.id, mask(message.customer))


def _mark_failed(
    session: Session, call: Call, message: Message, exc: ProviderError, *, retry: bool
) -> None:
    detail = f"{type(exc).__name__} code={exc.code or '-'}"
    if retry and message.send_attempts < 5:
        message.status = MessageStatus.INTENT
        call.next_attempt_at = clock.now() + timedelta(seconds=30 * message.send_attempts)
        call.last_error = detail
        audit(session, call.id, "text_retry_later", detail)
        return
    message.status = MessageStatus.FAILED
    message.error_code = exc.code
    call.state = CallState.TEXT_FAILED
    call.last_error = detail
    audit(session, call.id, "text_failed", detail)
