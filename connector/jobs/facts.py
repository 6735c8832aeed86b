"""Gather what the policy needs to know about a missed call: the I/O half of the decision.

Each fact is one indexed read (primary keys or the ``(account, caller, time)`` index), so a
decision stays fast with many opt-outs and calls stored; ``bench/policy_decision.py`` measures it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as number_timezones
from sqlalchemy import bindparam, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from connector.domain.hours import BusinessHours
from connector.domain.policy import CallFacts, PolicySettings
from connector.kernel import clock
from connector.kernel.events import CallOutcome
from connector.kernel.phone import region_of
from connector.settings.account_settings import account_settings
from connector.storage.models import (
    Account,
    Call,
    CallerState,
    ContactProfile,
    LineType,
    Message,
    OptOut,
    UTCDateTime,
)
from connector.storage.states import Purpose

#: Earlier calls a repeat call inside the burst window is folded into: the ones with a task.
BURST_LEADER_REASONS = frozenset({"missed", "cooldown", "landline", "opted_out"})


def business_number_for(account: Account, call: Call) -> str | None:
    """The number the text goes out from: the one that was called, if it is the account's."""
    numbers = account_settings(account).carrier.numbers
    if call.called in numbers:
        return call.called
    return numbers[0] if numbers else None


def recipient_zone(number: str | None, fallback: ZoneInfo) -> ZoneInfo:
    """The caller's time zone from the number's country and area code, when it has just one."""
    if not number:
        return fallback
    try:
        zones = number_timezones.time_zones_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return fallback
    usable = [z for z in zones if z != "Etc/Unknown"]
    if len(usable) == 1:
        return ZoneInfo(usable[0])
    # Several zones (a country-wide or ambiguous prefix): only trust them if they agree now.
    if usable:
        current = clock.now()
        offsets = {current.astimezone(ZoneInfo(z)).utcoffset() for z in usable}
        if len(offsets) == 1:
            return ZoneInfo(usable[0])
    return fallback


def is_opted_out(session: Session, account_id: str, number: str | None) -> bool:
    """True when the number has opted out of this business's texts."""
    return bool(number) and session.get(OptOut, (account_id, number)) is not None


#: Whether the bound ``caller`` opted out of the bound ``account_id``'s texts: a column for the
#: statements below and the text's last check before it goes.
CALLER_OPTED_OUT = select(OptOut.number).where(
    OptOut.account_id == bindparam("account_id"), OptOut.number == bindparam("caller"),
).exists().label("opted_out")

# The per-caller facts in one round trip: each is a keyed or indexed lookup. Both statements are
# built once, with their values bound at each decision: built anew for every call, making one and
# computing its cache key cost more CPU than running it.
_CALLER_FACTS = select(
    CALLER_OPTED_OUT,
    select(CallerState.last_text_at).where(
        CallerState.account_id == bindparam("account_id"),
        CallerState.number == bindparam("caller"),
        or_(CallerState.last_text_call_id.is_(None),
            CallerState.last_text_call_id != bindparam("call_id")),
    ).scalar_subquery().label("last_text_at"),
    select(ContactProfile.automation_paused).where(
        ContactProfile.account_id == bindparam("account_id"),
        ContactProfile.number == bindparam("caller"),
    ).scalar_subquery().label("paused"),
    select(Message.id).where(
        Message.account_id == bindparam("account_id"), Message.customer == bindparam("caller"),
        Message.purpose_key.startswith(Purpose.HUMAN.prefix),
        Message.created_at >= bindparam("human_since"),
    ).exists().label("human"),
    select(LineType.line_type).where(
        LineType.account_id == bindparam("account_id"), LineType.number == bindparam("caller"),
        LineType.looked_up_at >= bindparam("line_type_since"),
    ).scalar_subquery().label("line_type"),
)
# One read of this caller's calls in the burst window serves the burst and the spam rules.
_RECENT_CALLS = (
    select(Call.id, Call.reason, Call.outcome, Call.ring_seconds, Call.occurred_at)
    .where(
        Call.account_id == bindparam("account_id"),
        Call.caller == bindparam("caller"),
        Call.occurred_at >= bindparam("since"),
        Call.occurred_at <= bindparam("until"),
    )
    .order_by(Call.occurred_at)
    .limit(200)
)


def gather(
    session: Session,
    account: Account,
    call: Call,
    settings: PolicySettings,
    now: datetime,
    *,
    line_type: str | None = None,
) -> CallFacts:
    """The facts about ``call`` at ``now``."""
    tz = ZoneInfo(account.timezone)
    hours = BusinessHours.from_settings(account.timezone, account.settings.get("hours"))
    business_number = business_number_for(account, call)
    caller = call.caller
    last_text_at = burst_leader = None
    short_calls = 0
    human = opted_out = paused = False
    if caller:
        options = account_settings(account).policy
        human_window = timedelta(hours=options.human_conversation_hours)
        line_type_ttl = timedelta(days=options.line_type_ttl_days)
        row = session.execute(_CALLER_FACTS, {
            "account_id": account.id, "caller": caller, "call_id": call.id,
            "human_since": now - human_window, "line_type_since": now - line_type_ttl,
        }).one()
        if line_type is None:
            line_type = row.line_type  # a lookup within its TTL; None means look it up
        opted_out, paused, human = bool(row.opted_out), bool(row.paused), bool(row.human)
        last_text_at = row.last_text_at
        if last_text_at is not None and last_text_at.tzinfo is None:  # SQLite keeps no zone
            last_text_at = last_text_at.replace(tzinfo=UTC)
        recent = session.execute(_RECENT_CALLS, {
            "account_id": account.id, "caller": caller,
            "since": call.occurred_at - settings.burst_window, "until": call.occurred_at,
        }).all()
        burst_leader = next(
            (r.id for r in recent if r.id != call.id and r.reason in BURST_LEADER_REASONS), None
        )
        short_calls = sum(
            1 for r in recent
            if r.outcome == CallOutcome.CANCELED.value
            and r.ring_seconds is not None and r.ring_seconds < settings.min_ring_seconds
        )
    return CallFacts(
        outcome=CallOutcome(call.outcome),
        caller=caller,
        caller_country=region_of(caller) if caller else None,
        business_number=business_number,
        ring_seconds=call.ring_seconds,
        voicemail=call.voicemail,
        attestation=call.attestation,
        now=now,
        business_open=hours.is_open(call.occurred_at, business_number),
        opted_out=opted_out,
        last_text_at=last_text_at,
        burst_leader=burst_leader,
        short_calls_recent=int(short_calls),
        in_human_conversation=human,
        recipient_tz=recipient_zone(caller, tz),
        line_type=line_type,
        automation_paused=paused,
    )


def cached_line_type(
    session: Session, account_id: str, number: str, ttl: timedelta, now: datetime
) -> str | None:
    """A line type looked up within the TTL, else None."""
    row = session.get(LineType, (account_id, number))
    if row is None or now - row.looked_up_at > ttl:
        return None
    return row.line_type


# Insert the number's row, or replace the one there (expired, or stored by another worker that
# looked the same number up a moment ago): one statement, valid on SQLite 3.24+ and PostgreSQL.
_REMEMBER_LINE_TYPE = text(
    "INSERT INTO line_types (account_id, number, line_type, looked_up_at) "
    "VALUES (:account_id, :number, :line_type, :now) "
    "ON CONFLICT (account_id, number) DO UPDATE SET "
    "line_type = excluded.line_type, looked_up_at = excluded.looked_up_at"
).bindparams(bindparam("now", type_=UTCDateTime()))


def remember_line_type(session: Session, account_id: str, number: str, line_type: str,
                       now: datetime) -> None:
    """Cache a lookup result (replacing an expired one); the caller commits."""
    session.execute(_REMEMBER_LINE_TYPE, {"account_id": account_id, "number": number,
                                          "line_type": line_type, "now": now})
    cached = session.identity_map.get(identity_key(LineType, (account_id, number)))
    if cached is not None:  # read earlier in this session: let the next read see the new row
        session.expire(cached)


def contact_profile(session: Session, account_id: str, number: str) -> ContactProfile | None:
    """What the CRM told us about the caller, if anything."""
    return session.get(ContactProfile, (account_id, number))
