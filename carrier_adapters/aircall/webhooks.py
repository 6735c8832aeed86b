"""Aircall webhooks: the token check, routing and payload parsing.

Aircall signs nothing. Every webhook event body carries a top-level ``token``, the token Aircall
issued when the webhook was created; the number's messaging callbacks (API "proxy" mode) carry
the token returned when the number was configured. We compare it in constant time. There is no
timestamp to check, and the token does not cover the body.

Two envelopes arrive:

- webhook events ``{resource, event, timestamp, token, data}`` (``timestamp`` in seconds):
  https://developer.aircall.io/docs/webhooks-overview
- messaging callbacks of a number configured for API messaging
  ``{event_name, timestamp, token, data}`` (``timestamp`` in milliseconds; ``message.received``
  and ``message.updated``): https://developer.aircall.io/docs/send-and-receive-sms-proxy-mode

Call data (``id``, ``direction``, ``answered_at``, ``missed_call_reason``, ``voicemail``,
``raw_digits``, ``number.digits``, times as Unix seconds):
https://developer.aircall.io/docs/webhooks-overview and Aircall's missed-call reasons,
https://support.aircall.io/hc/en-gb/articles/14936017803549
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from carrier_adapters.base import CarrierAdapter
from connector.kernel import safe_json
from connector.kernel.errors import MalformedWebhookError, UnsupportedEventError, WebhookVerificationError
from connector.kernel.events import (
    AnsweredCall,
    CallOutcome,
    DeliveryStatus,
    InboundMessage,
    MessageStatusUpdate,
    MissedCall,
)
from connector.kernel.http import WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.signing import constant_time_equals
from connector.kernel.times import first_time

CARRIER = "aircall"

#: ``missed_call_reason`` of an unanswered inbound call. Closed hours are after hours; the
#: caller hanging up (under 10 s, in the IVR, while queued) is a cancel; nobody taking the
#: call is no answer. A reason not listed here is ``UNKNOWN``.
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "out_of_opening_hours": CallOutcome.AFTER_HOURS,
        "short_abandoned": CallOutcome.CANCELED,
        "abandoned_in_ivr": CallOutcome.CANCELED,
        "abandoned_in_classic": CallOutcome.CANCELED,
        "abandoned": CallOutcome.CANCELED,
        "no_available_agent": CallOutcome.NO_ANSWER,
        "agents_did_not_answer": CallOutcome.NO_ANSWER,
    }
)
#: Message ``status`` (the send response shows ``pending``; the others are *inferred* from
#: Aircall's ``message.status_updated`` event and common SMS states).
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "pending": DeliveryStatus.QUEUED,
        "queued": DeliveryStatus.QUEUED,
        "sent": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED,
        "undelivered": DeliveryStatus.UNDELIVERED,
        "failed": DeliveryStatus.FAILED,
        "received": DeliveryStatus.RECEIVED,
        "read": DeliveryStatus.READ,
    }
)
STATUS_EVENTS = frozenset({"message.status_updated", "message.updated", "message.sent"})


def load(request: WebhookRequest) -> dict[str, Any]:
    """The event body; :class:`MalformedWebhookError` unless it is a JSON object."""
    document = safe_json.loads(request.body, what="aircall: webhook")
    if not isinstance(document, dict):
        raise MalformedWebhookError("aircall: webhook is not a JSON object")
    return document


def verify(request: WebhookRequest, tokens: Iterable[str]) -> None:
    """Raise :class:`WebhookVerificationError` unless the body's ``token`` is one of ours.

    Every configured token is compared (constant time, no early exit), so timing does not
    tell which one came close.
    """
    try:
        given = load(request).get("token")
    except MalformedWebhookError:
        raise WebhookVerificationError("aircall: body is not a JSON object with a token") from None
    if not isinstance(given, str) or not given:
        raise WebhookVerificationError("aircall: token missing")
    matched = False
    for token in tokens:
        matched |= constant_time_equals(token, given)
    if not matched:
        raise WebhookVerificationError("aircall: token does not match")


def event_name(document: Mapping[str, Any]) -> str:
    """``event`` of webhook events, ``event_name`` of messaging callbacks."""
    return str(document.get("event") or document.get("event_name") or "")


def route(adapter: CarrierAdapter, kind: str, request: WebhookRequest) -> str:
    """``voice`` for ``call.*``, ``sms`` for ``message.received``, ``status`` for message status
    events: one Aircall webhook sends every event it subscribes to one URL."""
    try:
        name = event_name(load(request))
    except MalformedWebhookError:
        return kind
    if name.startswith("call."):
        return "voice"
    if name == "message.received":
        return "sms"
    if name in STATUS_EVENTS:
        return "status"
    return kind


def _data(document: Mapping[str, Any]) -> dict[str, Any]:
    data = document.get("data")
    if not isinstance(data, dict) or data.get("id") in (None, ""):
        raise MalformedWebhookError("aircall: event data lacks an id")
    return data


def _our_number(data: Mapping[str, Any]) -> str:
    number = data.get("number")
    return str(number.get("digits") or "") if isinstance(number, dict) else ""


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call in a ``call.ended`` event, or None.

    ``call.ended`` comes about 30 s after the hang-up, once Aircall has computed the call's
    data; ``call.hungup`` comes at once but without it, so only ``call.ended`` is read. An
    inbound call with ``answered_at: null`` is missed; ``missed_call_reason`` gives the outcome,
    except that a left voicemail (``voicemail`` URL) outranks "nobody answered".
    """
    document = load(request)
    if event_name(document) != "call.ended":
        return None
    data = _data(document)
    if data.get("direction") != "inbound" or data.get("answered_at"):
        return None
    reason = str(data.get("missed_call_reason") or "")
    voicemail = bool(data.get("voicemail"))
    if reason == "out_of_opening_hours":
        outcome = CallOutcome.AFTER_HOURS
    elif voicemail:
        outcome = CallOutcome.VOICEMAIL
    elif reason:
        outcome = adapter.call_outcome(reason)
    else:
        outcome = CallOutcome.NO_ANSWER
    caller_raw = str(data.get("raw_digits") or "")
    duration = data.get("duration")
    return MissedCall(
        carrier=CARRIER,
        event_id=str(data["id"]),
        caller=to_e164(caller_raw),
        called=to_e164(_our_number(data)),
        outcome=outcome,
        occurred_at=first_time(data.get("started_at"), document.get("timestamp"), epoch=True),
        caller_raw=caller_raw,
        ring_seconds=float(duration) if isinstance(duration, int | float) else None,
        voicemail=voicemail,
        raw=document,
    )


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """``call.answered`` or ``call.ended`` with ``answered_at``, either direction."""
    document = load(request)
    if event_name(document) not in ("call.answered", "call.ended"):
        return None
    data = _data(document)
    customer = to_e164(str(data.get("raw_digits") or ""))
    if not data.get("answered_at") or customer is None:
        return None
    return AnsweredCall(
        carrier=CARRIER,
        event_id=str(data["id"]),
        customer=customer,
        direction="outbound" if data.get("direction") == "outbound" else "inbound",
        occurred_at=first_time(data.get("answered_at"), epoch=True),
        business_number=to_e164(_our_number(data) or None),
    )


def _external(data: Mapping[str, Any]) -> str:
    """The customer's number: ``external_number`` in webhook events, ``raw_digits`` in the
    send response and callbacks (*inferred* for callbacks)."""
    return str(data.get("external_number") or data.get("raw_digits") or "")


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text in ``message.received`` (webhook event or messaging callback)."""
    document = load(request)
    if event_name(document) != "message.received":
        raise UnsupportedEventError("aircall: not an incoming message")
    data = _data(document)
    media = data.get("media_url") or data.get("media") or []
    return InboundMessage(
        carrier=CARRIER,
        event_id=str(data["id"]),
        sender=to_e164(_external(data)),
        recipient=to_e164(_our_number(data)),
        body=str(data.get("body") or ""),
        received_at=first_time(data.get("created_at"), document.get("timestamp"), epoch=True),
        media_count=len(media) if isinstance(media, list) else 0,
        raw=document,
    )


def parse_status(adapter: CarrierAdapter, request: WebhookRequest) -> MessageStatusUpdate:
    """A delivery report: ``message.status_updated`` (webhook) or ``message.updated``
    (callback). The event id is ``<message id>:<status>``: one per status change."""
    document = load(request)
    if event_name(document) not in STATUS_EVENTS:
        raise UnsupportedEventError("aircall: not a message status event")
    data = _data(document)
    status = str(data.get("status") or "")
    error = data.get("error_code")
    return MessageStatusUpdate(
        carrier=CARRIER,
        event_id=f"{data['id']}:{status}",
        message_id=str(data["id"]),
        status=adapter.delivery_status(status),
        occurred_at=first_time(data.get("updated_at"), document.get("timestamp"), epoch=True),
        error_code=str(error) if error not in (None, "") else None,
        raw=document,
        business_number=to_e164(_our_number(data) or None),
    )
