"""Plivo webhooks: signature verification, payload parsing and Plivo XML replies.

Everything here is a pure function of a :class:`~connector.kernel.http.WebhookRequest` (and the Auth
Token for signatures), so it is tested without Flask or the network.

Plivo references:

- Voice signatures (``X-Plivo-Signature-V3``): https://www.plivo.com/docs/voice/xml/request/validation
  and the reference implementation in plivo-python ``plivo/utils/signature_v3.py``
- Messaging signatures (``X-Plivo-Signature-V2``):
  https://www.plivo.com/docs/messaging/concepts/signature-validation
- Answer URL parameters: https://www.plivo.com/docs/voice/xml/request
- ``<Dial>`` and its ``action`` callback: https://www.plivo.com/docs/voice/xml/dial and
  https://www.plivo.com/docs/voice/use-cases/dial-status-reporting/
- Incoming messages: https://www.plivo.com/docs/messaging/api/message/handling-incoming
- Status callbacks: https://www.plivo.com/docs/messaging/api/message/message-status-callbacks
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from urllib.parse import parse_qsl, urlparse, urlsplit

from carrier_adapters.base import CarrierAdapter
from carrier_adapters.dialect import VoiceMarkup
from connector.kernel import clock
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    InboundMessage,
    MessageStatusUpdate,
    MissedCall,
)
from connector.kernel.http import WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.signing import constant_time_equals, hmac_base64

CARRIER = "plivo"
V3_HEADER = "X-Plivo-Signature-V3"
V3_NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
V2_HEADER = "X-Plivo-Signature-V2"
V2_NONCE_HEADER = "X-Plivo-Signature-V2-Nonce"
SIGNATURE_HEADERS = (V3_HEADER, V3_NONCE_HEADER, V2_HEADER, V2_NONCE_HEADER)
#: Plivo XML: ``<Dial timeout>`` has no default, so it is always set. ``redirect="true"`` makes
#: Plivo continue the call with the XML our action URL returns (a ``<Hangup/>``). Numbers are
#: written with their country code and no ``+``, as in Plivo's ``<Number>`` examples
#: (https://www.plivo.com/docs/voice/xml/dial).
PLIVO_XML = VoiceMarkup(
    name="Plivo XML", content_type="application/xml", dial_attributes={"redirect": "true"},
    number_format=lambda number: number.lstrip("+"),
)

#: ``DialStatus`` of the ``<Dial action>`` callback: ``completed, busy, failed, timeout,
#: no-answer`` (https://www.plivo.com/docs/voice/use-cases/dial-status-reporting/).
#: ``timeout`` is the ``<Dial timeout>`` running out, so it counts as no answer. ``cancel`` is
#: not a documented ``DialStatus`` but is a documented ``CallStatus`` ("canceled by the caller");
#: it is mapped in case Plivo reports it here too. ``completed`` is refined by
#: :func:`parse_call_event` (an empty ``DialBLegUUID`` means nobody answered).
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "no-answer": CallOutcome.NO_ANSWER,
        "timeout": CallOutcome.NO_ANSWER,
        "busy": CallOutcome.BUSY,
        "failed": CallOutcome.FAILED,
        "cancel": CallOutcome.CANCELED,
        "completed": CallOutcome.ANSWERED,
    }
)

#: Message ``Status`` values (https://www.plivo.com/docs/messaging/api/message/message-status-callbacks):
#: ``queued, sent, failed, delivered, undelivered, read``; ``rejected`` appears in older
#: versions of the page; ``received`` is the state of inbound messages.
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = MappingProxyType(
    {
        "queued": DeliveryStatus.QUEUED,
        "sent": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED,
        "undelivered": DeliveryStatus.UNDELIVERED,
        "failed": DeliveryStatus.FAILED,
        "rejected": DeliveryStatus.FAILED,
        "read": DeliveryStatus.READ,
        "received": DeliveryStatus.RECEIVED,
    }
)

#: ``MessageIntent`` on incoming messages matched against Plivo's standard keyword lists
#: (https://www.plivo.com/docs/messaging/api/message/handling-incoming), as the connector's
#: ``opt_out_type`` words.
MESSAGE_INTENTS: Mapping[str, str] = MappingProxyType({"optout": "STOP", "optin": "START", "help": "HELP"})


# -- signatures ------------------------------------------------------------------------------


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _sorted_query(pairs: Iterable[tuple[str, str]]) -> str:
    """``name=value`` pairs sorted by name, values of a name sorted, joined by ``&``."""
    grouped = _grouped(pairs)
    return "&".join(f"{name}={value}" for name in sorted(grouped) for value in sorted(grouped[name]))


def _sorted_params(pairs: Iterable[tuple[str, str]]) -> str:
    """``namevalue`` of every POST parameter, sorted by name then value, concatenated."""
    grouped = _grouped(pairs)
    return "".join(f"{name}{value}" for name in sorted(grouped) for value in sorted(grouped[name]))


def _base_url(url: str) -> str:
    """Scheme, authority and path of ``url``: no query, fragment or ``;params``."""
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def v3_string_to_sign(
    url: str, nonce: str, method: str = "POST", params: Iterable[tuple[str, str]] = ()
) -> str:
    """What ``X-Plivo-Signature-V3`` signs, as Plivo's SDKs build it.

    The URL without its query; then ``?`` and the decoded query parameters sorted as ``k=v&...``
    when there is a query (or, for POST, when there are POST parameters); for POST, a ``.``
    between a non-empty query and the parameters, then every POST parameter as ``namevalue``
    sorted by name; finally ``.`` and the nonce. Values are compared decoded, as sent.
    """
    query = _sorted_query(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    text = _base_url(url)
    post = list(params) if method.upper() != "GET" else []
    if method.upper() == "GET":
        text += f"?{query}" if query else ""
    else:
        if query or post:
            text += f"?{query}"
        if query and post:
            text += "."
        text += _sorted_params(post)
    return f"{text}.{nonce}"


def compute_v3_signature(
    auth_token: str,
    url: str,
    nonce: str,
    method: str = "POST",
    params: Iterable[tuple[str, str]] = (),
) -> str:
    """Base64 HMAC-SHA256 under the Auth Token of :func:`v3_string_to_sign`."""
    message = v3_string_to_sign(url, nonce, method, params)
    return hmac_base64(auth_token, message.encode("utf-8"), "sha256")


def compute_v2_signature(auth_token: str, url: str, nonce: str) -> str:
    """``X-Plivo-Signature-V2``: Base64 HMAC-SHA256 of the URL without its query, plus the nonce.

    The body is not covered: Plivo's messaging signature authenticates the URL only.
    """
    return hmac_base64(auth_token, (_base_url(url) + nonce).encode("utf-8"), "sha256")


def webhook_kind(url: str) -> str:
    """The last path segment of our webhook URL (``voice``, ``sms`` or ``status``)."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def verify_signature(request: WebhookRequest, auth_token: str) -> None:
    """Raise :class:`WebhookVerificationError` unless Plivo signed ``request``.

    Our ``voice`` URL takes only V3 (it covers the POST parameters); ``sms`` and ``status`` take
    V2, the scheme Plivo documents for messaging. The scheme follows the URL (which both
    signatures cover), never a header the sender chose, so a voice request cannot be passed
    off with the weaker V2. V3 headers may list several signatures separated by commas
    (one per Auth Token Plivo knows); any one matching is enough. Neither scheme carries a
    timestamp, so there is no freshness check (https://www.plivo.com/docs/voice/xml/request/validation):
    the connector spends each nonce once instead (:func:`signature_nonce`), so an empty nonce
    is refused.
    """
    if webhook_kind(request.url) == "voice":
        given = request.headers.get(V3_HEADER)
        nonce = request.headers.get(V3_NONCE_HEADER)
        if not given or not nonce:
            raise WebhookVerificationError("plivo: X-Plivo-Signature-V3 headers missing")
        params: tuple[tuple[str, str], ...] = ()
        if request.method != "GET":
            params = request.form_items
            if request.body and not params:
                # A body we could not read as a form is not covered by the signature.
                raise WebhookVerificationError("plivo: voice webhook body is not a form")
        expected = compute_v3_signature(auth_token, request.url, nonce, request.method, params)
        matched = False
        for candidate in given.split(","):
            matched |= constant_time_equals(expected, candidate.strip())
        if not matched:
            raise WebhookVerificationError("plivo: V3 signature does not match")
        return
    given = request.headers.get(V2_HEADER)
    nonce = request.headers.get(V2_NONCE_HEADER)
    if not given or not nonce:
        raise WebhookVerificationError("plivo: X-Plivo-Signature-V2 headers missing")
    if not constant_time_equals(compute_v2_signature(auth_token, request.url, nonce), given.strip()):
        raise WebhookVerificationError("plivo: V2 signature does not match")


# -- parsing ---------------------------------------------------------------------------------


def _required(request: WebhookRequest, *names: str) -> None:
    missing = [n for n in names if not request.form.get(n)]
    if missing:
        raise MalformedWebhookError(f"plivo: webhook lacks {', '.join(missing)}")


def is_incoming_call(adapter: CarrierAdapter, request: WebhookRequest) -> bool:
    """True for the Answer URL request of a new inbound call.

    Plivo requests the Application's Answer URL with ``Direction=inbound`` and
    ``CallStatus=ringing``; the ``<Dial action>`` callback carries ``DialStatus`` and the
    Hangup URL request ``HangupCause``, so neither is taken for a new call.
    """
    form = request.form
    return (
        form.get("CallStatus") == "ringing"
        and form.get("Direction", "inbound") == "inbound"
        and "DialStatus" not in form
        and "HangupCause" not in form
    )


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call a ``<Dial action>`` callback reports, or None.

    Only the ``<Dial action>`` callback (``DialStatus``) tells whether the forwarded call was
    answered. The Answer URL request (a new call) and the Hangup URL request give None: an
    inbound call hangs up ``completed`` whether or not anyone answered, so it is no signal.
    The event id is the A leg's ``CallUUID`` (``DialALegUUID``), the same for every callback
    about one call.
    """
    _required(request, "CallUUID")
    form = request.form
    dial_status = form.get("DialStatus")
    if dial_status is None:
        return None
    status = dial_status.strip().lower()
    outcome = adapter.call_outcome(status)
    if outcome is CallOutcome.ANSWERED:
        # Plivo documents DialBLegUUID as "empty if nobody answers": a <Dial> that completed
        # without a B leg ended because the caller hung up while it rang.
        if form.get("DialBLegUUID", "").strip():
            return None
        outcome = CallOutcome.CANCELED
    caller_raw = form.get("From", "")
    return MissedCall(
        carrier=CARRIER,
        event_id=form.get("DialALegUUID") or form["CallUUID"],
        caller=to_e164(caller_raw),
        called=to_e164(form.get("To")),
        outcome=outcome,
        occurred_at=clock.now(),  # Plivo sends no event time with the action callback
        caller_raw=caller_raw,
        raw=dict(form),
    )


def _count(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def parse_inbound_message(adapter: CarrierAdapter, request: WebhookRequest) -> InboundMessage:
    """The customer's text posted to the Application's ``message_url``.

    SMS text is in ``Text``, MMS text in ``Body``. ``MessageIntent`` (``optout``, ``optin``,
    ``help``) becomes ``opt_out_type``; the connector applies its own keyword rules either way.
    """
    _required(request, "MessageUUID", "From")
    form = request.form
    if "Status" in form:
        # Delivery reports carry Status, incoming messages never do. Our sms URL takes
        # incoming messages only: a report there is refused, never read as the customer's text.
        raise MalformedWebhookError("plivo: a delivery report was posted to the sms URL")
    intent = (form.get("MessageIntent") or "").strip().lower()
    return InboundMessage(
        carrier=CARRIER,
        event_id=form["MessageUUID"],
        sender=to_e164(form["From"]),
        recipient=to_e164(form.get("To")),
        body=form.get("Text") or form.get("Body") or "",
        received_at=clock.now(),
        opt_out_type=MESSAGE_INTENTS.get(intent),
        media_count=_count(form.get("MediaCount")),
        raw=dict(form),
    )


def parse_status(adapter: CarrierAdapter, request: WebhookRequest) -> MessageStatusUpdate:
    """The delivery report posted to the ``url`` given when the message was sent.

    The event id is ``MessageUUID:Status``: one callback per status change, possibly repeated.
    ``ErrorCode`` is set on ``failed`` and ``undelivered`` (code 200 means the recipient opted
    out with STOP; https://www.plivo.com/docs/messaging/troubleshooting/error-codes).
    """
    _required(request, "MessageUUID", "Status")
    form = request.form
    status = form["Status"].strip().lower()
    error_code = (form.get("ErrorCode") or "").strip() or None
    return MessageStatusUpdate(
        carrier=CARRIER,
        event_id=f"{form['MessageUUID']}:{status}",
        message_id=form["MessageUUID"],
        status=adapter.delivery_status(status),
        occurred_at=clock.now(),
        error_code=error_code,
        raw=dict(form),
        business_number=to_e164(form.get("From")),  # we sent the text
    )


def signature_nonce(request: WebhookRequest) -> str | None:
    """The nonce of the signature scheme our URL takes (V3 on ``voice``, V2 on ``sms`` and
    ``status``), as :func:`verify_signature` checked it; None when absent."""
    header = V3_NONCE_HEADER if webhook_kind(request.url) == "voice" else V2_NONCE_HEADER
    nonce = request.headers.get(header)
    return nonce if nonce else None


# -- Plivo XML replies -----------------------------------------------------------------------

