"""Quo (formerly OpenPhone) webhooks: both signature schemes, routing and payload parsing.

Quo has two webhook systems, and an account may use either:

- **Current webhooks** (created with ``POST /webhooks`` and a ``Quo-Api-Version``, e.g.
  ``2026-03-30``) follow Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` (Unix
  seconds) and ``webhook-signature`` (space-separated ``v1,<base64>``), HMAC-SHA256 over
  ``{id}.{timestamp}.{raw body}`` with the base64 key after ``whsec_``. Envelope
  ``{id, apiVersion, createdAt, type, data: {resource, context, links}}``.
  https://www.quo.com/docs/mdx/beta/webhooks-signature-validation and
  https://www.quo.com/docs/2026-03-30/webhooks-event-payloads
- **Legacy webhooks** (created in the app or with ``/v1/webhooks``) carry
  ``openphone-signature: hmac;1;<timestamp>;<base64>``, HMAC-SHA256 over
  ``{timestamp}.{raw body}`` with the base64-decoded signing key; Quo's example timestamp is
  in milliseconds. Envelope ``{id, object: "event", apiVersion, createdAt, type,
  data: {object}}``. https://www.quo.com/docs/webhooks/legacy-signature-validation and
  https://www.quo.com/docs/mdx/guides/webhooks

Both are checked against a 300 s window. Everything here is a pure function of the request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
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
from connector.kernel.signing import constant_time_equals, require_fresh
from connector.kernel.times import first_time

CARRIER = "quo"
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
LEGACY_HEADER = "openphone-signature"
SIGNATURE_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER, LEGACY_HEADER)
TOLERANCE = 300.0

#: Call ``status`` of an incoming call nobody answered. Legacy ``call.completed`` reports a
#: missed call as ``completed`` with ``answeredAt: null`` (Quo's own sample), so ``completed``
#: is a no-answer here; the other values are Quo's call statuses (*inferred* for the current
#: API, which names its missed-call event ``call.missed`` instead). Anything else is ``UNKNOWN``.
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "completed": CallOutcome.NO_ANSWER,
        "missed": CallOutcome.NO_ANSWER,
        "no-answer": CallOutcome.NO_ANSWER,
        "busy": CallOutcome.BUSY,
        "failed": CallOutcome.FAILED,
        "canceled": CallOutcome.CANCELED,
        "abandoned": CallOutcome.CANCELED,
        "voicemail": CallOutcome.VOICEMAIL,
    }
)
#: Message ``status`` (Quo's message object: ``queued``, ``sent``, ``delivered``,
#: ``undelivered``; ``received`` on incoming messages; ``failed`` per ``message.failed``).
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "queued": DeliveryStatus.QUEUED,
        "sent": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED,
        "undelivered": DeliveryStatus.UNDELIVERED,
        "failed": DeliveryStatus.FAILED,
        "received": DeliveryStatus.RECEIVED,
    }
)
#: Event types that say the delivery outcome themselves.
STATUS_EVENTS: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "message.delivered": DeliveryStatus.DELIVERED,
        "message.failed": DeliveryStatus.FAILED,
        "message.undelivered": DeliveryStatus.UNDELIVERED,
    }
)


# -- signatures ------------------------------------------------------------------------------


def decode_key(key: str) -> bytes:
    """The HMAC key of a ``whsec_...`` webhook key or a legacy base64 signing key."""
    text = key.strip().removeprefix("whsec_")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a base64 key") from None


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def standard_signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """``v1`` signature of Standard Webhooks: base64 HMAC-SHA256 of ``id.timestamp.body``."""
    return _b64_hmac(key, f"{webhook_id}.{timestamp}.".encode() + body)


def legacy_signature(key: bytes, timestamp: str, body: bytes) -> str:
    """The signature in ``openphone-signature``: base64 HMAC-SHA256 of ``timestamp.body``."""
    return _b64_hmac(key, f"{timestamp}.".encode() + body)


def _seconds(timestamp: str) -> float:
    """Unix seconds from a header timestamp; 13-digit values are milliseconds (legacy)."""
    try:
        value = float(int(timestamp))
    except ValueError:
        raise WebhookVerificationError("quo: signature timestamp is not a number") from None
    return value / 1000.0 if value > 1e11 else value


def verify(
    request: WebhookRequest,
    webhook_key: bytes | None,
    legacy_key: bytes | None,
    *,
    now: float | None = None,
) -> None:
    """Raise :class:`WebhookVerificationError` unless Quo signed ``request`` in the last 5 min.

    A request with any Standard Webhooks header is checked against the webhook key only; one
    with ``openphone-signature`` against the legacy signing key only. The scheme a request
    claims must be configured, so an account with only current webhooks refuses legacy ones.
    """
    headers = request.headers
    if any(h in headers for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)):
        webhook_id, timestamp = headers.get(ID_HEADER, ""), headers.get(TIMESTAMP_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if webhook_key is None:
            raise WebhookVerificationError("quo: no webhook key configured for webhook-signature")
        if not webhook_id or not timestamp or not given:
            raise WebhookVerificationError("quo: Standard Webhooks headers incomplete")
        require_fresh(_seconds(timestamp), tolerance=TOLERANCE, now=now)
        expected = standard_signature(webhook_key, webhook_id, timestamp, request.body)
        matched = False
        for entry in given.split():
            version, _, signature = entry.partition(",")
            matched |= version == "v1" and constant_time_equals(expected, signature)
        if not matched:
            raise WebhookVerificationError("quo: webhook-signature does not match")
        return
    legacy = headers.get(LEGACY_HEADER)
    if not legacy:
        raise WebhookVerificationError("quo: signature headers missing")
    if legacy_key is None:
        raise WebhookVerificationError("quo: no legacy signing key configured")
    parts = legacy.strip().split(";")
    if len(parts) != 4 or parts[0] != "hmac" or parts[1] != "1":
        raise WebhookVerificationError("quo: openphone-signature is not hmac;1;<ts>;<sig>")
    require_fresh(_seconds(parts[2]), tolerance=TOLERANCE, now=now)
    if not constant_time_equals(legacy_signature(legacy_key, parts[2], request.body), parts[3]):
        raise WebhookVerificationError("quo: openphone-signature does not match")


# -- parsing ---------------------------------------------------------------------------------


def load(request: WebhookRequest) -> tuple[dict[str, Any], str, dict[str, Any], dict[str, Any]]:
    """``(envelope, type, resource, context)``; legacy payloads have ``data.object`` and no
    context."""
    document = safe_json.loads(request.body, what="quo: webhook")
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or not isinstance(document.get("type"), str):
        raise MalformedWebhookError("quo: webhook lacks type or data")
    resource = data.get("resource", data.get("object"))
    if not isinstance(resource, dict):
        raise MalformedWebhookError("quo: webhook data has no resource")
    context = data.get("context")
    return document, document["type"], resource, context if isinstance(context, dict) else {}


def route(adapter: CarrierAdapter, kind: str, request: WebhookRequest) -> str:
    """``voice`` for ``call.*``, ``sms`` for ``message.received``, ``status`` for the other
    ``message.*`` events: one Quo webhook may subscribe to all of them."""
    try:
        _, event_type, _, _ = load(request)
    except MalformedWebhookError:
        return kind
    if event_type.startswith("call."):
        return "voice"
    if event_type == "message.received":
        return "sms"
    if event_type.startswith("message."):
        return "status"
    return kind


def _when(resource: Mapping[str, Any], document: Mapping[str, Any], key: str) -> datetime:
    """The resource's ``key`` time, else the envelope's ``createdAt``, else now."""
    return first_time(resource.get(key), document.get("createdAt"))


def _first(value: object) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


def _parties(resource: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[str, str]:
    """(customer, our number) as sent. Current payloads name the outside party in
    ``context.participants.external`` and ours in ``.workspace``; legacy ones use
    ``from``/``to`` by direction."""
    participants = context.get("participants")
    if isinstance(participants, dict) and participants.get("external"):
        return _first(participants.get("external")), _first(participants.get("workspace"))
    if resource.get("direction") == "outgoing":
        return _first(resource.get("to")), _first(resource.get("from"))
    return _first(resource.get("from")), _first(resource.get("to"))


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call a call webhook reports, or None.

    ``call.missed`` ("an incoming call ended without being answered") and
    ``call.voicemail.completed`` are missed calls; so is a ``call.completed`` for an incoming
    call whose ``answeredAt`` is null (the legacy system's only signal). The event id is the
    call id (``callId`` on voicemail resources) so all of them make one missed call.
    """
    document, event_type, resource, context = load(request)
    if event_type not in ("call.missed", "call.voicemail.completed", "call.completed"):
        return None
    if resource.get("direction", "incoming") != "incoming":
        return None
    voicemail = event_type == "call.voicemail.completed" or bool(
        resource.get("voicemail") or resource.get("hasVoicemail")
    )
    if event_type == "call.completed" and resource.get("answeredAt"):
        return None
    call_id = resource.get("callId") if event_type == "call.voicemail.completed" else resource.get("id")
    if not call_id:
        raise MalformedWebhookError("quo: call webhook lacks the call id")
    status = str(resource.get("status") or "")
    if voicemail:
        outcome = CallOutcome.VOICEMAIL
    elif event_type == "call.missed" and not status:
        outcome = CallOutcome.NO_ANSWER
    else:
        outcome = adapter.call_outcome(status)
    customer, ours = _parties(resource, context)
    return MissedCall(
        carrier=CARRIER,
        event_id=str(call_id),
        caller=to_e164(customer),
        called=to_e164(ours),
        outcome=outcome,
        occurred_at=_when(resource, document, "createdAt"),
        caller_raw=customer,
        voicemail=voicemail,
        raw=document,
    )


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """``call.answered``, or a ``call.completed`` with ``answeredAt``, as an answered call."""
    document, event_type, resource, context = load(request)
    if event_type not in ("call.answered", "call.completed") or not resource.get("answeredAt"):
        return None
    customer_raw, ours = _parties(resource, context)
    customer = to_e164(customer_raw)
    if customer is None or not resource.get("id"):
        return None
    return AnsweredCall(
        carrier=CARRIER,
        event_id=str(resource["id"]),
        customer=customer,
        direction="outbound" if resource.get("direction") == "outgoing" else "inbound",
        occurred_at=_when(resource, document, "answeredAt"),
        business_number=to_e164(ours or None),
    )


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text in ``message.received``.

    Current payloads name the sender in ``context.senderIdentifier`` and the recipients in
    ``context.recipientIdentifiers``; legacy ones in ``from``/``to``. The text is ``text``
    (``body`` in some legacy payloads).
    """
    document, event_type, resource, context = load(request)
    if event_type != "message.received":
        raise UnsupportedEventError(f"quo: {event_type} is not an incoming message")
    if not resource.get("id"):
        raise MalformedWebhookError("quo: message webhook lacks the message id")
    sender = str(context.get("senderIdentifier") or resource.get("from") or "")
    recipient = _first(context.get("recipientIdentifiers") or resource.get("to"))
    media = resource.get("media")
    return InboundMessage(
        carrier=CARRIER,
        event_id=str(resource["id"]),
        sender=to_e164(sender),
        recipient=to_e164(recipient),
        body=str(resource.get("text") or resource.get("body") or ""),
        received_at=_when(resource, document, "createdAt"),
        media_count=len(media) if isinstance(media, list) else 0,
        raw=document,
    )


def parse_status(adapter: CarrierAdapter, request: WebhookRequest) -> MessageStatusUpdate:
    """A delivery report: ``message.delivered``, ``message.failed``, ``message.undelivered``.

    The event type decides the status; any other ``message.*`` event falls back to the
    resource's ``status``. ``errorCode`` is the carrier or provider code Quo passes on. The
    event id is the envelope ``id``, stable across Quo's retries.
    """
    document, event_type, resource, context = load(request)
    if not event_type.startswith("message.") or event_type == "message.received":
        raise UnsupportedEventError(f"quo: {event_type} is not a delivery report")
    if not resource.get("id") or not document.get("id"):
        raise MalformedWebhookError("quo: status webhook lacks the message or event id")
    if event_type in STATUS_EVENTS:
        status = STATUS_EVENTS[event_type]
    else:
        status = adapter.delivery_status(str(resource.get("status") or ""))
    error_code = resource.get("errorCode")
    return MessageStatusUpdate(
        carrier=CARRIER,
        event_id=str(document["id"]),
        message_id=str(resource["id"]),
        status=status,
        occurred_at=first_time(document.get("createdAt")),
        error_code=str(error_code) if error_code not in (None, "") else None,
        raw=document,
        business_number=to_e164(_parties(resource, context)[1] or None),
    )
