"""Telnyx webhooks: Ed25519 signatures, routing by event type, and the messaging payloads.

Every Telnyx webhook (Call Control and messaging JSON, TeXML forms) carries the same two
headers: ``telnyx-timestamp`` (Unix seconds) and ``telnyx-signature-ed25519`` (Base64 of an
Ed25519 signature over ``"{timestamp}|{raw body}"``), verified with the account's public key
from Mission Control (Keys & Credentials). Telnyx's own SDKs reject a timestamp more than
300 s away from now; so do we.

Telnyx references:

- Signatures: https://developers.telnyx.com/docs/development/sdk/python/webhooks and the
  header descriptions on every callback page, e.g.
  https://developers.telnyx.com/api-reference/callbacks/call-hangup
- Messaging webhooks (``message.received``, ``message.sent``, ``message.finalized``):
  https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks
- Delivery error codes: https://developers.telnyx.com/docs/messaging/messages/error-codes
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from carrier_adapters.base import CarrierAdapter
from connector.kernel import safe_json
from connector.kernel.errors import (
    MalformedWebhookError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.events import DeliveryStatus, InboundMessage, MessageStatusUpdate
from connector.kernel.http import WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.signing import require_fresh
from connector.kernel.times import first_time

CARRIER = "telnyx"
SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
#: Seconds a signature stays valid either side of now (the Telnyx SDKs use the same window).
TIMESTAMP_TOLERANCE = 300.0

#: Messaging event types and the webhook kind they belong to. A messaging profile has one
#: webhook URL for inbound messages *and* delivery reports (our ``sms`` URL), so :func:`route`
#: sends each event to the right handler.
MESSAGE_RECEIVED = "message.received"
DELIVERY_EVENTS = frozenset({"message.sent", "message.finalized"})

#: ``payload.to[0].status`` of an outbound message.
#: https://developers.telnyx.com/api-reference/messages/send-a-message (``to[].status``)
#: ``delivery_unconfirmed`` is final but means the carrier sent no receipt: the text left
#: Telnyx and may well have arrived, so it stays ``SENT`` rather than a failure.
#: ``expired`` means it never left the queue in time: ``UNDELIVERED``.
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "queued": DeliveryStatus.QUEUED,
        "sending": DeliveryStatus.QUEUED,
        "sent": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED,
        "delivery_unconfirmed": DeliveryStatus.SENT,
        "delivery_failed": DeliveryStatus.UNDELIVERED,
        "expired": DeliveryStatus.UNDELIVERED,
        "sending_failed": DeliveryStatus.FAILED,
        "webhook_delivered": DeliveryStatus.RECEIVED,  # inbound messages only
    }
)


# -- signatures ------------------------------------------------------------------------------


def load_public_key(value: str) -> Ed25519PublicKey:
    """The account's Ed25519 public key from its Base64 form (32 raw bytes).

    Raises ``ValueError`` when ``value`` is not that.
    """
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not Base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def signed_message(timestamp: str, body: bytes) -> bytes:
    """What Telnyx signs: the timestamp header, a ``|`` and the raw body, byte for byte."""
    return timestamp.encode("ascii") + b"|" + body


def verify_signature(
    request: WebhookRequest, public_key: Ed25519PublicKey, *, now: float | None = None
) -> None:
    """Raise :class:`WebhookVerificationError` unless Telnyx signed ``request`` recently.

    The signature covers the timestamp and the body, not the URL. Messages name what failed,
    never the header values.
    """
    signature = request.headers.get(SIGNATURE_HEADER, "").strip()
    timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if not signature or not timestamp:
        raise WebhookVerificationError("telnyx: signature or timestamp header missing")
    if not timestamp.isdigit():
        raise WebhookVerificationError("telnyx: timestamp header is not Unix seconds")
    require_fresh(float(timestamp), tolerance=TIMESTAMP_TOLERANCE, now=now)
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("telnyx: signature header is not Base64") from None
    if len(raw_signature) != 64:
        raise WebhookVerificationError("telnyx: signature has the wrong length")
    try:
        public_key.verify(raw_signature, signed_message(timestamp, request.body))
    except InvalidSignature:
        raise WebhookVerificationError("telnyx: signature does not match") from None


# -- shared parsing --------------------------------------------------------------------------


def is_json(request: WebhookRequest) -> bool:
    """True for a JSON body (Call Control, messaging); TeXML posts forms."""
    ctype = request.headers.get("content-type", "").lower()
    return "json" in ctype or request.body.lstrip()[:1] == b"{"


def event_data(request: WebhookRequest) -> Mapping[str, Any]:
    """The ``data`` object of a JSON webhook (``{"data": {...}, "meta": {...}}``)."""
    document = safe_json.loads(request.body, what="telnyx: webhook body")
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        raise MalformedWebhookError("telnyx: webhook lacks its data object")
    return data


def payload_of(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data.payload`` as a mapping."""
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise MalformedWebhookError("telnyx: webhook lacks data.payload")
    return payload


def route(adapter: CarrierAdapter, kind: str, request: WebhookRequest) -> str:
    """The kind a JSON webhook really is, from its ``event_type``; forms keep their URL's kind.

    ``message.received`` is ``sms``, ``message.sent``/``message.finalized`` are ``status`` and
    ``call.*`` events are ``voice``; :attr:`TelnyxCarrier.url_kinds` says which URL may take
    which. A body we cannot read keeps ``kind`` so the parser reports it as malformed.
    """
    if not is_json(request):
        return kind
    try:
        event_type = str(event_data(request).get("event_type") or "")
    except MalformedWebhookError:
        return kind
    if event_type == MESSAGE_RECEIVED:
        return "sms"
    if event_type in DELIVERY_EVENTS:
        return "status"
    if event_type.startswith("call."):
        return "voice"
    return kind


def _first_recipient(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    recipients = payload.get("to")
    if isinstance(recipients, list) and recipients and isinstance(recipients[0], dict):
        return recipients[0]
    return {}


def _number(value: object) -> str:
    if isinstance(value, dict):
        value = value.get("phone_number")
    return value if isinstance(value, str) else ""


# -- messaging -------------------------------------------------------------------------------


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text in a ``message.received`` event.

    Telnyx blocks STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END and QUIT on its own (a
    block rule on the messaging profile) but not REVOKE or OPTOUT
    (https://developers.telnyx.com/docs/messaging/messages/advanced-opt-in-out); the webhook
    names no keyword class, so ``opt_out_type`` stays None and the connector's own keyword
    rules decide, covering the words Telnyx misses.
    """
    data = event_data(request)
    event_type = data.get("event_type")
    if event_type != MESSAGE_RECEIVED:
        raise UnsupportedEventError("telnyx: the event is not an inbound message")
    payload = payload_of(data)
    message_id = payload.get("id") or data.get("id")
    sender_raw = _number(payload.get("from"))
    if not message_id or not sender_raw:
        raise MalformedWebhookError("telnyx: inbound message lacks its id or sender")
    media = payload.get("media")
    text = payload.get("text")
    return InboundMessage(
        carrier=CARRIER,
        event_id=str(message_id),
        sender=to_e164(sender_raw),
        recipient=to_e164(_number(_first_recipient(payload)) or None),
        body=text if isinstance(text, str) else "",
        received_at=first_time(payload.get("received_at"), data.get("occurred_at"), rfc2822=True),
        media_count=len(media) if isinstance(media, list) else 0,
        raw=dict(data),
    )


def parse_status(adapter: CarrierAdapter, request: WebhookRequest) -> MessageStatusUpdate:
    """The delivery report in a ``message.sent`` or ``message.finalized`` event.

    The status is the first recipient's (we send to one number); the error code is the first
    of ``payload.errors`` (``40001`` landline, ``40300`` blocked by STOP ...). The event id is
    ``message id:status``, so a re-delivered report is recognised.
    """
    data = event_data(request)
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or event_type not in DELIVERY_EVENTS:
        raise UnsupportedEventError("telnyx: the event is not a delivery report")
    payload = payload_of(data)
    message_id = payload.get("id")
    status_raw = _first_recipient(payload).get("status")
    if not message_id or not isinstance(status_raw, str) or not status_raw:
        raise MalformedWebhookError("telnyx: delivery report lacks the message id or status")
    status = status_raw.strip().lower()
    errors = payload.get("errors")
    error_code = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        error_code = str(errors[0].get("code") or "") or None
    return MessageStatusUpdate(
        carrier=CARRIER,
        event_id=f"{message_id}:{status}",
        message_id=str(message_id),
        status=adapter.delivery_status(status),
        occurred_at=first_time(data.get("occurred_at"), payload.get("completed_at"), rfc2822=True),
        error_code=error_code,
        raw=dict(data),
        # ``data.payload.from.phone_number``: the number of ours that sent the text.
        business_number=to_e164(_number(payload.get("from")) or None),
    )
