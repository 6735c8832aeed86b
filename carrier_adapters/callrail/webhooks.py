"""CallRail webhooks: the signature, telling the post-call webhook apart, and parsing it.

CallRail sends several call webhooks as JSON POSTs, each to the URL configured for it
(https://support.callrail.com/hc/en-us/articles/5711246459149-Webhooks):

- **pre-call**, when the call arrives: always ``answered=false``, ``call_type=missed``,
  ``duration=0``, ``voicemail=false`` and no ``business_phone_number``. It looks missed for
  every call, so it is never a missed-call signal;
- **call routing complete**, which adds ``business_phone_number``;
- **post-call**, with everything (``answered``, ``voicemail``, ``duration`` ...), fired once
  the recording and transcript are attached, or after at most 20 minutes;
- **call modified**, when someone edits the call afterwards.

Only the post-call webhook should point at our ``voice`` URL. Because the bodies carry no event
name, a body with no duration and no voicemail (the pre-call and routing-complete shape) is
ignored whatever URL it reaches; a caller who hangs up within the first second is lost with it.

Authenticity: CallRail "generates a secret, random token for every company ... used with the
request payload to generate a hash signature that is passed as a request header". The header
is ``Signature`` and the hash Base64 HMAC-SHA1 of the raw body (CallRail's API reference;
*inferred* here, see :data:`SIGNATURE_HEADER`). There is no timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from carrier_adapters.base import CarrierAdapter
from connector.kernel import safe_json
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
from connector.kernel.events import AnsweredCall, CallOutcome, MissedCall
from connector.kernel.http import WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.signing import constant_time_equals
from connector.kernel.times import first_time

CARRIER = "callrail"
#: The header CallRail puts the signature in, and the default digest (``sha1``; an account may
#: set ``signature_digest: sha256`` should CallRail's signing differ).
SIGNATURE_HEADER = "Signature"
DIGESTS = ("sha1", "sha256")

#: ``call_type`` of an unanswered post-call: a left voicemail is ``voicemail``, a caller who
#: hung up before being routed ``abandoned``, otherwise ``missed``. Anything else is
#: ``UNKNOWN``.
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "missed": CallOutcome.NO_ANSWER,
        "voicemail": CallOutcome.VOICEMAIL,
        "voicemail_transcription": CallOutcome.VOICEMAIL,
        "abandoned": CallOutcome.CANCELED,
    }
)


def signature(signing_key: str, body: bytes, digest: str = "sha1") -> str:
    """Base64 HMAC of the raw body under the company's signing key."""
    mac = hmac.new(signing_key.encode("utf-8"), body, getattr(hashlib, digest))
    return base64.b64encode(mac.digest()).decode()


def verify(request: WebhookRequest, signing_key: str, digest: str = "sha1") -> None:
    """Raise :class:`WebhookVerificationError` unless CallRail signed the raw body."""
    given = request.headers.get(SIGNATURE_HEADER)
    if not given:
        raise WebhookVerificationError("callrail: Signature header missing")
    if not constant_time_equals(signature(signing_key, request.body, digest), given.strip()):
        raise WebhookVerificationError("callrail: Signature does not match")


def load(request: WebhookRequest) -> dict[str, Any]:
    """The call payload; :class:`MalformedWebhookError` unless it is a JSON object with an id."""
    document = safe_json.loads(request.body, what="callrail: webhook")
    if not isinstance(document, dict):
        raise MalformedWebhookError("callrail: webhook is not a JSON object")
    if not (document.get("resource_id") or document.get("id")):
        raise MalformedWebhookError("callrail: webhook lacks resource_id")
    return document


def _flag(value: object) -> bool:
    """CallRail booleans, which some integrations receive as strings."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def is_post_call(document: Mapping[str, Any]) -> bool:
    """True for a post-call payload: the call took time or left a voicemail.

    Pre-call and routing-complete payloads are sent while the call is just arriving, with
    ``duration=0`` and ``voicemail=false``; a missed post-call has rung for a while (its
    ``duration`` counts the ringing; *inferred*) or holds a voicemail.
    """
    return bool(_seconds(document.get("duration"))) or _flag(document.get("voicemail"))


def _event_id(document: Mapping[str, Any]) -> str:
    return str(document.get("resource_id") or document["id"])


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call a post-call webhook reports, or None.

    An inbound post-call with ``answered`` false is missed. The text goes out from the
    business's own number, so ``called`` is ``business_phone_number`` (where CallRail forwarded
    the call) when present, else the tracking number the customer dialled.
    """
    document = load(request)
    if not is_post_call(document) or document.get("direction", "inbound") != "inbound":
        return None
    if _flag(document.get("answered")):
        return None
    call_type = str(document.get("call_type") or "")
    if _flag(document.get("voicemail")):
        outcome = CallOutcome.VOICEMAIL
    elif call_type:
        outcome = adapter.call_outcome(call_type)
    else:
        outcome = CallOutcome.NO_ANSWER
    caller_raw = str(document.get("customer_phone_number") or "")
    called = document.get("business_phone_number") or document.get("tracking_phone_number")
    return MissedCall(
        carrier=CARRIER,
        event_id=_event_id(document),
        caller=to_e164(caller_raw),
        called=to_e164(str(called or "")),
        outcome=outcome,
        occurred_at=first_time(document.get("start_time")),
        caller_raw=caller_raw,
        ring_seconds=_seconds(document.get("duration")),
        voicemail=outcome is CallOutcome.VOICEMAIL,
        raw=document,
    )


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """A post-call with ``answered`` true, in either direction, else None."""
    document = load(request)
    customer = to_e164(str(document.get("customer_phone_number") or ""))
    if not _flag(document.get("answered")) or customer is None:
        return None
    return AnsweredCall(
        carrier=CARRIER,
        event_id=_event_id(document),
        customer=customer,
        direction="outbound" if document.get("direction") == "outbound" else "inbound",
        occurred_at=first_time(document.get("start_time")),
        business_number=business_number(request),
    )


def business_number(request: WebhookRequest) -> str | None:
    """``business_phone_number``, the business's own line CallRail forwarded the call to.

    The tracking number the customer dialled is CallRail's, not one of the account's numbers
    (which text through ``carrier.sms``), so a call that names only that cannot be bound.
    """
    return to_e164(str(load(request).get("business_phone_number") or "")) or None
