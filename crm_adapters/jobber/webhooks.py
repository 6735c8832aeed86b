"""Webhooks Jobber sends to ``/webhooks/crm/jobber``: signature check and parsing.

Jobber has one webhook URL per app, not per account: the delivery names the Jobber account
(``accountId``, the EncodedId the install stored), which leads to ours through the installation.

Each request carries ``X-Jobber-Hmac-SHA256``, the base64 HMAC-SHA256 of the body under the app's
OAuth client secret. We hash the raw bytes as received (Jobber's own template re-encodes the
parsed JSON, which breaks on any difference in key order or spacing). There is no timestamp, so
replay protection is the de-duplication below.

The body names the event only: ``{"data": {"webHookEvent": {"topic", "appId", "accountId",
"itemId", "occurredAt"}}}``; apps created before 2023-12-08 get ``occuredAt`` (sic), apps created
before 2022-04-11 get the same fields form-encoded. Jobber wants an answer within 1 second, so
the connector queues the work, and delivers at least once, so each event has a
:attr:`JobberWebhookEvent.dedupe_key`.
https://developer.getjobber.com/docs/using_jobbers_api/setting_up_webhooks
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.kernel import safe_json
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
from connector.kernel.http import WebhookRequest
from connector.kernel.signing import constant_time_equals, hmac_base64
from crm_adapters.base import AppDisconnected, CrmEvent, WebhookTopic

SIGNATURE_HEADER = "X-Jobber-Hmac-SHA256"

#: The app was disconnected from a Jobber account. Required for the App Marketplace (the
#: installation must show as disconnected).
APP_DISCONNECT = WebhookTopic("APP_DISCONNECT")
#: Topics the connector acts on; subscribe to these in the Developer Center.
TOPICS = (APP_DISCONNECT,)
SUBSCRIBED_TOPICS = tuple(topic.name for topic in TOPICS)


@dataclass(frozen=True)
class JobberWebhookEvent:
    """One webhook delivery: what happened (``topic``), in which account, to which record."""

    topic: str
    account_id: str
    item_id: str
    occurred_at: datetime | None
    app_id: str | None = None
    raw_occurred_at: str = field(default="", repr=False)

    @property
    def dedupe_key(self) -> str:
        """Equal for redeliveries of the same event: topic, account, item and time as sent."""
        return f"jobber:{self.topic}:{self.account_id}:{self.item_id}:{self.raw_occurred_at}"


def signature(client_secret: str, body: bytes) -> str:
    """The expected ``X-Jobber-Hmac-SHA256`` for ``body``."""
    return hmac_base64(client_secret, body)


def verify(request: WebhookRequest, client_secret: str) -> None:
    """Raise :class:`WebhookVerificationError` unless the signature matches; fails closed."""
    if not client_secret:
        raise WebhookVerificationError("jobber: no client_secret configured for webhooks")
    given = request.headers.get(SIGNATURE_HEADER)
    if not given:
        raise WebhookVerificationError("jobber: X-Jobber-Hmac-SHA256 header missing")
    if not constant_time_equals(signature(client_secret, request.body), given.strip()):
        raise WebhookVerificationError("jobber: webhook signature does not match")


def _event_fields(request: WebhookRequest) -> dict[str, Any]:
    prefix = "data[webHookEvent]["
    if request.form_items and any(k.startswith(prefix) for k, _ in request.form_items):
        # Form-encoded bodies of older apps: data[webHookEvent][topic]=...
        return {k[len(prefix) : -1]: v for k, v in request.form_items if k.startswith(prefix)}
    body = safe_json.loads(request.body, what="jobber: webhook body")
    data = body.get("data") if isinstance(body, dict) else None
    event = data.get("webHookEvent") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        raise MalformedWebhookError("jobber: webhook body has no data.webHookEvent")
    return event


def _timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def read_event(request: WebhookRequest) -> JobberWebhookEvent:
    """The event in a webhook; :class:`MalformedWebhookError` when fields are missing."""
    event = _event_fields(request)
    topic = str(event.get("topic") or "")
    account_id = str(event.get("accountId") or "")
    if not topic or not account_id:
        raise MalformedWebhookError("jobber: webhook event without topic or accountId")
    raw_time = str(event.get("occurredAt") or event.get("occuredAt") or "")
    return JobberWebhookEvent(
        topic=topic,
        account_id=account_id,
        item_id=str(event.get("itemId") or ""),
        occurred_at=_timestamp(raw_time) if raw_time else None,
        app_id=str(event["appId"]) if event.get("appId") else None,
        raw_occurred_at=raw_time,
    )


def account_of(request: WebhookRequest) -> str:
    """The Jobber account a delivery is about, read before verification to pick the secret."""
    return read_event(request).account_id


def parse(request: WebhookRequest) -> list[CrmEvent]:
    """The events of a verified delivery the connector acts on: ``APP_DISCONNECT`` only."""
    event = read_event(request)
    if event.topic != APP_DISCONNECT.name:
        return []
    return [AppDisconnected(event_id=event.dedupe_key, external_account_id=event.account_id)]
