"""Vonage webhooks: signed-JWT verification, Voice events, the NCCO, and Messages API payloads.

Vonage references:

- Signed webhooks: https://developer.vonage.com/en/getting-started/concepts/webhooks and
  https://developer.vonage.com/en/messages/concepts/signed-webhooks
- Voice answer and event webhooks (statuses ``started``, ``ringing``, ``answered``, ``busy``,
  ``cancelled``, ``unanswered``, ``disconnected``, ``rejected``, ``failed``,
  ``human``/``machine``, ``timeout``, ``completed``):
  https://developer.vonage.com/en/voice/voice-api/webhook-reference
- NCCO ``connect``: https://developer.vonage.com/en/voice/voice-api/ncco-reference#connect
- Messages inbound and status webhooks:
  https://developer.vonage.com/en/messages/concepts/messages-status-callbacks

Vonage writes numbers in E.164 without the ``+`` (``14155550100``); :func:`to_e164` adds it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from carrier_adapters.base import CallRouting, CarrierAdapter
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
from connector.kernel.http import WebhookReply, WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.times import first_time

from . import context as call_context
from . import tokens

CARRIER = "vonage"

#: Voice event ``status`` values. The forwarded leg's final status tells a miss apart;
#: ``cancelled`` is the caller hanging up before the forward answered, ``machine`` the
#: forwarded phone's voicemail (only with machine detection on). Vonage notes that some
#: carriers report a busy line as ``rejected``.
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "unanswered": CallOutcome.NO_ANSWER,
        "timeout": CallOutcome.NO_ANSWER,  # the connect action's ringing timeout ran out
        "busy": CallOutcome.BUSY,
        "rejected": CallOutcome.REJECTED,
        "failed": CallOutcome.FAILED,
        "cancelled": CallOutcome.CANCELED,
        "machine": CallOutcome.VOICEMAIL,
        "answered": CallOutcome.ANSWERED,
        "human": CallOutcome.ANSWERED,
        "completed": CallOutcome.ANSWERED,
    }
)
#: Statuses of a leg still on its way, or of a media stream: nothing to report.
CALL_NOT_ENDED = frozenset({"started", "ringing", "disconnected"})
#: Keys only the other voice webhooks (input, record, transfer, error) carry.
_NOT_ANSWER_KEYS = frozenset(
    {"status", "dtmf", "speech", "timed_out", "recording_url", "recording_uuid", "reason",
     "conversation_uuid_from", "conversation_uuid_to", "call_uuid"}
)

#: Messages API ``status`` values for SMS: ``submitted`` (handed to the carrier, the point
#: SMS is charged), ``delivered``, ``rejected`` (Vonage or the carrier refused it, or its TTL
#: ran out), ``undeliverable`` (Vonage could not reach the carrier); ``read`` for OTT channels.
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "submitted": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED,
        "rejected": DeliveryStatus.FAILED,
        "undeliverable": DeliveryStatus.UNDELIVERED,
        "read": DeliveryStatus.READ,
    }
)
#: Inbound channels this adapter reads; WhatsApp, Viber ... are not text-back channels.
INBOUND_CHANNELS = frozenset({"sms", "mms"})
NCCO_CONTENT_TYPE = "application/json"
CONNECT_TIMEOUT_MIN = 5


# -- verification ----------------------------------------------------------------------------


def verify_request(
    request: WebhookRequest,
    *,
    signature_secret: str,
    api_key: str,
    application_id: str | None,
    now: float | None = None,
) -> None:
    """Raise :class:`WebhookVerificationError` unless Vonage signed this request recently.

    The JWT must be HS256 under the signature secret, issued within 300 s, name our API key
    (and our application, when one is configured), and carry the SHA-256 of the body. A body
    without a ``payload_hash`` fails closed, as does a call context in the URL we did not seal.
    Vonage may, rarely, send an unsigned callback after an internal error; the 403 makes it
    retry.
    """
    token = tokens.bearer_token(request.headers.get("Authorization"))
    claims = tokens.verify_hs256(token, signature_secret, now=now)
    if "api_key" in claims and claims["api_key"] != api_key:
        raise WebhookVerificationError("vonage: token was issued for another API key")
    claimed_app = claims.get("application_id")
    if application_id and claimed_app is not None and claimed_app != application_id:
        raise WebhookVerificationError("vonage: token was issued for another application")
    payload_hash = claims.get("payload_hash")
    if payload_hash is None:
        if request.body.strip():
            raise WebhookVerificationError("vonage: token does not cover the body")
    elif not isinstance(payload_hash, str) or not tokens.payload_hash_matches(
        request.body, payload_hash
    ):
        raise WebhookVerificationError("vonage: body does not match payload_hash")
    call_context.from_request(request, signature_secret)


# -- shared parsing --------------------------------------------------------------------------


def json_body(request: WebhookRequest) -> Mapping[str, Any]:
    """The JSON object Vonage posted."""
    document = safe_json.loads(request.body, what="vonage: webhook body")
    if not isinstance(document, dict):
        raise MalformedWebhookError("vonage: webhook body is not a JSON object")
    return document


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def route(adapter: CarrierAdapter, kind: str, request: WebhookRequest) -> str:
    """``sms`` or ``status`` by the Messages payload's shape, should the application's inbound
    and status URLs both point at our ``sms`` URL; voice webhooks keep their kind. (The
    ``status`` URL never takes an inbound text: :attr:`VonageCarrier.url_kinds`.)"""
    if kind not in ("sms", "status"):
        return kind
    try:
        body = json_body(request)
    except MalformedWebhookError:
        return kind
    if "message_uuid" not in body:
        return kind
    if "status" in body and "text" not in body:
        return "status"
    if "status" not in body and ("text" in body or "message_type" in body):
        return "sms"
    return kind


# -- voice -----------------------------------------------------------------------------------


def is_incoming_call(adapter: CarrierAdapter, request: WebhookRequest) -> bool:
    """True for the answer webhook of a new call (answer method POST): ``from``, ``to``,
    ``uuid`` and ``conversation_uuid`` and none of the keys of the event webhooks."""
    try:
        body = json_body(request)
    except MalformedWebhookError:
        return False
    return (
        all(body.get(k) for k in ("from", "to", "uuid", "conversation_uuid"))
        and not _NOT_ANSWER_KEYS.intersection(body)
    )


def _parties(
    body: Mapping[str, Any], ctx: call_context.CallContext | None
) -> tuple[str, str | None]:
    """(caller as sent, number called). Our sealed context names both; without it the
    caller's own (inbound) leg does, and a forwarded (outbound) leg names no caller at all:
    its ``from`` is the business number it was dialled from."""
    if ctx is not None:
        return ctx.caller, ctx.called or None
    if body.get("direction") == "outbound":
        return "", _text(body.get("from")) or None
    return _text(body.get("from")), _text(body.get("to")) or None


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call a Voice event reports, else None (answer webhook, progress, answered).

    The event id is ``conversation_uuid``: the caller's leg and the forwarded leg belong to one
    conversation, so every event about the call keys to the same missed call.
    """
    body = json_body(request)
    status = _text(body.get("status")).strip().lower()
    if not status or status in CALL_NOT_ENDED:
        return None
    outcome = adapter.call_outcome(status)
    if outcome is CallOutcome.ANSWERED:
        return None
    conversation = body.get("conversation_uuid") or body.get("uuid") or body.get("call_uuid")
    if not conversation:
        raise MalformedWebhookError("vonage: voice event lacks conversation_uuid and uuid")
    context = call_context.from_request(request, adapter.credentials["signature_secret"])
    caller_raw, called_raw = _parties(body, context)
    return MissedCall(
        carrier=CARRIER,
        event_id=str(conversation),
        caller=to_e164(caller_raw or None),
        called=to_e164(called_raw),
        outcome=outcome,
        occurred_at=first_time(body.get("timestamp")),
        caller_raw=caller_raw,
        voicemail=outcome is CallOutcome.VOICEMAIL,
        raw=dict(body),
    )


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """An ``answered`` event of a leg we can place, else None.

    With our call context it is the forwarded leg: the caller got through (``inbound``).
    Without it, an ``outbound`` leg is the business calling a customer back and ``to`` is the
    customer. The caller's own leg is always answered by Vonage itself, so it says nothing.
    """
    body = json_body(request)
    if _text(body.get("status")).lower() != "answered":
        return None
    ctx = call_context.from_request(request, adapter.credentials["signature_secret"])
    # Our number: the forwarded leg's context names the number the customer called; a leg the
    # business placed (a call back) is ``from`` our number.
    if ctx is not None:
        customer, direction = to_e164(ctx.caller or None), "inbound"
        ours = to_e164(ctx.called or None)
    elif body.get("direction") == "outbound":
        customer, direction = to_e164(_text(body.get("to")) or None), "outbound"
        ours = to_e164(_text(body.get("from")) or None)
    else:
        return None
    leg = body.get("uuid") or body.get("conversation_uuid")
    if customer is None or not leg:
        return None
    return AnsweredCall(
        carrier=CARRIER,
        event_id=f"{leg}:{direction}",
        customer=customer,
        direction=direction,
        occurred_at=first_time(body.get("timestamp")),
        business_number=ours,
    )


def vonage_number(number: str) -> str:
    """Vonage's spelling of an E.164 number: no ``+``."""
    return number[1:] if number.startswith("+") else number


def connect_ncco(
    request: WebhookRequest | None, routing: CallRouting, signature_secret: str
) -> WebhookReply:
    """An NCCO that forwards the call, with our sealed call context on the ``eventUrl``.

    ``connect`` rings one endpoint (Vonage: "currently supports a maximum of one endpoint
    object"), so only the first forwarding number rings; rings of several numbers at once need
    a ``conversation`` set-up this adapter does not build. ``from`` must be one of the
    account's Vonage numbers: we use the number the customer called, else let Vonage pick one
    of the application's (``randomFromNumber``).
    """
    if not routing.forward_to:
        raise ValueError("routing.forward_to is empty: there is nothing to dial")
    body = json_body(request) if request is not None else {}
    caller, called, leg = _text(body.get("from")), _text(body.get("to")), _text(body.get("uuid"))
    token = call_context.seal(call_context.CallContext(caller, called, leg), signature_secret)
    action: dict[str, Any] = {
        "action": "connect",
        "timeout": max(int(routing.ring_timeout_seconds), CONNECT_TIMEOUT_MIN),
        "eventUrl": [call_context.with_context(routing.action_url, token)],
        "eventMethod": "POST",
        "endpoint": [{"type": "phone", "number": vonage_number(routing.forward_to[0])}],
    }
    if called and to_e164(called):
        action["from"] = vonage_number(called)
    else:
        action["randomFromNumber"] = True
    return WebhookReply(json.dumps([action]).encode(), NCCO_CONTENT_TYPE)


# -- messages --------------------------------------------------------------------------------


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text in a Messages API inbound webhook (SMS, or MMS with a caption).

    Vonage's Messages API reports no opt-out keyword class, so ``opt_out_type`` stays None
    and the connector's keyword rules decide.
    """
    body = json_body(request)
    channel = _text(body.get("channel")).lower()
    if channel and channel not in INBOUND_CHANNELS:
        raise UnsupportedEventError(f"vonage: inbound {channel!r} messages are not handled")
    if "status" in body and "text" not in body:
        raise UnsupportedEventError("vonage: a message status is not an inbound message")
    message_id, sender_raw = body.get("message_uuid"), _text(body.get("from"))
    if not message_id or not sender_raw:
        raise MalformedWebhookError("vonage: inbound message lacks message_uuid or from")
    media = [k for k in ("image", "audio", "video", "file", "vcard") if isinstance(body.get(k), dict)]
    text = body.get("text")
    if not isinstance(text, str):
        caption = next((body[k].get("caption") for k in media if body[k].get("caption")), "")
        text = caption if isinstance(caption, str) else ""
    return InboundMessage(
        carrier=CARRIER,
        event_id=str(message_id),
        sender=to_e164(sender_raw),
        recipient=to_e164(_text(body.get("to")) or None),
        body=text,
        received_at=first_time(body.get("timestamp")),
        media_count=len(media),
        raw=dict(body),
    )


def error_code(error: object) -> str | None:
    """The code of a Vonage RFC 7807 error: the fragment of its ``type`` URL
    (``.../api-errors/messages#1320`` gives ``1320``), else its ``title`` when numeric."""
    if not isinstance(error, dict):
        return None
    fragment = urlsplit(_text(error.get("type"))).fragment.strip()
    if fragment:
        return fragment
    title = error.get("title")
    if isinstance(title, int) or (isinstance(title, str) and title.strip().isdigit()):
        return str(title).strip()
    return None


def parse_status(adapter: CarrierAdapter, request: WebhookRequest) -> MessageStatusUpdate:
    """The delivery report in a Messages API status webhook; event id ``message_uuid:status``."""
    body = json_body(request)
    message_id, status_raw = body.get("message_uuid"), _text(body.get("status"))
    if not message_id or not status_raw:
        raise MalformedWebhookError("vonage: message status lacks message_uuid or status")
    status = status_raw.strip().lower()
    return MessageStatusUpdate(
        carrier=CARRIER,
        event_id=f"{message_id}:{status}",
        message_id=str(message_id),
        status=adapter.delivery_status(status),
        occurred_at=first_time(body.get("timestamp")),
        error_code=error_code(body.get("error")),
        raw=dict(body),
        business_number=to_e164(_text(body.get("from")) or None),  # we sent the text
    )
