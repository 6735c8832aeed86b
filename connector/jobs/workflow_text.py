"""Texts a CRM workflow asks for (HubSpot's "Send a text with textback" action).

The same rules as every text, for a message nobody called about: never to an opted-out, blocked
or team number, never outside the account's texting window in the customer's time zone (the
customer did not call first), never to a landline, and, when the workflow says so, not to a
number texted within the account's cooldown. A run that passes is written as an intent row keyed
on the CRM's callback id (``workflow:<crm>:<callback id>``), so a retried request sends once;
the send is a job that checks opt-out and line type once more, sends like every reply (an
ambiguous send is never repeated), logs the text on the contact and completes the CRM's run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain import policy
from connector.jobs import replies
from connector.jobs.compose import account_texts, compose
from connector.jobs.facts import (
    cached_line_type,
    is_opted_out,
    recipient_zone,
    remember_line_type,
)
from connector.jobs.steps import call_with_retries, get_link, set_link
from connector.kernel import clock
from connector.kernel.errors import ProviderError
from connector.kernel.phone import mask, region_of
from connector.settings.account_settings import account_settings
from connector.storage.models import Account, CallerState, ContactProfile, CrmLink, Message
from connector.storage.states import MessageStatus, Purpose

if TYPE_CHECKING:
    from connector.jobs.context import JobContext

log = logging.getLogger(__name__)

SENT, SUPPRESSED, FAILED = "sent", "suppressed", "failed"
#: ``crm_links.object_type`` of a completed run (so it is completed once).
COMPLETED = "action_completed"
#: Message statuses that mean the carrier took the text.
TAKEN = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.QUEUED,
                   MessageStatus.READ})


@dataclass(frozen=True)
class TextRequest:
    """What the workflow asked: the contact's number (E.164, None when it has none we can
    text), a template name or a message of its own, the number to send from (None: the
    account's first), and whether to respect the cooldown."""

    crm: str
    callback_id: str
    contact_id: str
    number: str | None
    template: str | None
    message: str | None
    business_number: str | None
    respect_cooldown: bool

    def __repr__(self) -> str:
        return f"TextRequest(callback_id={self.callback_id!r}, number={mask(self.number)})"


@dataclass(frozen=True)
class Outcome:
    """The run's answer: ``status`` sent, suppressed or failed, and ``reason`` when not sent."""

    status: str
    reason: str = ""

    def outputs(self) -> dict[str, str]:
        """The CRM's output fields."""
        return {"status": self.status, "reason": self.reason}


def purpose_key(crm: str, callback_id: str) -> str:
    """The intent row's key: one text per run of the action."""
    return Purpose.WORKFLOW.key(crm, callback_id)[:240]


def _outside_window(account: Account, number: str, now: datetime) -> str | None:
    typed = account_settings(account)
    settings = policy.settings_from(typed.policy_section, typed.templates_section)
    local = now.astimezone(recipient_zone(number, ZoneInfo(account.timezone)))
    start, end = settings.quiet_start, settings.quiet_end
    inside = start <= local.time() < end if start <= end else \
        (local.time() >= start or local.time() < end)
    return None if inside else f"quiet_hours: {local:%H:%M} for the customer, texts " \
                               f"{start:%H:%M}-{end:%H:%M}"


def check(session: Session, account: Account, req: TextRequest, now: datetime, *,
          line_type: str | None) -> Outcome | None:
    """Why the text must not go (an :class:`Outcome`), or None when it may."""
    typed = account_settings(account)
    settings = policy.settings_from(typed.policy_section, typed.templates_section)
    numbers = typed.carrier.numbers
    if not req.template and not (req.message or "").strip():
        return Outcome(FAILED, "choose a template or write a message")
    if req.template and req.template not in account_texts(account):
        return Outcome(FAILED, f"no template named {req.template}")
    if req.number is None:
        return Outcome(FAILED, "the contact has no phone number to text")
    if req.business_number and req.business_number not in numbers:
        return Outcome(FAILED, f"{req.business_number} is not one of the account's numbers")
    if not numbers:
        return Outcome(FAILED, policy.Reason.NO_BUSINESS_NUMBER.value)
    if region_of(req.number) not in settings.text_countries:
        return Outcome(SUPPRESSED, policy.Reason.COUNTRY_NOT_TEXTED.value)
    if req.number in settings.internal_numbers:
        return Outcome(SUPPRESSED, policy.Reason.INTERNAL_NUMBER.value)
    if req.number in settings.blocklist:
        return Outcome(SUPPRESSED, policy.Reason.BLOCKLISTED.value)
    if is_opted_out(session, account.id, req.number):
        return Outcome(SUPPRESSED, policy.Reason.OPTED_OUT.value)
    profile = session.get(ContactProfile, (account.id, req.number))
    if profile is not None and profile.automation_paused:
        return Outcome(SUPPRESSED, policy.Reason.AUTOMATION_PAUSED.value)
    if req.respect_cooldown:
        state = session.get(CallerState, (account.id, req.number))
        last = state.last_text_at if state is not None else None
        if last is not None and now - last < settings.cooldown:
            return Outcome(SUPPRESSED, policy.Reason.COOLDOWN.value)
    if line_type in policy.UNTEXTABLE_LINE_TYPES:
        return Outcome(SUPPRESSED, policy.Reason.LANDLINE.value)
    window = _outside_window(account, req.number, now)
    if window is not None:
        return Outcome(SUPPRESSED, window)
    return None


def outcome_of(message: Message) -> Outcome | None:
    """The run's outcome from its intent row; None while the text is on its way."""
    if message.status == MessageStatus.INTENT:
        return None
    if message.status in TAKEN:
        return Outcome(SENT)
    if message.status == MessageStatus.AMBIGUOUS:
        return Outcome(SENT, "the carrier did not confirm the text; it may not arrive")
    if message.status == MessageStatus.CANCELLED:
        return Outcome(SUPPRESSED, message.error_code or "")
    return Outcome(FAILED, f"the carrier refused the text (code {message.error_code or '-'})")


def start(runtime: JobContext, account_id: str, req: TextRequest) -> Outcome | str:
    """Check the run and write its intent row: the outcome when no text goes, else the row's id
    (enqueue :func:`run` with it). A retried request finds the row the first one wrote."""
    now = clock.now()
    with runtime.db.session() as session:
        account = session.get(Account, account_id)
        if account is None:
            return Outcome(FAILED, "no such account")
        key = purpose_key(req.crm, req.callback_id)
        earlier = _intent(session, account_id, key)
        if earlier is not None:
            return outcome_of(earlier) or earlier.id
        ttl = timedelta(days=account_settings(account).policy.line_type_ttl_days)
        known = cached_line_type(session, account_id, req.number, ttl, now) if req.number else None
        refused = check(session, account, req, now, line_type=known)
        if refused is not None:
            log.info("workflow text not sent account=%s: %s", account_id, refused.status)
            return refused
        assert req.number is not None  # noqa: S101 - checked
        sender = req.business_number or account_settings(account).carrier.numbers[0]
        body, _ = compose(session, account, req.number, sender, req.template or "general", now,
                          text=None if req.template else req.message)
        message = Message(account_id=account_id, direction="outbound", purpose_key=key,
                          customer=req.number, business_number=sender, body=body,
                          status=MessageStatus.INTENT)
        session.add(message)
        try:
            session.commit()
        except IntegrityError:  # the same run, retried at the same moment
            session.rollback()
            earlier = _intent(session, account_id, key)
            assert earlier is not None  # noqa: S101
            return outcome_of(earlier) or earlier.id
        return message.id


def number_of_contact(session: Session, account_id: str, crm: str, contact_id: str) -> str | None:
    """The number textback linked a CRM contact to (its ``contact`` link), if any."""
    return session.scalar(select(CrmLink.local_key).where(
        CrmLink.account_id == account_id, CrmLink.crm == crm, CrmLink.object_type == "contact",
        CrmLink.crm_id == contact_id).limit(1))


def _intent(session: Session, account_id: str, key: str) -> Message | None:
    return session.scalar(select(Message).where(Message.account_id == account_id,
                                                Message.purpose_key == key))


def _line_type(runtime: JobContext, session: Session, account: Account, number: str
               ) -> str | None:
    """The number's line type from the cache, else one carrier lookup when the account wants it."""
    options = account_settings(account).policy
    now = clock.now()
    known = cached_line_type(session, account.id, number, timedelta(days=options.line_type_ttl_days),
                             now)
    if known is not None or not options.line_type_lookup:
        return known
    carrier = runtime.sms_carrier_for(account)
    try:
        found = call_with_retries(lambda: carrier.lookup_line_type(number))
    except (NotImplementedError, ProviderError):
        return None
    if found:
        remember_line_type(session, account.id, number, found, now)
        session.commit()
    return found


def run(runtime: JobContext, message_id: str) -> None:
    """Job: check the text once more, send it once, complete the CRM's run once."""
    with runtime.db.session() as session:
        message = session.get(Message, message_id)
        if message is None:
            return
        account = session.get(Account, message.account_id)
        assert account is not None  # noqa: S101
        _, crm_name, callback_id = message.purpose_key.split(":", 2)
        if message.status == MessageStatus.INTENT and message.send_attempts == 0:
            reason = None
            if is_opted_out(session, account.id, message.customer):
                reason = policy.Reason.OPTED_OUT.value
            elif _line_type(runtime, session, account, message.customer) in \
                    policy.UNTEXTABLE_LINE_TYPES:
                reason = policy.Reason.LANDLINE.value
            if reason is not None:
                message.status, message.error_code = MessageStatus.CANCELLED, reason
                log.info("workflow text withheld account=%s: %s", account.id, reason)
            session.commit()
            if reason is None:
                replies.send_reply(runtime, message_id)  # once; logged on the contact when sent
        session.expire_all()
        message = session.get(Message, message_id)
        assert message is not None  # noqa: S101
        outcome = outcome_of(message)
        if outcome is None:
            return  # another worker is sending it; it completes the run
        if outcome.status == SENT:
            _remember_text(session, account.id, message.customer)
        _complete(runtime, session, account, crm_name, callback_id, outcome)


def _remember_text(session: Session, account_id: str, number: str) -> None:
    """The number was texted now: the cooldown of later texts counts from here."""
    state = session.get(CallerState, (account_id, number))
    if state is None:
        try:
            with session.begin_nested():
                session.add(CallerState(account_id=account_id, number=number,
                                        last_text_at=clock.now()))
        except IntegrityError:
            state = session.get(CallerState, (account_id, number), populate_existing=True)
    if state is not None:
        state.last_text_at = clock.now()
    session.commit()


def _complete(runtime: JobContext, session: Session, account: Account, crm_name: str,
              callback_id: str, outcome: Outcome) -> None:
    if get_link(session, account.id, crm_name, COMPLETED, callback_id) is not None:
        return
    crm = runtime.crm_for(account)
    session.commit()
    call_with_retries(lambda: crm.complete_action(callback_id, outcome.outputs()))
    set_link(session, account.id, crm_name, COMPLETED, callback_id, outcome.status)
    session.commit()
    log.info("workflow text run completed crm=%s account=%s status=%s", crm_name, account.id,
             outcome.status)


def unfinished(session: Session, since: datetime, idle_before: datetime) -> list[str]:
    """Workflow texts whose run is not completed yet, idle since ``idle_before``: for the
    sweeper (a crash between the intent and the completion loses nothing)."""
    rows = session.execute(select(Message.id, Message.account_id, Message.purpose_key).where(
        Message.purpose_key.startswith(Purpose.WORKFLOW.prefix),
        Message.created_at > since, Message.updated_at < idle_before,
        or_(Message.lease_until.is_(None), Message.lease_until < clock.now()),
    )).all()
    pending = []
    for message_id, account_id, key in rows:
        _, crm_name, callback_id = key.split(":", 2)
        if get_link(session, account_id, crm_name, COMPLETED, callback_id) is None:
            pending.append(message_id)
    return pending
