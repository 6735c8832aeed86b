"""Twilio webhooks: signature verification, payload parsing and TwiML replies.

Everything here is a pure function of a :class:`~connector.kernel.http.WebhookRequest` (and the Auth
Token for the signature), so it is tested without Flask or the network.

Twilio references:

- Signatures: https://www.twilio.com/docs/usage/webhooks/webhooks-security
- ``<Dial>`` and its ``action`` callback: https://www.twilio.com/docs/voice/twiml/dial
- Call status callbacks: https://www.twilio.com/docs/voice/api/call-resource#statuscallback
- Messaging webhooks: https://www.twilio.com/docs/usage/webhooks/messaging-webhooks
- Message status values: https://www.twilio.com/docs/messaging/api/message-resource
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from urllib.parse import parse_qs, urlsplit

from carrier_adapters.base import CarrierAdapter
from carrier_adapters.dialect import VoiceMarkup
from connector.kernel import clock
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
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
from connector.kernel.signing import constant_time_equals, hmac_base64
from connector.kernel.times import first_time

CARRIER = "twilio"
SIGNATURE_HEADER = "X-Twilio-Signature"
#: Query parameter Twilio adds to the URL when the body is JSON; the hex SHA-256 of the raw body.
BODY_HASH_PARAM = "bodySHA256"
TWIML_CONTENT_TYPE = "text/xml"

#: ``DialCallStatus`` (the ``<Dial action>`` callback) and ``CallStatus`` (status callbacks).
#: https://www.twilio.com/docs/voice/twiml/dial#dialcallstatus-values
#: https://www.twilio.com/docs/voice/api/call-resource#call-status-values
#: ``ANSWERED`` entries mean "not missed"; ``completed`` on a ``<Dial>`` that never bridged is
#: turned into ``CANCELED`` by :func:`parse_call_event` (the caller hung up while it rang).
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "no-answer": CallOutcome.NO_ANSWER,
        "busy": CallOutcome.BUSY,
        "failed": CallOutcome.FAILED,
        "canceled": CallOutcome.CANCELED,
        "completed": CallOutcome.ANSWERED,
        "answered": CallOutcome.ANSWERED,  # DialCallStatus when dialing a <Conference>
        "in-progress": CallOutcome.ANSWERED,
    }
)
#: Call statuses of a call that has not ended yet: nothing to report.
CALL_NOT_ENDED = frozenset({"queued", "initiated", "ringing"})

#: ``MessageStatus`` values. https://www.twilio.com/docs/messaging/api/message-resource
#: ``partially_delivered`` is left out on purpose (its meaning for a one-to-one SMS is not
#: documented), so it maps to ``UNKNOWN`` like any status Twilio adds later.
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "accepted": DeliveryStatus.QUEUED,  # taken by a Messaging Service, sender not chosen yet
        "scheduled": DeliveryStatus.QUEUED,
        "queued": DeliveryStatus.QUEUED,
        "sending": DeliveryStatus.QUEUED,
        "sent": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED,
        "undelivered": DeliveryStatus.UNDELIVERED,
        "failed": DeliveryStatus.FAILED,
        "read": DeliveryStatus.READ,
        "canceled": DeliveryStatus.CANCELED,
        "receiving": DeliveryStatus.RECEIVED,
        "received": DeliveryStatus.RECEIVED,
    }
)

#: TwiML: ``<Dial timeout>`` is 5 to 600 seconds
#: (https://www.twilio.com/docs/voice/twiml/dial#timeout) and Twilio dials at most ten
#: ``<Number>`` nouns at once (https://www.twilio.com/docs/voice/twiml/number).
#: ``answerOnBridge`` keeps the caller hearing ringing (and the call unanswered, unbilled)
#: until someone picks up. No ``statusCallback`` is set on the ``<Number>`` legs: with several
#: numbers one leg can be busy while another answers, so a leg's status is no missed-call
#: signal; the ``action`` callback reports the outcome of the whole ``<Dial>``.
TWIML = VoiceMarkup(
    name="TwiML", content_type=TWIML_CONTENT_TYPE, timeout_min=5, timeout_max=600,
    max_numbers=10, dial_attributes={"answerOnBridge": "true"},
)

_DEFAULT_PORTS = {"https": 443, "http": 80}


# -- signatures ------------------------------------------------------------------------------


def compute_signature(key: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """``X-Twilio-Signature`` for ``url`` and the POST ``params``.

    Base64 of HMAC-SHA1 under the Auth Token over the URL followed by every parameter's name and
    value (:func:`signed_params`).
    """
    return _signature(key, url, signed_params(params))


def signed_params(params: Iterable[tuple[str, str]]) -> str:
    """The part of the signed text after the URL: every parameter's name and value, sorted by
    name; the values of a repeated name are sorted too, and (as in Twilio's own SDKs) identical
    repeats count once."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))


def _signature(key: str, url: str, params_text: str) -> str:
    return hmac_base64(key, (url + params_text).encode("utf-8"), "sha1")


def url_variants(url: str) -> list[str]:
    """``url`` as given plus the spelling Twilio may have signed with or without the port.

    Twilio's signing is inconsistent about ports, so its SDK validators accept the URL with the
    default port added (``:443`` for https, ``:80`` for http) when it has none, and with the port
    removed when it has one; we accept the same set. Everything but the authority is kept byte
    for byte (no re-encoding of the path or query).
    """
    parts = urlsplit(url)
    prefix = f"{parts.scheme}://"
    if not parts.netloc or not url.lower().startswith(prefix.lower()):
        return [url]
    rest = url[len(prefix) + len(parts.netloc) :]
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.endswith(":"):  # an empty port: leave such a URL alone
        return [url]
    try:
        port = parts.port
    except ValueError:
        return [url]
    if port is not None:
        host = hostport[: hostport.rfind(":")]
        other = f"{userinfo}{at}{host}"
    else:
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        if default is None:
            return [url]
        other = f"{userinfo}{at}{hostport}:{default}"
    return [url, url[: len(prefix)] + other + rest]


def verify_signature(request: WebhookRequest, auth_token: str) -> None:
    """Raise :class:`WebhookVerificationError` unless Twilio signed ``request``.

    Form bodies: the signature covers the URL and the POST parameters. JSON bodies: Twilio adds
    ``bodySHA256`` (hex SHA-256 of the raw body) to the URL and signs the URL alone, so the body
    hash is checked too. A body the signature does not cover fails closed.
    """
    given = request.headers.get(SIGNATURE_HEADER)
    if not given:
        raise WebhookVerificationError("twilio: X-Twilio-Signature header missing")
    query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    params: tuple[tuple[str, str], ...] = ()
    if BODY_HASH_PARAM in query:
        body_hash = hashlib.sha256(request.body).hexdigest()
        if not constant_time_equals(body_hash, query[BODY_HASH_PARAM][0]):
            raise WebhookVerificationError("twilio: body does not match bodySHA256")
    elif request.method == "POST":
        params = request.form_items
        if request.body and not params:
            # A body we could not read as a form is not covered by the signature.
            raise WebhookVerificationError("twilio: body is neither a form nor hashed")
    params_text = signed_params(params)  # the same after each spelling of the URL
    matched = False
    for candidate in url_variants(request.url):
        # No short-circuit: every candidate is compared, each in constant time.
        matched |= constant_time_equals(_signature(auth_token, candidate, params_text), given)
    if not matched:
        raise WebhookVerificationError("twilio: signature does not match")


# -- parsing ---------------------------------------------------------------------------------


def _required(request: WebhookRequest, *names: str) -> None:
    missing = [n for n in names if n not in request.form]
    if missing:
        raise MalformedWebhookError(f"twilio: webhook lacks {', '.join(missing)}")


def _seconds(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _left_voicemail(form: Mapping[str, str]) -> bool:
    """True when the callback reports a recording (``<Record>`` or ``<Dial record>``)."""
    duration = _seconds(form.get("RecordingDuration"))
    if duration is not None:
        return duration > 0
    return bool(form.get("RecordingUrl"))


def is_incoming_call(adapter: CarrierAdapter, request: WebhookRequest) -> bool:
    """True for the request a number's Voice URL gets when a new call comes in.

    That request has ``CallStatus=ringing`` and none of the fields of the other voice webhooks:
    no ``DialCallStatus`` (``<Dial action>``), no ``CallbackSource`` (status callbacks), and
    its direction is ``inbound``.
    """
    form = request.form
    return (
        form.get("CallStatus") == "ringing"
        and "DialCallStatus" not in form
        and "CallbackSource" not in form
        and form.get("Direction", "inbound") == "inbound"
    )


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call a voice webhook reports, or None when the call was answered or is live.

    Handles the ``<Dial action>`` callback (``DialCallStatus``) and call status callbacks
    (``CallStatus``). The event id is the parent call's SID (``ParentCallSid`` on a child leg,
    else ``CallSid``), so every callback about one call carries the same id.
    """
    _required(request, "CallSid", "From")
    form = request.form
    dial_status = form.get("DialCallStatus")
    if dial_status is not None:
        status = dial_status.strip().lower()
        duration = _seconds(form.get("DialCallDuration"))
    elif "CallStatus" in form:
        status = form["CallStatus"].strip().lower()
        duration = _seconds(form.get("CallDuration"))
    else:
        raise MalformedWebhookError("twilio: voice webhook lacks CallStatus and DialCallStatus")

    if status in CALL_NOT_ENDED:
        return None
    outcome = adapter.call_outcome(status)
    if outcome is CallOutcome.ANSWERED:
        # DialBridged=false: the <Dial> ended "completed" without connecting anyone, which is
        # what the caller hanging up while it rang looks like. Absent means bridged.
        bridged = form.get("DialBridged", "true").strip().lower() != "false"
        if dial_status is None or bridged:
            return None
        outcome = CallOutcome.CANCELED

    caller_raw = form["From"]
    return MissedCall(
        carrier=CARRIER,
        event_id=form.get("ParentCallSid") or form["CallSid"],
        caller=to_e164(caller_raw),
        called=to_e164(form.get("To")),
        outcome=outcome,
        occurred_at=first_time(form.get("Timestamp"), rfc2822=True),
        caller_raw=caller_raw,
        ring_seconds=duration,
        voicemail=_left_voicemail(form),
        attestation=form.get("StirVerstat") or None,
        raw=dict(form),
    )


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """A call between the business and a customer that a person answered, else None.

    Two shapes count: the ``<Dial action>`` of a forwarded call that was bridged (the customer
    got through), and a status callback of an outbound call (``Direction`` ``outbound-api`` or
    ``outbound-dial``, the business calling back) that was picked up. The parent of an inbound
    call always "completes" because Twilio itself answers it, so that says nothing.
    """
    form = request.form
    if "CallSid" not in form:
        return None
    dial_status = (form.get("DialCallStatus") or "").strip().lower()
    if dial_status in ("completed", "answered"):
        if form.get("DialBridged", "true").strip().lower() == "false":
            return None
        customer = to_e164(form.get("From"))
        direction = "inbound"
    elif (form.get("Direction") or "").startswith("outbound") and "DialCallStatus" not in form:
        status = (form.get("CallStatus") or "").strip().lower()
        answered = status == "in-progress" or (
            status == "completed" and (_seconds(form.get("CallDuration")) or 0) > 0
        )
        if not answered:
            return None
        customer = to_e164(form.get("To"))
        direction = "outbound"
    else:
        return None
    if customer is None:
        return None
    return AnsweredCall(
        carrier=CARRIER,
        event_id=f"{form['CallSid']}:{direction}",
        customer=customer,
        direction=direction,
        occurred_at=first_time(form.get("Timestamp"), rfc2822=True),
        # Our number: ``To`` of a call to the business, ``From`` of a call it placed.
        business_number=to_e164(form.get("From" if direction == "outbound" else "To")),
    )


def _count(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text in an incoming-message webhook.

    ``OptOutType`` (``STOP``, ``START``, ``HELP``) is only sent when the Messaging Service has
    Advanced Opt-Out enabled; the connector applies its own keyword rules either way.
    """
    _required(request, "MessageSid", "From")
    form = request.form
    if "MessageStatus" in form:
        # Status callbacks carry MessageStatus, incoming messages never do (their SmsStatus is
        # "received"); a report on our sms URL is refused, never read as the customer's text.
        raise MalformedWebhookError("twilio: a delivery report was posted to the sms URL")
    return InboundMessage(
        carrier=CARRIER,
        event_id=form["MessageSid"],
        sender=to_e164(form["From"]),
        recipient=to_e164(form.get("To")),
        body=form.get("Body", ""),
        received_at=clock.now(),
        opt_out_type=(form.get("OptOutType") or "").strip().upper() or None,
        media_count=_count(form.get("NumMedia")),
        raw=dict(form),
    )


def parse_status(adapter: CarrierAdapter, request: WebhookRequest) -> MessageStatusUpdate:
    """The delivery report in a message status callback.

    The event id is ``MessageSid:MessageStatus``: Twilio sends one callback per status change and
    may repeat one, so this is the key that makes the callback idempotent.
    """
    form = request.form
    status_raw = form.get("MessageStatus") or form.get("SmsStatus")  # SmsStatus: legacy name
    if not status_raw:
        raise MalformedWebhookError("twilio: status callback lacks MessageStatus")
    if not form.get("MessageStatus") and status_raw.strip().lower() == "received":
        # An incoming message (SmsStatus=received, no MessageStatus), not a report on ours.
        raise MalformedWebhookError("twilio: an incoming message was posted to the status URL")
    _required(request, "MessageSid")
    status = status_raw.strip().lower()
    error_code = (form.get("ErrorCode") or "").strip() or None
    return MessageStatusUpdate(
        carrier=CARRIER,
        event_id=f"{form['MessageSid']}:{status}",
        message_id=form["MessageSid"],
        status=adapter.delivery_status(status),
        occurred_at=clock.now(),
        error_code=error_code,
        raw=dict(form),
        business_number=to_e164(form.get("From")),  # we sent the text
    )
