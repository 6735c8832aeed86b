"""The Zoom Phone adapter: call events in; texts go out through the account's SMS carrier.

Zoom Phone posts its call-state events (``phone.callee_ringing``, ``phone.callee_missed``,
``phone.callee_answered``, ``phone.caller_connected``, ``phone.caller_ended`` ...) as JSON to one
event-subscription URL of a Marketplace app: point it at our ``voice`` URL and copy the app's
*secret token* into ``carrier.credentials.secret_token``. Like CallRail it texts nothing for
us: ``sends_sms`` is False, so the account names an SMS carrier in ``carrier.sms``.

No setup calls: the account file holds only the secret token, which no Zoom API checks, and
the subscription belongs to the Marketplace app, not a number; the setup page shows the URL.

- Events: https://developers.zoom.us/docs/api/phone/events/
- Signature (``x-zm-signature`` = ``v0=`` + hex HMAC-SHA256 of
  ``v0:{x-zm-request-timestamp}:{body}`` under the secret token) and the
  ``endpoint.url_validation`` challenge: https://developers.zoom.us/docs/api/webhooks/
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import marshmallow
from marshmallow import fields, validate

from carrier_adapters.base import HANDSHAKE, CallEventSource, CallRouting, CarrierAdapter
from carrier_adapters.provisioning import WebhookField
from connector.kernel import safe_json
from connector.kernel.errors import MalformedWebhookError, UnsupportedEventError, WebhookVerificationError
from connector.kernel.events import AnsweredCall, CallOutcome, MissedCall
from connector.kernel.http import WebhookReply, WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.signing import constant_time_equals, hmac_hex, require_fresh
from connector.kernel.times import first_time, parse_time

CARRIER = "zoom"
SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
#: Zoom's docs do not bound the timestamp's age; five minutes, as for the other carriers.
TIMESTAMP_TOLERANCE = 300.0
URL_VALIDATION = "endpoint.url_validation"

#: ``phone.callee_missed`` ``handup_result`` (Zoom's spelling) -> outcome; the event itself is
#: the missed call, so a missed event without a result is no answer. ``phone.callee_rejected``
#: is keyed by its event name. The result texts are our reading of the event reference.
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "no answer": CallOutcome.NO_ANSWER,
        "call timeout": CallOutcome.NO_ANSWER,
        "call cancel": CallOutcome.CANCELED,
        "caller cancel": CallOutcome.CANCELED,
        "busy": CallOutcome.BUSY,
        "user busy": CallOutcome.BUSY,
        "call failed": CallOutcome.FAILED,
        "voicemail": CallOutcome.VOICEMAIL,
        "phone.callee_rejected": CallOutcome.REJECTED,
    }
)
#: Events that end an inbound call nobody answered.
MISSED_EVENTS = frozenset({"phone.callee_missed", "phone.callee_rejected"})


class ZoomCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Zoom Phone: the app's event-subscription secret token."""

    secret_token = fields.String(
        required=True,
        validate=validate.Length(min=8),
        metadata={"secret": True, "description": "Secret token of the app's event subscription"},
    )


def _document(request: WebhookRequest) -> dict[str, Any]:
    document = safe_json.loads(request.body, what="zoom: event")
    if not isinstance(document, dict) or not isinstance(document.get("event"), str):
        raise MalformedWebhookError("zoom: event body is not an event object")
    return document


def _call(document: Mapping[str, Any]) -> dict[str, Any]:
    """``payload.object`` of a phone event, with a ``call_id``."""
    call = (document.get("payload") or {}).get("object")
    if not isinstance(call, dict) or not call.get("call_id"):
        raise MalformedWebhookError("zoom: phone event lacks payload.object.call_id")
    return call


def _number(call: Mapping[str, Any], party: str) -> str:
    side = call.get(party)
    return str(side.get("phone_number") or "") if isinstance(side, dict) else ""


def route(adapter: CarrierAdapter, kind: str, request: WebhookRequest) -> str:
    """The URL challenge is a handshake; a phone event is a ``voice`` event wherever it lands."""
    event = _document(request)["event"]
    if event == URL_VALIDATION:
        return HANDSHAKE
    return "voice" if event.startswith("phone.") else kind


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call in ``phone.callee_missed`` or ``phone.callee_rejected``; None for the
    other call events (ringing, answered, ended)."""
    document = _document(request)
    event = document["event"]
    if not event.startswith("phone."):
        raise UnsupportedEventError(f"zoom: {event} is not a call event")
    if event not in MISSED_EVENTS:
        return None
    call = _call(document)
    result = str(call.get("handup_result") or "").strip().lower()
    if event == "phone.callee_missed":
        outcome = adapter.call_outcome(result) if result else CallOutcome.NO_ANSWER
    else:
        outcome = adapter.call_outcome(event)
    rang, ended = parse_time(call.get("ringing_start_time")), parse_time(call.get("call_end_time"))
    caller_raw = _number(call, "caller")
    return MissedCall(
        carrier=CARRIER,
        event_id=str(call["call_id"]),
        caller=to_e164(caller_raw),
        called=to_e164(_number(call, "callee")),
        outcome=outcome,
        occurred_at=first_time(call.get("call_end_time"), document.get("event_ts"), epoch=True),
        caller_raw=caller_raw,
        ring_seconds=(ended - rang).total_seconds() if rang and ended and ended >= rang else None,
        voicemail=outcome is CallOutcome.VOICEMAIL,
        raw=dict(call),
    )


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """``phone.callee_answered`` (the customer got through) or ``phone.caller_connected`` (the
    business called a customer back and was answered), else None."""
    document = _document(request)
    direction = {"phone.callee_answered": "inbound", "phone.caller_connected": "outbound"}.get(
        document["event"]
    )
    if direction is None:
        return None
    call = _call(document)
    customer = to_e164(_number(call, "caller" if direction == "inbound" else "callee"))
    if customer is None:
        return None
    return AnsweredCall(
        carrier=CARRIER,
        event_id=f"{call['call_id']}:{direction}",
        customer=customer,
        direction=direction,
        # Our number: the callee of an inbound call, the caller of a call back.
        business_number=to_e164(_number(call, "callee" if direction == "inbound" else "caller")),
        occurred_at=first_time(
            call.get("answer_start_time") or call.get("connected_start_time"),
            document.get("event_ts"),
            epoch=True,
        ),
    )


class ZoomCarrier(CallEventSource):
    """Zoom Phone: signed call-state events as missed and answered calls; no texting of its own."""

    name: ClassVar[str] = "zoom"
    display_name: ClassVar[str] = "Zoom Phone"
    docs_url: ClassVar[str] = "https://developers.zoom.us/docs/api/phone/events/"
    #: Not called: Zoom Phone sends no texts for the connector.
    default_api_base_url: ClassVar[str] = "https://api.zoom.us"
    config_schema: ClassVar[type[marshmallow.Schema]] = ZoomCredentials
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = CALL_OUTCOMES
    #: The account file holds only the event subscription's secret token, which Zoom's API
    #: cannot check: no setup calls, only the URL to paste.
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField(
            "Zoom App Marketplace > the app > Features > Event Subscriptions > Event notification "
            "endpoint URL (events phone.callee_missed, phone.callee_rejected, "
            "phone.callee_answered, phone.caller_connected)",
            "voice",
            note="Texts go through the account's carrier.sms, at that carrier's URLs.",
        ),
    )

    route = route
    parse_call_event = parse_call_event
    parse_answered_call = parse_answered_call

    def verify_request(self, request: WebhookRequest) -> None:
        """Check ``x-zm-signature`` over the timestamp and the raw body, and the timestamp's age."""
        given = request.headers.get(SIGNATURE_HEADER)
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        if not given or not stamp.isdigit():
            raise WebhookVerificationError("zoom: x-zm-signature or its timestamp missing")
        message = b"v0:" + stamp.encode("ascii") + b":" + request.body
        expected = "v0=" + hmac_hex(self.credentials["secret_token"], message)
        if not constant_time_equals(expected, given):
            raise WebhookVerificationError("zoom: signature does not match")
        require_fresh(float(stamp), tolerance=TIMESTAMP_TOLERANCE)

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        """The URL challenge's answer: ``plainToken`` and ``encryptedToken``, the hex
        HMAC-SHA256 of it under the secret token. An empty 200 to everything else."""
        if kind != HANDSHAKE or request is None:
            return WebhookReply(b"", "text/plain")
        plain = (_document(request).get("payload") or {}).get("plainToken")
        if not isinstance(plain, str) or not plain:
            raise MalformedWebhookError("zoom: url_validation lacks payload.plainToken")
        encrypted = hmac_hex(self.credentials["secret_token"], plain.encode("utf-8"))
        body = json.dumps({"plainToken": plain, "encryptedToken": encrypted}).encode()
        return WebhookReply(body, "application/json")


__all__ = ["ZoomCarrier", "ZoomCredentials"]
