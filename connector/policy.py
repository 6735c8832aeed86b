"""Who gets a text: one pure function over facts gathered beforehand (no I/O in here).

Every decision carries a reason code that is stored on the call and shown by ``textback explain``.
The fuller policy (hours, templates per scenario, landlines, spam, quiet hours) builds on this.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from connector.events import CallOutcome


class Action(StrEnum):
    """What to do about a missed call."""

    TEXT = "text"
    SUPPRESS = "suppress"


class Reason(StrEnum):
    """Why; stored on the call."""

    MISSED = "missed"  # texted: the call was missed and nothing stood in the way
    CALLER_WITHHELD = "caller_withheld"
    OPTED_OUT = "opted_out"
    COOLDOWN = "cooldown"
    UNKNOWN_OUTCOME = "unknown_outcome"
    NO_BUSINESS_NUMBER = "no_business_number"


#: Outcomes that get a text today.
TEXTED_OUTCOMES = frozenset(
    {
        CallOutcome.NO_ANSWER,
        CallOutcome.BUSY,
        CallOutcome.FAILED,
        CallOutcome.CANCELED,
        CallOutcome.REJECTED,
        CallOutcome.VOICEMAIL,
        CallOutcome.AFTER_HOURS,
    }
)


@dataclass(frozen=True)
class CallFacts:
    """What is known about a missed call when it is decided."""

    outcome: CallOutcome
    caller: str | None
    business_number: str | None
    opted_out: bool
    last_text_at: datetime | None
    now: datetime
    cooldown: timedelta


@dataclass(frozen=True)
class Decision:
    """The verdict and its reason."""

    action: Action
    reason: Reason

    @property
    def texts(self) -> bool:
        """True when a text goes out."""
        return self.action is Action.TEXT


def decide(facts: CallFacts) -> Decision:
    """Decide whether a missed call gets a text."""
    if facts.caller is None:
        return Decision(Action.SUPPRESS, Reason.CALLER_WITHHELD)
    if facts.outcome not in TEXTED_OUTCOMES:
        return Decision(Action.SUPPRESS, Reason.UNKNOWN_OUTCOME)
    if facts.business_number is None:
        return Decision(Action.SUPPRESS, Reason.NO_BUSINESS_NUMBER)
    if facts.opted_out:
        return Decision(Action.SUPPRESS, Reason.OPTED_OUT)
    if facts.last_text_at is not None and facts.now - facts.last_text_at < facts.cooldown:
        return Decision(Action.SUPPRESS, Reason.COOLDOWN)
    return Decision(Action.TEXT, Reason.MISSED)


# Carrier-standard opt-out keywords (Twilio and CTIA list them); matched on the whole message
# after trimming and dropping punctuation, in any case.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
_OPT_OUT_PHRASES = re.compile(
    r"^(please\s+)?(stop|quit)\s+(texting|messaging|txting)(\s+me)?(\s+please)?$", re.IGNORECASE
)


def is_opt_out(body: str) -> bool:
    """True when a customer's text asks us to stop ("STOP", "stop.", "Stop texting me")."""
    cleaned = body.strip().translate(str.maketrans("", "", string.punctuation)).strip()
    if cleaned.upper().replace(" ", "") in OPT_OUT_KEYWORDS:
        return True
    return bool(_OPT_OUT_PHRASES.match(cleaned))


def render_template(template: str, *, business_name: str) -> str:
    """Fill a text template's placeholders (validated when the account was saved)."""
    return template.replace("{business_name}", business_name)
