"""Where a call, its CRM sync and a message stand: one enum each, and the moves a call may make.

A message's ``purpose_key`` names why it exists (:class:`Purpose`) and what it belongs to, so a
retried step finds the row it already made instead of writing a second text.

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


class MessageStatus(StrEnum):
    """Where a stored text stands: our own steps until the carrier has it, then the carrier's
    delivery status (the values of :class:`connector.kernel.events.DeliveryStatus`)."""

    INTENT = "intent"  # decided and stored, not yet handed to the carrier
    AMBIGUOUS = "ambiguous"  # the send may have reached the carrier: reconcile, never resend
    CANCELLED = "cancelled"  # withdrawn by us before it was sent
    RECEIVED = "received"  # a text a customer (or an owner) sent us
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"
    CANCELED = "canceled"  # the carrier's word: it dropped the text before sending
    UNKNOWN = "unknown"


#: Texts the carrier has (or may have): the customer has been texted, or may have been.
CARRIER_HAS_TEXT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.AMBIGUOUS)
#: Delivery statuses no later report of an earlier state may overwrite.
FINAL_DELIVERY = (MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED)
#: Delivery statuses that mean the text did not arrive.
FAILED_DELIVERY = (MessageStatus.UNDELIVERED, MessageStatus.FAILED)


class Purpose(StrEnum):
    """Why a message exists: the first part of its ``purpose_key``."""

    TEXT_BACK = "text_back"  # text_back:<call id>, the text-back of a missed call
    REPLY = "reply"  # reply:<inbound id>, our answer to STOP, START or HELP
    ALERT = "alert"  # alert:<call id>:<alert>:<owner id>, a text to an owner
    HUMAN = "human"  # human:<inbound id> or human:web:<token>, a person's text to a customer
    INBOUND = "inbound"  # inbound:<carrier>:<event id>, a text someone sent us
    WORKFLOW = "workflow"  # workflow:<crm>:<callback id>, a text a CRM workflow asked for

    @property
    def prefix(self) -> str:
        """What every key of this purpose starts with (for ``startswith`` queries)."""
        return f"{self.value}:"

    def key(self, *parts: object) -> str:
        """The ``purpose_key`` of the message of this purpose for ``parts``."""
        return ":".join([self.value, *(str(part) for part in parts)])


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
