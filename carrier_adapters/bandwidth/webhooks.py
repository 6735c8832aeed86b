"""Bandwidth webhooks: Basic-auth verification, routing, payload parsing and BXML replies.

Everything here is a pure function of a :class:`~connector.kernel.http.WebhookRequest`, so it is tested
without Flask or the network.

Bandwidth references:

- Callback credentials (HTTP Basic, the only scheme offered):
  https://dev.bandwidth.com/docs/account/applications/
- Voice events: https://dev.bandwidth.com/docs/voice/webhooks/initiate/,
  https://dev.bandwidth.com/docs/voice/webhooks/transferComplete/,
  https://dev.bandwidth.com/docs/voice/webhooks/transferDisconnect/,
  https://dev.bandwidth.com/docs/voice/webhooks/disconnect/
- ``<Transfer>``: https://dev.bandwidth.com/docs/voice/bxml/transfer/
- Messaging callbacks (a JSON array): https://dev.bandwidth.com/docs/messaging/webhooks/
- Messaging error codes: https://dev.bandwidth.com/docs/messaging/errors/
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.dialect import VoiceMarkup
from connector.kernel import safe_json
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    InboundMessage,
    MessageStatusUpdate,
    MissedCall,
)
from connector.kernel.http import WebhookReply, WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.signing import constant_time_equals
from connector.kernel.times import first_time

CARRIER = "bandwidth"
AUTH_HEADER = "Authorization"
BXML_CONTENT_TYPE = "application/xml"
log = logging.getLogger(__name__)

#: ``cause`` of ``transferComplete``, ``transferDisconnect`` and ``disconnect`` events
#: (https://dev.bandwidth.com/docs/voice/webhooks/transferComplete/). Bandwidth warns the list is
#: not exhaustive: a cause not listed here maps to ``UNKNOWN``. ``hangup`` means the call
#: ended normally (answered). The error causes mean nobody could be reached: a failed call.
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "hangup": CallOutcome.ANSWERED,
        "busy": CallOutcome.BUSY,
        "timeout": CallOutcome.NO_ANSWER,
        "cancel": CallOutcome.CANCELED,
        "rejected": CallOutcome.REJECTED,
        "callback-error": CallOutcome.FAILED,
        "invalid-bxml": CallOutcome.FAILED,
        "application-error": CallOutcome.FAILED,
        "account-limit": CallOutcome.FAILED,
        "node-capacity-exceeded": CallOutcome.FAILED,
        "error": CallOutcome.FAILED,
    }
)
#: Voice events that end a call or a transfer attempt and carry a ``cause``.
CALL_END_EVENTS = frozenset({"transferComplete", "transferDisconnect", "disconnect"})

#: Messaging callback ``type`` values (https://dev.bandwidth.com/docs/messaging/webhooks/).
#: ``message-sending`` means Bandwidth is handing the message to the carrier: still queued.
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "message-sending": DeliveryStatus.QUEUED,
        "message-sent": DeliveryStatus.SENT,
        "message-delivered": DeliveryStatus.DELIVERED,
        "message-failed": DeliveryStatus.FAILED,
        "message-read": DeliveryStatus.READ,
        "message-received": DeliveryStatus.RECEIVED,
    }
)
INBOUND_TYPES = frozenset({"message-received"})
#: ``9902 delivery-receipt-expired``: Bandwidth timed out waiting for the receipt, which "does
#: not indicate that the message was not received" (messaging webhooks page), so the message
#: counts as sent, not failed.
RECEIPT_EXPIRED = 9902


# -- verification ----------------------------------------------------------------------------


def verify_basic_auth(request: WebhookRequest, username: str, password: str) -> None:
    """Raise :class:`WebhookVerificationError` unless the request carries our Basic credentials.

    Bandwidth signs nothing: it sends the callback credentials set on the Application (and in
    our BXML) as HTTP Basic auth. Both parts are compared in constant time, always both, so
    timing tells nothing about which part was wrong. There is no timestamp to check.
    """
    header = request.headers.get(AUTH_HEADER, "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise WebhookVerificationError("bandwidth: Basic credentials missing")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise WebhookVerificationError("bandwidth: Basic credentials unreadable") from None
    given_user, colon, given_password = decoded.partition(":")
    user_ok = constant_time_equals(username, given_user)
    password_ok = constant_time_equals(password, given_password)
    if not (colon and user_ok and password_ok):
        raise WebhookVerificationError("bandwidth: Basic credentials do not match")


# -- payloads --------------------------------------------------------------------------------


def _json(request: WebhookRequest) -> Any:
    return safe_json.loads(request.body, what="bandwidth: webhook body")


def _events(payload: Any) -> list[dict[str, Any]]:
    """The messaging events of a callback: Bandwidth posts an array (``[{...}]``); a single
    object, as in its OpenAPI examples, is taken as an array of one."""
    items = payload if isinstance(payload, list) else [payload]
    return [item for item in items if isinstance(item, dict)]


def route(adapter: CarrierAdapter, kind: str, request: WebhookRequest) -> str:
    """The kind of event a request carries (:attr:`BandwidthCarrier.url_kinds` says which of
    our URLs may take it).

    A Bandwidth messaging Application posts inbound messages and delivery reports to its
    callback URLs (one or two), so ``message-received`` is ``sms`` and every other
    ``message-*`` type is ``status``. Voice events (``eventType``) are ``voice``. The first event
    of an array decides; an unreadable body keeps the URL's kind (parsing then says 400).
    """
    try:
        payload = _json(request)
    except MalformedWebhookError:
        return kind
    if isinstance(payload, dict) and "eventType" in payload:
        return "voice"
    events = _events(payload)
    if not events or not isinstance(events[0].get("type"), str):
        return kind
    return "sms" if _is_inbound(events[0]) else "status"


def _is_inbound(event: Mapping[str, Any]) -> bool:
    """True for a ``message-received`` event; a ``type`` that is not text is never one."""
    kind = event.get("type")
    return isinstance(kind, str) and kind in INBOUND_TYPES


def _pick(request: WebhookRequest, inbound: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first event of the wanted family and its ``message`` object.

    The contract parses one event per request. Bandwidth documents one event per callback
    (group messages get one callback per recipient), so a longer array is unexpected: the rest
    is logged by count only (never bodies) and left out.
    """
    events = _events(_json(request))
    wanted = [e for e in events if _is_inbound(e) is inbound]
    if not wanted:
        family = "inbound message" if inbound else "delivery report"
        raise MalformedWebhookError(f"bandwidth: callback holds no {family}")
    if len(events) > 1:
        log.warning(
            "bandwidth callback holds %d events; parsing the first %s only",
            len(events),
            "inbound message" if inbound else "delivery report",
        )
    event = wanted[0]
    message = event.get("message")
    if not isinstance(message, dict) or not message.get("id"):
        raise MalformedWebhookError("bandwidth: event lacks message.id")
    return event, message


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text in a ``message-received`` callback.

    Bandwidth flags no opt-out keywords, so ``opt_out_type`` stays None and the connector's own
    keyword rules decide.
    """
    event, message = _pick(request, inbound=True)
    media = message.get("media")
    return InboundMessage(
        carrier=CARRIER,
        event_id=str(message["id"]),
        sender=to_e164(str(message.get("from") or "")),
        recipient=to_e164(str(message.get("owner") or event.get("to") or "")),
        body=str(message.get("text") or ""),
        received_at=first_time(event.get("time")),
        media_count=len(media) if isinstance(media, list) else 0,
        raw=event,
    )


def parse_status(adapter: CarrierAdapter, request: WebhookRequest) -> MessageStatusUpdate:
    """The delivery report in a ``message-sending/-sent/-delivered/-failed/-read`` callback.

    The event id is ``message.id:type``; Bandwidth delivers at least once, so repeats share it.
    """
    event, message = _pick(request, inbound=False)
    kind = str(event.get("type") or "").strip().lower()
    status = adapter.delivery_status(kind)
    code = event.get("errorCode")
    if status is DeliveryStatus.FAILED and str(code) == str(RECEIPT_EXPIRED):
        status = DeliveryStatus.SENT
    return MessageStatusUpdate(
        carrier=CARRIER,
        event_id=f"{message['id']}:{kind}",
        message_id=str(message["id"]),
        status=status,
        occurred_at=first_time(event.get("time")),
        error_code=str(code) if code not in (None, "", 0) else None,
        raw=event,
        # ``message.from`` is the number of ours that sent it (``message.owner`` is the same).
        business_number=to_e164(str(message.get("from") or message.get("owner") or "")) or None,
    )


def _voice_event(request: WebhookRequest) -> dict[str, Any]:
    payload = _json(request)
    if not isinstance(payload, dict) or not payload.get("eventType"):
        raise MalformedWebhookError("bandwidth: voice webhook lacks eventType")
    return payload


def is_incoming_call(adapter: CarrierAdapter, request: WebhookRequest) -> bool:
    """True for the ``initiate`` event Bandwidth sends when a call comes in."""
    try:
        payload = _json(request)
    except MalformedWebhookError:
        return False
    return (
        isinstance(payload, dict)
        and payload.get("eventType") == "initiate"
        and payload.get("direction", "inbound") == "inbound"
    )


def _ring_seconds(event: Mapping[str, Any]) -> float | None:
    if event.get("answerTime") or not event.get("startTime") or not event.get("endTime"):
        return None
    seconds = (first_time(event["endTime"]) - first_time(event["startTime"])).total_seconds()
    return seconds if seconds >= 0 else None


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call a voice event reports, or None.

    ``transferComplete`` (the outcome of our ``<Transfer>``, sent while the caller is still on
    the line) and ``transferDisconnect`` (a transferred leg ended; we ask for it only when one
    number is rung, see :func:`transfer_bxml`) report the forward; a ``disconnect`` of the
    inbound call is the safety net (a caller who hung up before the transfer rang). ``hangup``
    means answered. Other events (``initiate``, ``transferAnswer``, ``answer``...) and
    disconnects of outbound legs give None. The event id is the inbound call's id:
    ``parentCallId`` on a transferred leg, else ``callId``.
    """
    event = _voice_event(request)
    event_type = event["eventType"]
    if event_type not in CALL_END_EVENTS:
        return None
    if event_type == "disconnect" and event.get("direction") != "inbound":
        return None  # an outbound leg, e.g. one of several rung numbers: no missed-call signal
    call_id = event.get("parentCallId") or event.get("callId")
    if not call_id:
        raise MalformedWebhookError("bandwidth: voice event lacks callId")
    cause = str(event.get("cause") or "").strip().lower()
    outcome = adapter.call_outcome(cause)
    if outcome is CallOutcome.ANSWERED:
        return None
    caller_raw = str(event.get("from") or "")
    return MissedCall(
        carrier=CARRIER,
        event_id=str(call_id),
        caller=to_e164(caller_raw),
        called=to_e164(str(event.get("to") or "")),
        outcome=outcome,
        occurred_at=first_time(event.get("eventTime")),
        caller_raw=caller_raw,
        ring_seconds=_ring_seconds(event),
        raw=event,
    )


def voice_event_type(request: WebhookRequest | None) -> str | None:
    """The ``eventType`` of a voice request, None when there is none or it is unreadable."""
    if request is None:
        return None
    try:
        payload = _json(request)
    except MalformedWebhookError:
        return None
    value = payload.get("eventType") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


# -- BXML replies ----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class BxmlReply(WebhookReply):
    """A BXML reply whose ``repr`` leaves out the body (it may hold callback credentials)."""

    def __repr__(self) -> str:
        return f"BxmlReply(<{len(self.body)} bytes>, {self.content_type!r}, {self.status})"


#: BXML ``<Transfer>``: at most 8 ``<PhoneNumber>``; ``callTimeout`` 1 to 300 seconds.
#: ``transferCompleteUrl`` reports the outcome while the caller is still on the line.
BXML = VoiceMarkup(
    name="BXML", content_type=BXML_CONTENT_TYPE, dial_verb="Transfer", number_noun="PhoneNumber",
    action_attribute="transferCompleteUrl", method_attribute="transferCompleteMethod",
    timeout_attribute="callTimeout", timeout_min=1, timeout_max=300, max_numbers=8,
    reply_type=BxmlReply,
)


def transfer_bxml(routing: CallRouting, username: str, password: str) -> WebhookReply:
    """``<Transfer>`` the caller to the routing's numbers, rung at once.

    The ``username``/``password`` make Bandwidth send our callback credentials (it sends none
    otherwise). Bandwidth sends ``transferComplete`` only if the inbound call is still up, so a
    caller hanging up while it rings shows only as a ``transferDisconnect`` (cause ``cancel``)
    of the rung leg. That per-leg event is requested only when a single number is rung: with
    several, a leg also ends ``cancel`` or ``busy`` when another leg answers, which is no
    missed call.
    """
    credentials = {"username": username, "password": password}
    per_leg = {
        "transferDisconnectUrl": routing.status_callback_url,
        "transferDisconnectMethod": "POST",
        **credentials,
    }
    single = len(routing.forward_to) == 1
    return BXML.dial(routing, attributes=credentials, number_attributes=per_leg if single else None)
