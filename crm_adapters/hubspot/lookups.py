"""Finding the record an earlier attempt made: the call, a text, the deal, the task.

HubSpot does not de-duplicate creates. When a worker dies between HubSpot's answer and our link,
or a create's answer is lost, the job's retry asks here first, and links what it finds instead of
making a second record. Each lookup is one CRM search, narrowed on HubSpot's side by the contact
the record was associated with (the ``associations.contact`` pseudo-property) and, for
activities, by the activity's ``hs_timestamp`` (milliseconds, as search wants dates); the last
comparison, on the fields we wrote, is made here. The task is found by the ``textback call <id>``
line in its body (``CONTAINS_TOKEN``).

Search reads an index that lags writes by a few seconds; the retry comes a backoff or a lapsed
lease later, minutes after the create. https://developers.hubspot.com/docs/api/crm/search
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import ModuleType
from typing import Any

import hubspot.crm.deals as deals_sdk
import hubspot.crm.objects.calls as calls_sdk
import hubspot.crm.objects.communications as comms_sdk
import hubspot.crm.objects.tasks as tasks_sdk

from crm_adapters.base import CallLog, LeadSpec, MessageLog
from crm_adapters.hubspot.activities import message_body
from crm_adapters.hubspot.client import HubSpotApi
from crm_adapters.hubspot.deals import is_open_deal, require_mapping
from crm_adapters.hubspot.models import sdk_model

#: Records one search returns. One contact gets few activities in one millisecond, and few
#: deals with our name in one pipeline; ten is room to spare.
LIMIT = 10


def _millis(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("HubSpot timestamps need an aware datetime")
    return int(value.timestamp() * 1000)


def _stamp_millis(stamp: str | None) -> int | None:
    """``hs_timestamp`` as HubSpot returns it (ISO 8601, ``Z``) in milliseconds."""
    if not stamp:
        return None
    try:
        return _millis(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    except ValueError:
        return None


def _search(api_search: Any, package: ModuleType, operation: str, api: HubSpotApi,
            filters: Sequence[tuple[str, str, str]], properties: Sequence[str]) -> list[Any]:
    """One search of ``package``'s object type with AND'ed ``(property, operator, value)``
    filters, newest first."""
    group = sdk_model(package.FilterGroup, filters=[
        sdk_model(package.Filter, property_name=name, operator=operator, value=value)
        for name, operator, value in filters
    ])
    request = sdk_model(
        package.PublicObjectSearchRequest, filter_groups=[group], properties=list(properties),
        limit=LIMIT, sorts=[{"propertyName": "hs_createdate", "direction": "DESCENDING"}],
    )
    with api.translating(operation, ambiguous=False):
        page = api_search.do_search(public_object_search_request=request,
                                    _request_timeout=api.timeout)
    return list(page.results or [])


def _at(contact_id: str, when: datetime) -> list[tuple[str, str, str]]:
    """Filters for an activity on ``contact_id`` stamped at ``when`` (to the millisecond)."""
    millis = str(_millis(when))
    return [("associations.contact", "EQ", contact_id),
            ("hs_timestamp", "GTE", millis), ("hs_timestamp", "LTE", millis)]


def find_call_log(api: HubSpotApi, call: CallLog) -> str | None:
    """The call engagement logged for ``call``: same contact, time, caller and title."""
    found = _search(api.calls_search, calls_sdk, "call search", api,
                    _at(call.contact_id, call.occurred_at),
                    ("hs_timestamp", "hs_call_title", "hs_call_from_number"))
    for record in found:
        props = record.properties or {}
        if (_stamp_millis(props.get("hs_timestamp")) == _millis(call.occurred_at)
                and props.get("hs_call_from_number") == call.caller
                and props.get("hs_call_title") == call.title):
            return str(record.id)
    return None


def find_message_log(api: HubSpotApi, message: MessageLog) -> str | None:
    """The SMS communication logged for ``message``: same contact, time and body (the body
    names both numbers and the direction)."""
    found = _search(api.communications_search, comms_sdk, "message search", api,
                    _at(message.contact_id, message.occurred_at),
                    ("hs_timestamp", "hs_communication_channel_type", "hs_communication_body"))
    body = message_body(message)
    for record in found:
        props = record.properties or {}
        if (_stamp_millis(props.get("hs_timestamp")) == _millis(message.occurred_at)
                and props.get("hs_communication_channel_type") == "SMS"
                and props.get("hs_communication_body") == body):
            return str(record.id)
    return None


def find_lead(api: HubSpotApi, lead: LeadSpec) -> str | None:
    """The newest open deal of the contact with the lead's name in the lead's pipeline."""
    pipeline, _stage = require_mapping(lead)
    found = _search(api.deals_search, deals_sdk, "deal search", api,
                    [("associations.contact", "EQ", lead.contact_id),
                     ("pipeline", "EQ", pipeline), ("dealname", "EQ", lead.name)],
                    ("dealname", "pipeline", "dealstage", "hs_is_closed"))
    for record in found:
        props = record.properties or {}
        if props.get("dealname") == lead.name and is_open_deal(props):
            return str(record.id)
    return None


def find_task(api: HubSpotApi, marker: str) -> str | None:
    """The newest task whose body holds ``marker`` as a word."""
    found = _search(api.tasks_search, tasks_sdk, "task search", api,
                    [("hs_task_body", "CONTAINS_TOKEN", marker)], ("hs_task_body",))
    return str(found[0].id) if found else None
