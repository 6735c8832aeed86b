"""The webhooks Housecall Pro sends to ``POST /webhooks/crm/housecallpro/<account>``: verify,
then parse.

Webhooks are a MAX-plan feature, off by default and enabled per company (in the Webhooks app of
the Housecall Pro App Store, or ``POST /webhooks/subscription`` for partners). Housecall Pro shows
a **signing secret** with the webhook settings; the account stores it as
``crm.credentials.webhook_signing_secret``.

Signature *(third-party code, consistent across sources; not in the OpenAPI document)*: headers
``Api-Timestamp`` and ``Api-Signature``, where the signature is the lowercase hex
HMAC-SHA256 of ``"{Api-Timestamp}.{raw body}"`` under the signing secret. We add a freshness
check of :data:`MAX_AGE_SECONDS` either way. The timestamp's unit is undocumented: values above
``10**11`` are read as milliseconds, others as seconds *(inferred)*.

Fail closed: without a signing secret nothing can be verified, so every request is refused
(403); a missing header, a malformed or stale timestamp or a wrong signature are refused too.

Payload: ``{"event": "lead.created", "lead": {...}}`` and likewise ``customer.*``, ``job.*``,
``estimate.*`` *(third-party lists; the exact event names are unverified)*. We read ``lead.*``
and ``customer.*`` and act on ``lead.converted`` (converted to an estimate or a job: the lead moved
past its first stage); anything else is authentic but unsupported (answered 200 and ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.kernel import clock, safe_json
from connector.kernel.errors import (
    MalformedWebhookError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.http import WebhookRequest
from connector.kernel.signing import constant_time_equals, hmac_hex, require_fresh
from crm_adapters.base import CrmEvent, LeadStageChanged, WebhookTopic

SIGNATURE_HEADER = "Api-Signature"
TIMESTAMP_HEADER = "Api-Timestamp"
#: Oldest (or furthest in the future) a request may be.
MAX_AGE_SECONDS = 300.0
#: A lead converted to an estimate or a job: the one event the connector acts on.
LEAD_CONVERTED = WebhookTopic("lead.converted")
TOPICS = (LEAD_CONVERTED,)
#: The resources whose events the connector takes.
SUPPORTED_RESOURCES = frozenset({"lead", "customer"})


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """The expected ``Api-Signature`` for a request."""
    return hmac_hex(signing_secret, timestamp.encode() + b"." + body)


def _seconds(stamp: str) -> float:
    try:
        value = float(stamp)
    except ValueError:
        raise WebhookVerificationError("housecallpro: malformed Api-Timestamp") from None
    return value / 1000.0 if value > 1e11 else value


def verify(request: WebhookRequest, signing_secret: str, *, now: float | None = None) -> None:
    """Raise :class:`WebhookVerificationError` unless ``request`` is signed by Housecall Pro."""
    if not signing_secret:
        raise WebhookVerificationError(
            "housecallpro: no webhook signing secret configured "
            "(crm.credentials.webhook_signing_secret), so no webhook can be verified"
        )
    given = (request.headers.get(SIGNATURE_HEADER) or "").strip()
    stamp = (request.headers.get(TIMESTAMP_HEADER) or "").strip()
    if not given or not stamp:
        raise WebhookVerificationError("housecallpro: Api-Signature or Api-Timestamp missing")
    require_fresh(
        _seconds(stamp), tolerance=MAX_AGE_SECONDS, now=clock.timestamp() if now is None else now
    )
    expected = signature(signing_secret, stamp, request.body)
    if not constant_time_equals(expected, given.lower()):
        raise WebhookVerificationError("housecallpro: Api-Signature does not match")


@dataclass(frozen=True)
class HcpWebhookEvent:
    """One authentic lead or customer event.

    ``dedupe_key`` is the same for a redelivery of the same event: event name, object id and the
    object's ``updated_at`` when it has one, otherwise the ``Api-Timestamp``.
    """

    event: str
    resource: str
    object_id: str
    dedupe_key: str


def read_event(request: WebhookRequest) -> HcpWebhookEvent:
    """The event in a verified request.

    Raises :class:`MalformedWebhookError` for a body that is not a JSON object (or an event
    without its object id) and :class:`UnsupportedEventError` for events we do not take.
    """
    payload = safe_json.loads(request.body, what="housecallpro: webhook body")
    if not isinstance(payload, dict):
        raise MalformedWebhookError("housecallpro: webhook body is not a JSON object")
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        # Housecall Pro may send a test delivery when the URL is saved; nothing to do.
        raise UnsupportedEventError("housecallpro: webhook without an event name")
    resource = event.split(".", 1)[0]
    if resource not in SUPPORTED_RESOURCES:
        raise UnsupportedEventError(f"housecallpro: {event} is not handled")
    obj = payload.get(resource)
    object_id = obj.get("id") if isinstance(obj, dict) else None
    if not object_id:
        raise MalformedWebhookError(f"housecallpro: {event} without a {resource} id")
    updated = obj.get("updated_at") if isinstance(obj, dict) else None
    stamp = str(updated or (request.headers.get(TIMESTAMP_HEADER) or "").strip())
    return HcpWebhookEvent(
        event=event,
        resource=resource,
        object_id=str(object_id),
        dedupe_key=f"housecallpro:{event}:{object_id}:{stamp}",
    )


def parse(request: WebhookRequest) -> list[CrmEvent]:
    """The events of a verified request the connector acts on: a converted lead, which counts
    as the lead moving past its first stage (stage ``converted``)."""
    try:
        event = read_event(request)
    except UnsupportedEventError:
        return []
    if event.event != LEAD_CONVERTED.name:
        return []
    return [LeadStageChanged(event_id=event.dedupe_key, lead_id=event.object_id, stage="converted")]
