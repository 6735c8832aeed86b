"""HubSpot app events: textback's event types on the contact timeline, and sending occurrences.

Each event type is declared once here; ``textback manifests render`` writes it into the
developer project (``src/app/app-events/``) and :func:`send` posts its occurrences. App events
belong to marketplace apps installed with OAuth, need the ``timeline`` scope and HubSpot's
approval of the app for the feature; occurrences are immutable.
https://developers.hubspot.com/docs/apps/developer-platform/add-features/app-events/reference
https://developers.hubspot.com/docs/apps/developer-platform/add-features/app-events/send-event-occurrences

An occurrence is ``POST /integrators/timeline/v4/events`` with ``eventTypeName`` (the event
type's uid), ``objectId`` (the contact), ``id`` (ours: HubSpot keeps one occurrence per id and
event type, so a retry adds nothing; a repeat answers 409, which counts as done), ``timestamp``
and ``properties``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import requests

from connector.kernel.events import CallOutcome
from connector.kernel.http import DEFAULT_TIMEOUT
from crm_adapters.base import AppEvent
from crm_adapters.hubspot.client import HubSpotConflictError, api_error, transport_error

PATH = "/integrators/timeline/v4/events"
#: The scope sending occurrences needs.
SCOPES = ("timeline",)


@dataclass(frozen=True)
class EventProperty:
    """One property of an event type: what a workflow branches on."""

    name: str
    label: str
    type: str = "string"  # or "enumeration" with ``options``
    options: tuple[tuple[str, str], ...] = ()  # (value, label)


@dataclass(frozen=True)
class EventType:
    """An app event type as HubSpot's ``app-event`` component declares it."""

    kind: str
    uid: str
    name: str
    header_template: str
    detail_template: str
    properties: tuple[EventProperty, ...]

    def component(self) -> dict[str, Any]:
        """The ``*-hsmeta.json`` document of this event type."""
        properties = []
        for prop in self.properties:
            entry: dict[str, Any] = {"name": prop.name, "label": prop.label, "type": prop.type}
            if prop.options:
                entry["options"] = [{"value": v, "label": label} for v, label in prop.options]
            properties.append(entry)
        return {"uid": self.uid, "type": "app-event", "config": {
            "name": self.name, "objectType": "CONTACT", "headerTemplate": self.header_template,
            "detailTemplate": self.detail_template, "properties": properties}}


_BUSINESS_NUMBER = EventProperty("business_number", "Business number")
_OWNER = EventProperty("owner_id", "Owner (HubSpot owner id)")
_CALL = EventProperty("call_id", "textback call id")
_OUTCOMES = tuple((o.value, o.value.replace("-", " ").capitalize())
                  for o in CallOutcome if o is not CallOutcome.ANSWERED)

MISSED_CALL = EventType(
    kind="missed_call", uid="textback_missed_call", name="textback: missed call",
    header_template="Missed call to {{business_number}}",
    detail_template="Outcome: {{outcome}}. Texted back: {{texted}}. {{suppression_reason}}",
    properties=(
        _BUSINESS_NUMBER,
        EventProperty("outcome", "Call outcome", "enumeration", _OUTCOMES),
        EventProperty("texted", "Texted back", "enumeration", (("yes", "Yes"), ("no", "No"))),
        EventProperty("suppression_reason", "Why it was not texted"),
        _OWNER, _CALL,
    ),
)
TEXTED_BACK = EventType(
    kind="texted_back", uid="textback_texted_back", name="textback: texted back",
    header_template="Texted back from {{business_number}}",
    detail_template="Template: {{template}} ({{language}})",
    properties=(_BUSINESS_NUMBER, EventProperty("template", "Template"),
                EventProperty("language", "Language"), _OWNER, _CALL),
)
CUSTOMER_REPLIED = EventType(
    kind="customer_replied", uid="textback_customer_replied", name="textback: customer replied",
    header_template="Replied by text to {{business_number}}",
    detail_template="{{reply_text}}",
    properties=(_BUSINESS_NUMBER, EventProperty("reply_text", "Reply text"), _OWNER, _CALL),
)
OPTED_OUT = EventType(
    kind="opted_out", uid="textback_opted_out", name="textback: opted out",
    header_template="Opted out of texts from {{business_number}}",
    detail_template="Said {{keyword}}",
    properties=(_BUSINESS_NUMBER, EventProperty("keyword", "What they sent")),
)
EVENT_TYPES: Mapping[str, EventType] = {
    t.kind: t for t in (MISSED_CALL, TEXTED_BACK, CUSTOMER_REPLIED, OPTED_OUT)}


def body(event: AppEvent) -> dict[str, Any]:
    """The request body of one occurrence; properties the event type does not declare are
    left out (HubSpot refuses an occurrence that does not match its type)."""
    kind = EVENT_TYPES.get(event.kind)
    if kind is None:
        raise ValueError(f"no HubSpot app event type {event.kind!r}")
    declared = {p.name for p in kind.properties}
    return {
        "eventTypeName": kind.uid,
        "objectId": str(event.contact_id),
        "id": event.event_id,
        "timestamp": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "properties": {k: v for k, v in event.properties.items() if k in declared},
    }


def send(session: requests.Session, base_url: str, token: str, event: AppEvent, *,
         timeout: tuple[float, float] = DEFAULT_TIMEOUT, secrets: Sequence[str] = ()) -> None:
    """Post one occurrence; a 409 (HubSpot already has this id) counts as sent."""
    operation = f"app event {event.kind}"
    try:
        response = session.post(f"{base_url}{PATH}", json=body(event), timeout=timeout,
                                headers={"Authorization": f"Bearer {token}"},
                                allow_redirects=False)
    except requests.RequestException as exc:
        # A lost answer is safe to retry: the id makes the repeat a no-op.
        raise transport_error(exc, operation=operation, ambiguous=False) from None
    if response.status_code < 300:
        return
    error = api_error(response.status_code, response.content, response.headers,
                      operation=operation, ambiguous=False, secrets=(token, *secrets))
    if isinstance(error, HubSpotConflictError):
        return
    raise error
