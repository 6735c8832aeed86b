"""Who gets a text, what it says, and when: one pure function over facts gathered beforehand.

No I/O in here. :func:`decide` walks the rules in order; the first that stops the text gives the
reason code stored on the call, and every rule it checked is kept in the trace that
``textback explain`` prints, with the facts it used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from connector.kernel.events import CallOutcome

#: Calls suppressed for these reasons never reach the CRM (noise, or nobody to file them under).
NO_CRM_REASONS = frozenset({"caller_withheld", "internal_number", "blocklisted", "misdial"})
#: ... and these get no owner of their own (spam, or folded into an earlier call's task).
NO_OWNER_REASONS = NO_CRM_REASONS | {"likely_spam", "burst"}


class Action(StrEnum):
    """What to do about a missed call."""

    TEXT = "text"
    SUPPRESS = "suppress"


class Reason(StrEnum):
    """Why; stored on the call. ``MISSED`` is the reason a call is texted."""

    MISSED = "missed"
    CALLER_WITHHELD = "caller_withheld"
    INTERNAL_NUMBER = "internal_number"
    BLOCKLISTED = "blocklisted"
    COUNTRY_NOT_TEXTED = "country_not_texted"
    UNKNOWN_OUTCOME = "unknown_outcome"
    OUTCOME_NOT_TEXTED = "outcome_not_texted"
    MISDIAL = "misdial"
    LIKELY_SPAM = "likely_spam"
    OPTED_OUT = "opted_out"
    BURST = "burst"
    COOLDOWN = "cooldown"
    IN_CONVERSATION = "in_conversation"
    AUTOMATION_PAUSED = "automation_paused"
    LANDLINE = "landline"
    NO_BUSINESS_NUMBER = "no_business_number"
    # After the decision, before the (delayed or held) text went out:
    CALLED_BACK = "called_back"  # the business called the customer back and got through
    ANSWERED_LATER = "answered_later"  # the customer called again and someone answered


#: Line types that cannot take a text (Twilio Lookup v2 ``line_type_intelligence.type``).
UNTEXTABLE_LINE_TYPES = frozenset(
    {"landline", "tollFree", "premium", "sharedCost", "uan", "voicemail", "pager"}
)
# STIR/SHAKEN results (Twilio's StirVerstat) that mean the caller ID was not vouched for.
# https://www.twilio.com/docs/voice/trusted-calling-with-shakenstir
_FAILED_ATTESTATION = ("TN-Validation-Failed",)
_UNATTESTED = ("No-TN-Validation",)


@dataclass(frozen=True)
class PolicySettings:
    """An account's ``policy`` section, parsed."""

    texted_outcomes: frozenset[CallOutcome]
    min_ring_seconds: float = 3.0
    cooldown: timedelta = timedelta(hours=24)
    burst_window: timedelta = timedelta(minutes=15)
    text_countries: frozenset[str] = frozenset({"US", "CA"})
    internal_numbers: frozenset[str] = frozenset()
    blocklist: frozenset[str] = frozenset()
    spam_on_failed_attestation: bool = True
    spam_on_unattested: bool = True
    spam_short_calls: int = 2  # this many calls under min_ring_seconds in the burst window
    send_delay: timedelta = timedelta(0)
    quiet_start: time = time(8, 0)
    quiet_end: time = time(21, 0)
    quiet_hours_mode: str = "send"  # "send": the customer called first; "hold": wait for morning
    voicemail_scenario: str | None = None
    missed_call_scenario: str = "general"
    after_hours_scenario: str = "after_hours"


@dataclass(frozen=True)
class CallFacts:
    """Everything known about a missed call when it is decided (gathered by ``connector.jobs.facts``)."""

    outcome: CallOutcome
    caller: str | None
    caller_country: str | None
    business_number: str | None
    ring_seconds: float | None
    voicemail: bool
    attestation: str | None
    now: datetime
    business_open: bool
    opted_out: bool
    last_text_at: datetime | None
    burst_leader: str | None  # an earlier missed call from this caller inside the burst window
    short_calls_recent: int
    in_human_conversation: bool
    recipient_tz: ZoneInfo
    line_type: str | None = None  # None: not looked up (yet)
    automation_paused: bool = False


@dataclass(frozen=True)
class RuleCheck:
    """One rule as :func:`decide` checked it: did the text survive it, and on what facts."""

    rule: str
    passed: bool
    facts: str


@dataclass(frozen=True)
class Decision:
    """The verdict, its reason, the template scenario and when to send."""

    action: Action
    reason: Reason
    scenario: str | None = None
    send_at: datetime | None = None
    trace: tuple[RuleCheck, ...] = field(default_factory=tuple)

    @property
    def texts(self) -> bool:
        """True when a text goes out."""
        return self.action is Action.TEXT


def is_likely_spam(facts: CallFacts, settings: PolicySettings) -> str | None:
    """Why the call looks like spam or a robocall, or None."""
    verstat = facts.attestation or ""
    if settings.spam_on_failed_attestation and verstat.startswith(_FAILED_ATTESTATION):
        return f"caller ID attestation failed ({verstat})"
    if settings.spam_on_unattested and verstat.startswith(_UNATTESTED):
        return f"caller ID not attested ({verstat})"
    if facts.short_calls_recent >= settings.spam_short_calls:
        return f"{facts.short_calls_recent} calls shorter than {settings.min_ring_seconds:g} s"
    return None


def _send_time(facts: CallFacts, settings: PolicySettings) -> tuple[datetime, str]:
    planned = facts.now + settings.send_delay
    local = planned.astimezone(facts.recipient_tz)
    clock = local.time()
    if settings.quiet_start <= settings.quiet_end:
        inside = settings.quiet_start <= clock < settings.quiet_end
    else:  # a window that runs past midnight, such as 22:00-02:00
        inside = clock >= settings.quiet_start or clock < settings.quiet_end
    # ``quiet_hours.start``-``end`` is when texts may go out; quiet hours are the rest.
    window = f"texts go out {settings.quiet_start:%H:%M}-{settings.quiet_end:%H:%M}"
    if inside:
        return planned, f"{local:%H:%M} in {facts.recipient_tz.key}, not in quiet hours ({window})"
    where = f"{local:%H:%M} in {facts.recipient_tz.key}, in quiet hours ({window})"
    if settings.quiet_hours_mode == "send":
        return planned, where + "; sent anyway: the customer called first"
    # Outside the window: hold to the next time it opens, today or tomorrow.
    start = local.replace(hour=settings.quiet_start.hour, minute=settings.quiet_start.minute,
                          second=0, microsecond=0)
    if start <= local:
        start += timedelta(days=1)
    return start, where + f"; held to {start:%Y-%m-%d %H:%M}"


def decide(facts: CallFacts, settings: PolicySettings) -> Decision:
    """Decide whether a missed call gets a text, which one, and when."""
    trace: list[RuleCheck] = []

    def check(rule: str, ok: bool, detail: str) -> bool:
        trace.append(RuleCheck(rule, ok, detail))
        return ok

    def stop(reason: Reason) -> Decision:
        return Decision(Action.SUPPRESS, reason, trace=tuple(trace))

    outcome = CallOutcome.AFTER_HOURS if not facts.business_open else facts.outcome
    if not check("caller ID present", facts.caller is not None,
                 "the carrier sent a valid number" if facts.caller else "withheld or invalid"):
        return stop(Reason.CALLER_WITHHELD)
    caller = facts.caller or ""
    if not check("not a team number", caller not in settings.internal_numbers,
                 "the caller is on the account's team list" if caller in settings.internal_numbers
                 else "not on the team list"):
        return stop(Reason.INTERNAL_NUMBER)
    if not check("not blocklisted", caller not in settings.blocklist,
                 "on the blocklist" if caller in settings.blocklist else "not on the blocklist"):
        return stop(Reason.BLOCKLISTED)
    if not check("country is texted", facts.caller_country in settings.text_countries,
                 f"caller country {facts.caller_country}; texted: "
                 f"{', '.join(sorted(settings.text_countries))}"):
        return stop(Reason.COUNTRY_NOT_TEXTED)
    if not check("outcome known", facts.outcome is not CallOutcome.UNKNOWN,
                 f"carrier outcome {facts.outcome.value}"):
        return stop(Reason.UNKNOWN_OUTCOME)
    if not check(
        "outcome is texted", outcome in settings.texted_outcomes or (
            facts.voicemail and CallOutcome.VOICEMAIL in settings.texted_outcomes
            and facts.business_open),
        f"{outcome.value}" + (" (business closed)" if not facts.business_open else "")
        + f"; texted: {', '.join(sorted(o.value for o in settings.texted_outcomes))}",
    ):
        return stop(Reason.OUTCOME_NOT_TEXTED)
    misdial = (
        facts.outcome is CallOutcome.CANCELED
        and facts.ring_seconds is not None
        and facts.ring_seconds < settings.min_ring_seconds
    )
    if facts.outcome is not CallOutcome.CANCELED:
        rang = f"{facts.outcome.value}: only a hang-up while ringing can be a misdial"
    elif facts.ring_seconds is None:
        rang = "hung up while ringing; the carrier sent no ring time, so not taken for a misdial"
    else:
        rang = (f"hung up after {facts.ring_seconds:g} s of ringing; a hang-up under "
                f"{settings.min_ring_seconds:g} s is a misdial")
    if not check("not a misdial", not misdial, rang):
        return stop(Reason.MISDIAL)
    spam = is_likely_spam(facts, settings)
    if not check("not likely spam", spam is None, spam or
                 f"attestation {facts.attestation or 'none'}; "
                 f"{facts.short_calls_recent} short call(s) recently"):
        return stop(Reason.LIKELY_SPAM)
    if not check("not opted out", not facts.opted_out,
                 "the number opted out" if facts.opted_out else "no opt-out on record"):
        return stop(Reason.OPTED_OUT)
    if not check("not part of a burst", facts.burst_leader is None,
                 f"called again within {settings.burst_window}; coalesced into call "
                 f"{facts.burst_leader}" if facts.burst_leader else
                 f"no other missed call within {settings.burst_window}"):
        return stop(Reason.BURST)
    recent = facts.last_text_at is not None and facts.now - facts.last_text_at < settings.cooldown
    if not check("cooldown passed", not recent,
                 f"last texted {facts.last_text_at:%Y-%m-%d %H:%M} UTC; cooldown "
                 f"{settings.cooldown}" if facts.last_text_at else "never texted"):
        return stop(Reason.COOLDOWN)
    if not check("no conversation with a human", not facts.in_human_conversation,
                 "a team member is talking with the caller" if facts.in_human_conversation
                 else "no human conversation under way"):
        return stop(Reason.IN_CONVERSATION)
    if not check("automation not paused", not facts.automation_paused,
                 "a team member paused automated texts to this caller" if facts.automation_paused
                 else "not paused"):
        return stop(Reason.AUTOMATION_PAUSED)
    untextable = facts.line_type in UNTEXTABLE_LINE_TYPES
    if not check("can take texts", not untextable,
                 f"line type {facts.line_type or 'not looked up'}"):
        return stop(Reason.LANDLINE)
    if not check("business number to text from", facts.business_number is not None,
                 "the called number is the account's" if facts.business_number
                 else "the account has no number"):
        return stop(Reason.NO_BUSINESS_NUMBER)

    if not facts.business_open:
        scenario = settings.after_hours_scenario
    elif facts.voicemail and settings.voicemail_scenario:
        scenario = settings.voicemail_scenario
    else:
        scenario = settings.missed_call_scenario
    send_at, when = _send_time(facts, settings)
    check("send time", True, f"delay {settings.send_delay}; {when}")
    return Decision(Action.TEXT, Reason.MISSED, scenario, send_at, tuple(trace))


def settings_from(policy: Mapping[str, Any], templates: Mapping[str, Any]) -> PolicySettings:
    """Parse an account's ``policy`` and ``templates`` sections, loaded through their schemas
    (which fill every default: none is restated here)."""
    quiet = policy["quiet_hours"]
    return PolicySettings(
        texted_outcomes=frozenset(CallOutcome(o) for o in policy["texted_outcomes"]),
        min_ring_seconds=float(policy["min_ring_seconds"]),
        cooldown=timedelta(hours=float(policy["cooldown_hours"])),
        burst_window=timedelta(minutes=float(policy["burst_window_minutes"])),
        text_countries=frozenset(policy["text_countries"]),
        internal_numbers=frozenset(policy["internal_numbers"]),
        blocklist=frozenset(policy["blocklist"]),
        spam_on_failed_attestation=bool(policy["spam"]["failed_attestation"]),
        spam_on_unattested=bool(policy["spam"]["unattested"]),
        spam_short_calls=int(policy["spam"]["short_calls"]),
        send_delay=timedelta(seconds=float(policy["send_delay_seconds"])),
        quiet_start=time.fromisoformat(quiet["start"]),
        quiet_end=time.fromisoformat(quiet["end"]),
        quiet_hours_mode=quiet["mode"],
        voicemail_scenario=templates["voicemail"],
        missed_call_scenario=templates["missed_call"],
        after_hours_scenario=templates["after_hours"],
    )

