"""The webhooks HubSpot sends to ``/webhooks/crm/hubspot/<account>``: signature v3, then events.

``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(client_secret, method + URI + body + timestamp))
where the timestamp is ``X-HubSpot-Request-Timestamp`` in epoch milliseconds; requests older than
five minutes are rejected. The URI is the full https URL HubSpot called, with a few
percent-encoded characters decoded first, and the body is the raw bytes as received.
https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation

The body is a JSON array of events. Two are acted on: a task's ``hs_task_status`` changing to
``COMPLETED`` (a human response) and a deal moving to another ``dealstage`` (past the first stage:
a saved conversation). Subscribe the app to ``object.propertyChange`` on tasks
(``hs_task_status``) and deals (``dealstage``); every other event is acknowledged.
https://developers.hubspot.com/docs/api/webhooks
"""

from __future__ import annotations

import re
from typing import Any

from connector.kernel import clock, safe_json
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
from connector.kernel.http import WebhookRequest
from connector.kernel.signing import constant_time_equals, hmac_base64, require_fresh
from crm_adapters.base import CrmEvent, LeadStageChanged, TaskCompleted, WebhookTopic

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
#: A task's status changed (acted on when it becomes ``COMPLETED``) and a deal changed stage: the
#: app's subscriptions, in the developer project's ``crmObjects`` terms.
TASK_STATUS = WebhookTopic("object.propertyChange", object_type="task",
                           property_name="hs_task_status")
DEAL_STAGE = WebhookTopic("object.propertyChange", object_type="deal", property_name="dealstage")
TOPICS = (TASK_STATUS, DEAL_STAGE)
#: HubSpot's limit on a request's age.
MAX_AGE_SECONDS = 300.0

# HubSpot's validation guide says to decode these percent-escapes in the URI before hashing
# (HubSpot signs the decoded form). The list is its guide's table as third-party verifiers
# reproduce it; a URL without them (ours have none) is unaffected.
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def signed_uri(url: str) -> str:
    """The URI as HubSpot hashes it: ``url`` with the listed escapes decoded."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], url)


def signature_v3(client_secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """The expected ``X-HubSpot-Signature-v3`` value for a request."""
    message = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    return hmac_base64(client_secret, message)


def verify_v3(request: WebhookRequest, client_secret: str, *, now: float | None = None) -> None:
    """Raise :class:`WebhookVerificationError` unless ``request`` carries a valid v3 signature.

    Fails closed: no secret, a missing header, a malformed or stale timestamp all reject.
    """
    if not client_secret:
        raise WebhookVerificationError("hubspot: no client_secret configured for webhooks")
    given = request.headers.get(SIGNATURE_HEADER)
    stamp = request.headers.get(TIMESTAMP_HEADER)
    if not given or not stamp:
        raise WebhookVerificationError("hubspot: signature v3 headers missing")
    try:
        millis = int(stamp.strip())
    except ValueError:
        raise WebhookVerificationError("hubspot: malformed request timestamp") from None
    require_fresh(
        millis / 1000.0, tolerance=MAX_AGE_SECONDS, now=clock.timestamp() if now is None else now
    )
    expected = signature_v3(client_secret, request.method, request.url, request.body, stamp.strip())
    if not constant_time_equals(expected, given.strip()):
        raise WebhookVerificationError("hubspot: signature v3 does not match")


def _event_id(event: dict[str, Any]) -> str:
    """HubSpot's ``eventId`` (unique per event, the same on a redelivery); without one, what the
    event says, so two different events never share a key."""
    if event.get("eventId") not in (None, ""):
        return str(event["eventId"])
    fields = ("subscriptionType", "objectId", "propertyName", "propertyValue", "occurredAt")
    return "hubspot:" + ":".join(str(event.get(f, "")) for f in fields)


def account_of(request: WebhookRequest) -> str:
    """The portal a delivery comes from (its events' ``portalId``), read before verification
    to find the installation whose app secret checks it. The marketplace app posts every
    portal's events to one URL; a delivery naming several portals is refused, so no event is
    ever acted on for another portal's account."""
    events = safe_json.loads(request.body, what="hubspot: webhook body")
    portals = {str(e.get("portalId")) for e in events if isinstance(e, dict)} \
        if isinstance(events, list) else set()
    if not portals or portals & {"None", ""}:
        raise MalformedWebhookError("hubspot: webhook without a portalId")
    if len(portals) > 1:
        raise MalformedWebhookError("hubspot: one delivery names several portals")
    return portals.pop()


def parse(request: WebhookRequest) -> list[CrmEvent]:
    """The events of a verified delivery that the connector acts on; entries that are not
    objects, or say something else, are skipped. :class:`MalformedWebhookError` when the body is
    not a JSON array."""
    events = safe_json.loads(request.body, what="hubspot: webhook body")
    if not isinstance(events, list):
        raise MalformedWebhookError("hubspot: webhook body is not a JSON array")
    found: list[CrmEvent] = []
    for event in events:
        if not isinstance(event, dict) or not event.get("objectId"):
            continue
        object_id, name = str(event["objectId"]), event.get("propertyName")
        if name == TASK_STATUS.property_name and event.get("propertyValue") == "COMPLETED":
            found.append(TaskCompleted(event_id=_event_id(event), task_id=object_id))
        elif name == DEAL_STAGE.property_name:
            stage = str(event.get("propertyValue") or "")
            found.append(LeadStageChanged(event_id=_event_id(event), lead_id=object_id,
                                          stage=stage))
    return found
