"""RingCentral webhooks: the subscription handshake, the verification token, routing and parsing.

Everything here is a pure function of a :class:`~connector.kernel.http.WebhookRequest` (and the
configured verification token), so it is tested without Flask or the network.

RingCentral references:

- Creating a webhook subscription and the ``Validation-Token`` handshake:
  https://developers.ringcentral.com/guide/notifications/webhooks/creating-webhooks
- The ``Verification-Token`` header on every notification:
  https://developers.ringcentral.com/guide/notifications/webhooks/receiving
- Notification envelope (``uuid``, ``event``, ``timestamp``, ``subscriptionId``, ``body``):
  https://developers.ringcentral.com/guide/notifications/event-filters
- Telephony session events (``telephonySessionId``, ``parties[]``, ``status.code``,
  ``status.reason``, ``missedCall``):
  https://developers.ringcentral.com/guide/notifications/event-filters/account-telephony-sessions
  and https://developers.ringcentral.com/guide/voice/telephony-session-notifications
- Inbound SMS (instant message) events:
  https://developers.ringcentral.com/guide/notifications/event-filters/instant-message
- Message-store events (counts only, no message ids):
  https://developers.ringcentral.com/guide/notifications/event-filters/message
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from carrier_adapters.base import HANDSHAKE, CarrierAdapter
from connector.kernel import safe_json
from connector.kernel.errors import MalformedWebhookError, UnsupportedEventError, WebhookVerificationError
from connector.kernel.events import (
    AnsweredCall,
    CallOutcome,
    DeliveryStatus,
    InboundMessage,
    MissedCall,
)
from connector.kernel.http import WebhookReply, WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.signing import constant_time_equals
from connector.kernel.times import first_time

CARRIER = "ringcentral"
#: Sent once, when a subscription is created; we must echo it in the response header.
VALIDATION_HEADER = "Validation-Token"
#: Sent with every notification: the ``deliveryMode.verificationToken`` we chose.
VERIFICATION_HEADER = "Verification-Token"
#: RingCentral rejects handshake answers over 1024 bytes (headers included): a token longer
#: than this is not one it sent.
MAX_VALIDATION_TOKEN = 512

#: ``status.reason`` of a party RingCentral marks ``missedCall`` (the reason is documented as
#: "for 'Disconnected' code only"). Reasons that mean the caller gave up are ``CANCELED``;
#: reasons that mean the call could not reach anyone are ``FAILED``. A missed party without a
#: reason is ``NO_ANSWER``; a reason not listed here is ``UNKNOWN``.
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "NoAnswer": CallOutcome.NO_ANSWER,
        "Timeout": CallOutcome.NO_ANSWER,
        "TargetBusy": CallOutcome.BUSY,
        "Rejected": CallOutcome.REJECTED,
        "Cancelled": CallOutcome.CANCELED,
        "Voicemail": CallOutcome.VOICEMAIL,
        "InternalError": CallOutcome.FAILED,
        "InvalidNumber": CallOutcome.FAILED,
        "NoSuchUser": CallOutcome.FAILED,
        "DestinationBlocked": CallOutcome.FAILED,
        "NotEnoughFunds": CallOutcome.FAILED,
        "InternationalDisabled": CallOutcome.FAILED,
    }
)

#: ``messageStatus`` of a message record
#: (https://developers.ringcentral.com/guide/messaging/sms/sms-errors): ``SendingFailed`` means
#: RingCentral could not hand it on, ``DeliveryFailed`` that the carrier did not deliver it.
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "Queued": DeliveryStatus.QUEUED,
        "Sent": DeliveryStatus.SENT,
        "Delivered": DeliveryStatus.DELIVERED,
        "DeliveryFailed": DeliveryStatus.UNDELIVERED,
        "SendingFailed": DeliveryStatus.FAILED,
        "Received": DeliveryStatus.RECEIVED,
    }
)


# -- verification ----------------------------------------------------------------------------


def is_handshake(request: WebhookRequest) -> bool:
    """True for the validation request RingCentral sends when a subscription is created.

    It carries a ``Validation-Token`` header and no notification body. Older RingCentral
    pages show ``Validation-Token`` on notifications too; a request with a body is therefore
    always treated as a notification, which must carry the ``Verification-Token``.
    """
    return bool(request.headers.get(VALIDATION_HEADER, "").strip()) and not request.body.strip()


def verify(request: WebhookRequest, verification_token: str) -> None:
    """Raise :class:`WebhookVerificationError` unless RingCentral sent ``request``.

    RingCentral signs nothing: a notification is authentic when its ``Verification-Token``
    header equals the token we set on the subscription (compared in constant time). The
    handshake is accepted without one (RingCentral does not document sending it there); when
    it does carry one, it must match. Answering a handshake stores nothing.
    """
    given = request.headers.get(VERIFICATION_HEADER)
    if is_handshake(request):
        if given is not None and not constant_time_equals(verification_token, given.strip()):
            raise WebhookVerificationError("ringcentral: Verification-Token does not match")
        return
    if not given:
        raise WebhookVerificationError("ringcentral: Verification-Token header missing")
    if not constant_time_equals(verification_token, given.strip()):
        raise WebhookVerificationError("ringcentral: Verification-Token does not match")


def handshake_reply(request: WebhookRequest | None) -> WebhookReply:
    """200 with the ``Validation-Token`` echoed and an empty JSON body.

    RingCentral wants the answer within 3 s, under 1024 bytes, and (community answer to error
    SUB-525) with ``Content-Type: application/json``. A token with characters a header cannot
    carry is not echoed, so the subscription fails rather than the response.
    """
    token = request.headers.get(VALIDATION_HEADER, "").strip() if request else ""
    headers: dict[str, str] = {}
    if token and len(token) <= MAX_VALIDATION_TOKEN and token.isprintable() and token.isascii():
        headers[VALIDATION_HEADER] = token
    return WebhookReply(b"", "application/json", 200, headers)


# -- routing and parsing ---------------------------------------------------------------------


def load(request: WebhookRequest) -> dict[str, Any]:
    """The notification envelope; :class:`MalformedWebhookError` unless it is a JSON object."""
    document = safe_json.loads(request.body, what="ringcentral: notification")
    if not isinstance(document, dict):
        raise MalformedWebhookError("ringcentral: notification is not a JSON object")
    return document


def _objects(value: object) -> list[dict[str, Any]]:
    """The objects in a JSON array; nothing when ``value`` is not an array."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _body(document: Mapping[str, Any]) -> dict[str, Any]:
    body = document.get("body")
    if not isinstance(body, dict):
        raise MalformedWebhookError("ringcentral: notification has no body")
    return body


def route(adapter: CarrierAdapter, kind: str, request: WebhookRequest) -> str:
    """``handshake`` for the subscription handshake; otherwise the kind the event filter names.

    One subscription may deliver telephony sessions, instant messages and message-store
    changes to the same address, so the ``event`` filter URI decides.
    """
    if is_handshake(request):
        return HANDSHAKE
    try:
        event = str(load(request).get("event") or "")
    except MalformedWebhookError:
        return kind
    if "/telephony/sessions" in event:
        return "voice"
    if "/message-store/instant" in event:
        return "sms"
    if "/message-store" in event:
        return "status"
    return kind


def _number(party_side: object) -> tuple[str, bool]:
    """The raw phone number of a ``from``/``to`` object and whether it is one of our extensions."""
    if not isinstance(party_side, dict):
        return "", False
    return str(party_side.get("phoneNumber") or ""), bool(party_side.get("extensionId"))


def _session(
    request: WebhookRequest,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]] | None:
    """The envelope, body and parties of a telephony session event; None for other events
    (a subscription renewal reminder, say), which must not be answered with an error."""
    document = load(request)
    if "/telephony/sessions" not in str(document.get("event") or ""):
        return None
    body = _body(document)
    if not body.get("telephonySessionId"):
        raise MalformedWebhookError("ringcentral: telephony event lacks telephonySessionId")
    parties = _objects(body.get("parties"))
    return document, body, parties


def _customer_inbound(party: Mapping[str, Any]) -> bool:
    """An ``Inbound`` party of one of our extensions, rung by an outside caller.

    ``Inbound`` is RingCentral's technical direction for the party a call arrives at; an
    outside caller's ``from`` carries no ``extensionId`` (internal calls are not texted).
    """
    _, caller_is_ours = _number(party.get("from"))
    return party.get("direction") == "Inbound" and not caller_is_ours


def _status(party: Mapping[str, Any]) -> tuple[str, str]:
    status = party.get("status")
    if not isinstance(status, dict):
        return "", ""
    return str(status.get("code") or ""), str(status.get("reason") or "")


def _when(document: Mapping[str, Any], body: Mapping[str, Any], key: str) -> datetime:
    return first_time(body.get(key), document.get("timestamp"))


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call a telephony session notification reports, or None.

    A party counts as missed when RingCentral flags it ``missedCall: true`` (its outcome then
    comes from ``status.reason``) or when its status code is ``VoiceMail`` (the call went to
    voicemail). Only ``Inbound`` parties rung by an outside caller count. The event id is the
    ``telephonySessionId``, the same for every notification about one call, so the voicemail
    and the later ``Disconnected`` notification are one missed call.
    """
    session = _session(request)
    if session is None:
        return None
    document, body, parties = session
    for party in parties:
        if not _customer_inbound(party):
            continue
        code, reason = _status(party)
        voicemail = code.lower() == "voicemail"
        if not voicemail and party.get("missedCall") is not True:
            continue
        if voicemail:
            outcome = CallOutcome.VOICEMAIL
        elif reason:
            outcome = adapter.call_outcome(reason)
        else:
            outcome = CallOutcome.NO_ANSWER
        caller_raw, _ = _number(party.get("from"))
        called_raw, _ = _number(party.get("to"))
        return MissedCall(
            carrier=CARRIER,
            event_id=str(body["telephonySessionId"]),
            caller=to_e164(caller_raw),
            called=to_e164(called_raw),
            outcome=outcome,
            occurred_at=_when(document, body, "eventTime"),
            caller_raw=caller_raw,
            voicemail=outcome is CallOutcome.VOICEMAIL,
            raw=document,
        )
    return None


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """An outside caller's call answered on one of our extensions, else None.

    RingCentral documents an ``Inbound`` party's ``Answered`` code as "answered on a target
    endpoint and media is established". Outbound calls (the business calling back) are not
    reported: which party's ``Answered`` means the customer picked up is not documented.
    """
    session = _session(request)
    if session is None:
        return None
    document, body, parties = session
    for party in parties:
        code, _ = _status(party)
        if not _customer_inbound(party) or code != "Answered":
            continue
        customer = to_e164(_number(party.get("from"))[0])
        if customer is None:
            return None
        return AnsweredCall(
            carrier=CARRIER,
            event_id=str(body["telephonySessionId"]),
            customer=customer,
            direction="inbound",
            occurred_at=_when(document, body, "eventTime"),
            # The number the outside caller reached: the party's ``to``.
            business_number=to_e164(_number(party.get("to"))[0] or None),
        )
    return None


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text in an instant-message (``message-store/instant?type=SMS``) event.

    The text is in ``subject`` ("replicates message text"); MMS parts are ``attachments`` of
    type ``MmsAttachment``.
    """
    document = load(request)
    if "/message-store/instant" not in str(document.get("event") or ""):
        raise UnsupportedEventError("ringcentral: not an instant-message event")
    body = _body(document)
    if not body.get("id") or not isinstance(body.get("from"), dict):
        raise MalformedWebhookError("ringcentral: instant message lacks id or from")
    if str(body.get("direction") or "Inbound") != "Inbound":
        raise UnsupportedEventError("ringcentral: not an inbound message")
    recipients = _objects(body.get("to"))
    attachments = _objects(body.get("attachments"))
    return InboundMessage(
        carrier=CARRIER,
        event_id=str(body["id"]),
        sender=to_e164(_number(body["from"])[0]),
        recipient=to_e164(_number(recipients[0])[0]) if recipients else None,
        body=str(body.get("subject") or ""),
        received_at=_when(document, body, "creationTime"),
        media_count=sum(1 for a in attachments if a.get("type") == "MmsAttachment"),
        raw=document,
    )
