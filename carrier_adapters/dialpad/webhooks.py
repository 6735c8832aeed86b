"""Dialpad webhooks: HS256 JWT verification, routing and payload parsing.

Dialpad sends every event "in the JWT format ... signed with a secret that you share with
Dialpad": the request body *is* the compact JWT, and its payload is the event's JSON
(https://developers.dialpad.com/docs/event-subscriptions; the webhook's ``signature`` is
``{"type": "jwt", "algo": "HS256", "secret": ...}``). The JWT is verified by
:func:`carrier_adapters.jwt_tokens.verify_hs256`: the MAC compared in constant time before any
part is decoded, only ``alg`` HS256, and ``iat`` and ``exp`` required and checked. Dialpad's pages do not list
these claims; a token without them would be valid forever, so it is refused with a 403 (which
Dialpad does not retry).

Call events carry ``call_id``, ``state``, ``direction``, ``external_number`` (the caller on
inbound calls), ``internal_number`` (ours), ``date_started``/``date_connected``/``date_ended``
(Unix milliseconds), ``entry_point_call_id`` for calls that came through an operator line:
https://developers.dialpad.com/docs/call-events and
https://help.dialpad.com/hc/en-us/articles/115005281886. SMS events carry ``id``,
``created_date``, ``direction``, ``from_number``, ``to_number`` (a list), ``text`` (with the
``message_content_export`` scope) and, for delivery updates, ``message_status``:
https://developers.dialpad.com/docs/sms-events
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from carrier_adapters import jwt_tokens
from carrier_adapters.base import CarrierAdapter
from connector.kernel import clock, safe_json  # noqa: F401 - parses the JWT's parts (jwt_tokens)
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
from connector.kernel.times import first_time, parse_time

CARRIER = "dialpad"

#: ``state`` of a call event that means the inbound call was not answered (*inferred*
#: spellings: Dialpad's subscription examples use ``missed`` and ``voicemail``).
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "missed": CallOutcome.NO_ANSWER,
        "voicemail": CallOutcome.VOICEMAIL,
        "voicemail_uploaded": CallOutcome.VOICEMAIL,
    }
)
#: States that say nothing about a missed call: the call is in progress, was answered, or is
#: a post-call artefact. A state in neither table on an ended, never-connected inbound call is
#: reported as ``UNKNOWN`` (recorded, not texted); otherwise it is ignored.
NOT_MISSED_STATES = frozenset(
    {
        "preanswer", "calling", "ringing", "connected", "merged", "hold", "queued", "eavesdrop",
        "monitor", "barge", "hangup", "blocked", "admin", "parked", "takeover", "all", "postcall",
        "recording", "transcription", "call_transcription", "recap_summary", "csat", "dispositions",
    }
)
#: ``message_status`` of SMS events (*inferred*: Dialpad's docs name the field, not its values).
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "pending": DeliveryStatus.QUEUED,
        "queued": DeliveryStatus.QUEUED,
        "sending": DeliveryStatus.QUEUED,
        "sent": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED,
        "undelivered": DeliveryStatus.UNDELIVERED,
        "failed": DeliveryStatus.FAILED,
        "received": DeliveryStatus.RECEIVED,
    }
)


# -- the JWT ---------------------------------------------------------------------------------


def decode(request: WebhookRequest, secret: str, *, now: float | None = None) -> dict[str, Any]:
    """The claims of the HS256 JWT that is the request body; raises on anything else.

    :func:`carrier_adapters.jwt_tokens.verify_hs256` checks the MAC before any part is decoded
    (with :mod:`connector.kernel.safe_json` and its nesting cap) and requires ``iat`` and
    ``exp``: Dialpad's pages do not list these claims, but a token without them would stay
    valid forever, so one captured event could be replayed at will.
    """
    try:
        token = request.body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise WebhookVerificationError("dialpad: body is not a JWT") from None
    return jwt_tokens.verify_hs256(token, secret, what="dialpad: JWT", now=now)


# -- routing and parsing ---------------------------------------------------------------------


def claims_of(adapter: CarrierAdapter, request: WebhookRequest) -> dict[str, Any]:
    """The verified event: parsing never trusts a body it has not checked itself."""
    return decode(request, adapter.credentials["webhook_secret"])


def route(adapter: CarrierAdapter, kind: str, request: WebhookRequest) -> str:
    """``voice`` for call events; for SMS events ``sms`` when inbound, ``status`` otherwise."""
    claims = claims_of(adapter, request)
    if "call_id" in claims or "state" in claims:
        return "voice"
    if claims.get("direction") == "inbound" and ("from_number" in claims or "text" in claims):
        return "sms"
    if "message_status" in claims or claims.get("direction") == "outbound":
        return "status"
    return kind


def _call_id(claims: Mapping[str, Any]) -> str:
    if not claims.get("call_id"):
        raise MalformedWebhookError("dialpad: call event lacks call_id")
    return str(claims["call_id"])


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call an inbound call event reports, or None.

    ``missed`` and ``voicemail`` states are missed calls. The event id is the entry-point call
    (the operator or department line the customer dialled) when there is one, so a call that
    rang several people is one missed call; otherwise the call id. ``occurred_at`` is when the
    call started ringing, so a later ``connected`` on another leg still cancels the text.
    """
    claims = claims_of(adapter, request)
    call_id = _call_id(claims)
    if claims.get("direction") != "inbound":
        return None
    state = str(claims.get("state") or "")
    if state in adapter.call_outcomes:
        outcome = adapter.call_outcome(state)
    elif state in NOT_MISSED_STATES or not claims.get("date_ended") or claims.get("date_connected"):
        return None
    else:
        outcome = CallOutcome.UNKNOWN
    started = parse_time(claims.get("date_started"), epoch=True)
    ended = parse_time(claims.get("date_ended"), epoch=True)
    caller_raw = str(claims.get("external_number") or "")
    return MissedCall(
        carrier=CARRIER,
        event_id=str(claims.get("entry_point_call_id") or call_id),
        caller=to_e164(caller_raw),
        called=to_e164(str(claims.get("internal_number") or "")),
        outcome=outcome,
        occurred_at=started or ended or clock.now(),
        caller_raw=caller_raw,
        ring_seconds=(ended - started).total_seconds() if started and ended else None,
        voicemail=outcome is CallOutcome.VOICEMAIL,
        raw=dict(claims),
    )


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """A call event with ``date_connected``: answered, in either direction."""
    claims = claims_of(adapter, request)
    call_id = _call_id(claims)
    connected = parse_time(claims.get("date_connected"), epoch=True)
    customer = to_e164(str(claims.get("external_number") or ""))
    if connected is None or customer is None:
        return None
    return AnsweredCall(
        carrier=CARRIER,
        event_id=call_id,
        customer=customer,
        direction="outbound" if claims.get("direction") == "outbound" else "inbound",
        occurred_at=connected,
        business_number=to_e164(str(claims.get("internal_number") or "")) or None,
    )


def _message_id(claims: Mapping[str, Any]) -> str:
    if not claims.get("id"):
        raise MalformedWebhookError("dialpad: SMS event lacks id")
    return str(claims["id"])


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text in an inbound SMS event (``text`` needs the content scope)."""
    claims = claims_of(adapter, request)
    message_id = _message_id(claims)
    if claims.get("direction") != "inbound":
        raise UnsupportedEventError("dialpad: not an inbound SMS")
    recipients = claims.get("to_number")
    recipient = recipients[0] if isinstance(recipients, list) and recipients else recipients
    return InboundMessage(
        carrier=CARRIER,
        event_id=message_id,
        sender=to_e164(str(claims.get("from_number") or "")),
        recipient=to_e164(str(recipient or "")),
        body=str(claims.get("text") or ""),
        received_at=first_time(claims.get("created_date"), epoch=True),
        media_count=1 if claims.get("mms") else 0,
        raw=dict(claims),
    )


def parse_status(adapter: CarrierAdapter, request: WebhookRequest) -> MessageStatusUpdate:
    """A delivery update (an outbound SMS event of a subscription with ``status: true``)."""
    claims = claims_of(adapter, request)
    message_id = _message_id(claims)
    status = str(claims.get("message_status") or "")
    return MessageStatusUpdate(
        carrier=CARRIER,
        event_id=f"{message_id}:{status}",
        message_id=message_id,
        status=adapter.delivery_status(status),
        occurred_at=clock.now(),  # the event carries the message's creation time, not the update's
        raw=dict(claims),
        business_number=to_e164(str(claims.get("from_number") or "")) or None,
    )
