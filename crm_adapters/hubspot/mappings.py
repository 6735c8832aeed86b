"""Mapping tables between our domain and HubSpot's property values and association types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from connector.kernel.events import CallOutcome
from crm_adapters.hubspot.models import sdk_model

#: HUBSPOT_DEFINED association type ids, directional (from object -> to object). A reverse id on a
#: forward call fails.
#: https://developers.hubspot.com/docs/api-reference/crm-associations-v4/guide
ASSOCIATION_TYPE_IDS: Mapping[tuple[str, str], int] = {
    ("calls", "contacts"): 194,
    ("calls", "deals"): 206,
    ("communications", "contacts"): 81,
    ("communications", "deals"): 85,
    ("tasks", "contacts"): 204,
    ("tasks", "deals"): 216,
    ("deals", "contacts"): 3,
}

#: ``hs_call_status`` for each outcome. HubSpot's values are BUSY, CALLING_CRM_USER, CANCELED,
#: COMPLETED, CONNECTING, FAILED, IN_PROGRESS, NO_ANSWER, QUEUED, RINGING; there is no
#: "rejected" or "voicemail", so those become the nearest status and the body says the rest.
#: https://developers.hubspot.com/docs/guides/api/crm/engagements/calls#properties
CALL_STATUSES: Mapping[CallOutcome, str] = {
    CallOutcome.NO_ANSWER: "NO_ANSWER",
    CallOutcome.BUSY: "BUSY",
    CallOutcome.FAILED: "FAILED",
    CallOutcome.CANCELED: "CANCELED",
    CallOutcome.REJECTED: "BUSY",
    CallOutcome.VOICEMAIL: "NO_ANSWER",
    CallOutcome.AFTER_HOURS: "NO_ANSWER",
    CallOutcome.ANSWERED: "COMPLETED",
    CallOutcome.UNKNOWN: "NO_ANSWER",
}

#: ``hs_task_priority`` values.
#: https://developers.hubspot.com/docs/api/crm/tasks
TASK_PRIORITIES = frozenset({"LOW", "MEDIUM", "HIGH"})

#: Deal stages that are closed in every portal's default pipeline; used only when a deal read
#: carries no ``hs_is_closed`` (custom pipelines mark closed stages in their metadata instead).
DEFAULT_CLOSED_STAGES = frozenset({"closedwon", "closedlost"})


def hs_timestamp(value: datetime) -> str:
    """An aware datetime as HubSpot's ``hs_timestamp`` (ISO 8601 UTC with milliseconds)."""
    if value.tzinfo is None:
        raise ValueError("HubSpot timestamps need an aware datetime")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def associations(
    package: ModuleType, from_type: str, targets: Mapping[str, str | None]
) -> list[Any]:
    """Inline ``associations`` for a create, built from ``package``'s SDK models.

    ``targets`` maps the target object type (``"contacts"``, ``"deals"``) to a record id; None
    ids are skipped.
    https://developers.hubspot.com/docs/api-reference/crm-associations-v4/guide
    """
    result = []
    for to_type, record_id in targets.items():
        if not record_id:
            continue
        spec = sdk_model(
            package.AssociationSpec,
            association_category="HUBSPOT_DEFINED",
            association_type_id=ASSOCIATION_TYPE_IDS[(from_type, to_type)],
        )
        result.append(
            sdk_model(package.PublicAssociationsForObject,
                      to=sdk_model(package.PublicObjectId, id=str(record_id)), types=[spec])
        )
    return result
