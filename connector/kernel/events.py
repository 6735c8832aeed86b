"""The normalized domain events every adapter translates its provider's payloads into.

Frozen dataclasses with aware UTC datetimes and E.164 numbers. The raw provider payload rides
along for debugging but never appears in ``repr``, and neither do full phone numbers or message
bodies: reprs end up in logs and tracebacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from connector.kernel.phone import mask


class CallOutcome(StrEnum):
    """Why a call went unanswered (``ANSWERED`` is kept so adapters can say so explicitly)."""

    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"  # the caller hung up while it was ringing
    REJECTED = "rejected"
    VOICEMAIL = "voicemail"
    AFTER_HOURS = "after-hours"
    ANSWERED = "answered"
    UNKNOWN = "unknown"


class DeliveryStatus(StrEnum):
    """Where an outbound text stands."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"
    CANCELED = "canceled"
    RECEIVED = "received"
    UNKNOWN = "unknown"

    @property
    def is_failure(self) -> bool:
        """True for the statuses that mean the customer will not get the text."""
        return self in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED, DeliveryStatus.CANCELED)

    @property
    def is_final(self) -> bool:
        """True when no further status is expected."""
        return self.is_failure or self in (DeliveryStatus.DELIVERED, DeliveryStatus.READ)


_PHONE_FIELDS = frozenset(
    {"caller", "caller_raw", "called", "sender", "recipient", "to", "from_", "customer",
     "business_number"}
)
_HIDDEN_FIELDS = frozenset({"raw", "body"})


def _safe_repr(obj: Any) -> str:
    parts = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in _HIDDEN_FIELDS:
            if f.name == "body" and value is not None:
                parts.append(f"body=<{len(value)} chars>")
            continue
        if f.name in _PHONE_FIELDS:
            parts.append(f"{f.name}={mask(value)}")
        else:
            parts.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime")


@dataclass(frozen=True, repr=False)
class MissedCall:
    """One unanswered inbound call.

    ``event_id`` is the provider's id for the whole call (Twilio's parent ``CallSid``), so every
    callback about the same call maps to the same ``MissedCall``. ``caller`` is None when the caller
    ID was withheld or is not a valid number; ``caller_raw`` keeps what the carrier sent.
    """

    carrier: str
    event_id: str
    caller: str | None
    called: str | None
    outcome: CallOutcome
    occurred_at: datetime
    caller_raw: str = ""
    ring_seconds: float | None = None
    voicemail: bool = False
    attestation: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_aware(self.occurred_at, "occurred_at")

    def __repr__(self) -> str:
        return _safe_repr(self)


@dataclass(frozen=True, repr=False)
class AnsweredCall:
    """A call between a business number and a customer that someone answered.

    ``direction`` is ``inbound`` (the customer called and was answered) or ``outbound`` (the
    business called the customer back and they picked up). It cancels a pending text-back.
    """

    carrier: str
    event_id: str
    customer: str
    direction: str
    occurred_at: datetime
    #: The business's own number on the call (E.164), when the payload names it.
    business_number: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.occurred_at, "occurred_at")

    def __repr__(self) -> str:
        return _safe_repr(self)


@dataclass(frozen=True, repr=False)
class InboundMessage:
    """A text a customer sent to a business number."""

    carrier: str
    event_id: str
    sender: str | None
    recipient: str | None
    body: str
    received_at: datetime
    opt_out_type: str | None = None
    media_count: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_aware(self.received_at, "received_at")

    def __repr__(self) -> str:
        return _safe_repr(self)


@dataclass(frozen=True, repr=False)
class MessageStatusUpdate:
    """A delivery report for a text we sent; ``message_id`` is the carrier's id for it."""

    carrier: str
    event_id: str
    message_id: str
    status: DeliveryStatus
    occurred_at: datetime
    error_code: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: The number of ours that sent the text (E.164), when the report names it.
    business_number: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.occurred_at, "occurred_at")

    def __repr__(self) -> str:
        return _safe_repr(self)


@dataclass(frozen=True, repr=False)
class SendResult:
    """What the carrier said when it accepted a text."""

    message_id: str
    status: DeliveryStatus
    segments: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return _safe_repr(self)
