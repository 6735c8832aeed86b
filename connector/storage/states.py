"""Where a call, its CRM sync and a message stand: one enum each, and the moves a call may make.

The values are the strings stored in the database, so a ``StrEnum`` compares equal to them and
queries need no conversion.
"""

from __future__ import annotations

from enum import StrEnum


class CallState(StrEnum):
    """The text-back of a missed call."""

    RECEIVED = "received"  # stored from the webhook, not decided yet
    SCHEDULED = "scheduled"  # decided: text later (a delay, or held to the texting window)
    DECIDED = "decided"  # decided: text now; the intent row exists
    TEXTED = "texted"  # the carrier took the text
    SUPPRESSED = "suppressed"  # decided: no text (the reason says why)
    TEXT_FAILED = "text_failed"  # the carrier refused the text for good
    CANCELLED = "cancelled"  # a pending text that should no longer go (opt-out, call back)


class CrmState(StrEnum):
    """A call's (or a message's) way into the CRM."""

    PENDING = "pending"
    RETRY = "retry"  # a transient failure; the sweeper comes back after a backoff
    WAITING_TEXT = "waiting_text"  # written, but a held text has yet to go (or be cancelled)
    DONE = "done"
    PARTIAL = "partial"  # the CRM refused some steps for good; the others are written
    FAILED = "failed"
    NEEDS_REAUTH = "needs_reauth"  # the CRM refused our credentials: reconnect the account
    FAILURE_NOTE = "failure_note"  # messages only: a failed delivery to note on the task


#: The moves a call's state may make; anything else is a bug, refused where it is written.
CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.RECEIVED: frozenset({CallState.DECIDED, CallState.SCHEDULED,
                                   CallState.SUPPRESSED}),
    CallState.SCHEDULED: frozenset({CallState.DECIDED, CallState.CANCELLED}),
    CallState.DECIDED: frozenset({CallState.TEXTED, CallState.TEXT_FAILED, CallState.CANCELLED}),
    CallState.TEXTED: frozenset(),
    CallState.SUPPRESSED: frozenset(),
    CallState.TEXT_FAILED: frozenset(),
    CallState.CANCELLED: frozenset(),
}

#: Calls the text-back job still has work on.
TEXT_BACK_STATES = (CallState.RECEIVED, CallState.DECIDED, CallState.SCHEDULED)
#: Calls whose decision is made, so the CRM can be written (a held text's task does not wait).
CRM_SYNCABLE_STATES = (CallState.TEXTED, CallState.SUPPRESSED, CallState.TEXT_FAILED,
                       CallState.CANCELLED, CallState.SCHEDULED)
#: CRM states the sweeper brings back.
CRM_UNFINISHED_STATES = (CrmState.PENDING, CrmState.RETRY, CrmState.WAITING_TEXT)


def check_call_transition(old: str | None, new: str) -> CallState:
    """``new`` as a :class:`CallState` when a call may move there from ``old``; ValueError if not.

    A row being built (``old`` None) may take any state; staying in the same state is allowed.
    """
    target = CallState(new)
    if old is None:
        return target
    current = CallState(old)
    if target is not current and target not in CALL_TRANSITIONS[current]:
        raise ValueError(f"a call cannot go from {current.value} to {target.value}")
    return target
