"""Timeline activities: the missed call, each text, and the follow-up task.

HubSpot does not de-duplicate creates and has no idempotency header; the connector's
``crm_links`` table is what keeps a retried step from logging twice, and a create that failed
ambiguously (timeout, 5xx) is reported with ``ambiguous=True``.
"""

from __future__ import annotations

import html
import re

import hubspot.crm.objects.calls as calls_sdk
import hubspot.crm.objects.communications as comms_sdk
import hubspot.crm.objects.tasks as tasks_sdk

from crm_adapters.base import CallLog, MessageLog, TaskSpec
from crm_adapters.hubspot.client import HubSpotApi
from crm_adapters.hubspot.mappings import (
    CALL_STATUSES,
    TASK_PRIORITIES,
    associations,
    hs_timestamp,
)
from crm_adapters.hubspot.models import sdk_model

# A body HubSpot has turned into rich text (it does so when a user edits it in the UI).
_LOOKS_HTML = re.compile(r"<(p|br|div|ul|ol)\b", re.IGNORECASE)


def log_call(api: HubSpotApi, call: CallLog) -> str:
    """``POST /crm/v3/objects/calls``, associated to the contact (194) and deal (206).

    https://developers.hubspot.com/docs/guides/api/crm/engagements/calls
    """
    props = {
        "hs_timestamp": hs_timestamp(call.occurred_at),
        "hs_call_title": call.title,
        "hs_call_body": call.body,
        "hs_call_direction": "INBOUND",
        "hs_call_status": CALL_STATUSES[call.outcome],
        "hs_call_from_number": call.caller,
        "hs_call_to_number": call.called,
    }
    if call.owner_id:
        props["hubspot_owner_id"] = call.owner_id
    body = sdk_model(
        calls_sdk.SimplePublicObjectInputForCreate,
        properties=props,
        associations=associations(
            calls_sdk, "calls", {"contacts": call.contact_id, "deals": call.deal_id}
        ),
    )
    with api.translating("call log", ambiguous=True):
        created = api.calls.create(
            simple_public_object_input_for_create=body, _request_timeout=api.timeout
        )
    return str(created.id)


def message_body(message: MessageLog) -> str:
    """The communication's body: direction and numbers first (the object has no direction field).

    The customer's text is HTML-escaped as a precaution: the timeline shows communication bodies
    as rich text (observed in the UI, not stated in the API docs).
    """
    if message.direction == "inbound":
        head = f"Inbound SMS from {message.sender} to {message.recipient}"
    else:
        head = f"Outbound SMS from {message.sender} to {message.recipient}"
    return f"{head}:\n{html.escape(message.body, quote=False)}"


def log_message(api: HubSpotApi, message: MessageLog) -> str:
    """``POST /crm/v3/objects/communications`` (channel SMS), associated 81 / 85.

    ``hs_communication_logged_from`` must be ``CRM`` for API-created communications.
    https://developers.hubspot.com/docs/api/crm/communications
    """
    props = {
        "hs_communication_channel_type": "SMS",
        "hs_communication_logged_from": "CRM",
        "hs_communication_body": message_body(message),
        "hs_timestamp": hs_timestamp(message.occurred_at),
    }
    if message.owner_id:
        props["hubspot_owner_id"] = message.owner_id
    body = sdk_model(
        comms_sdk.SimplePublicObjectInputForCreate,
        properties=props,
        associations=associations(
            comms_sdk,
            "communications",
            {"contacts": message.contact_id, "deals": message.deal_id},
        ),
    )
    with api.translating("message log", ambiguous=True):
        created = api.communications.create(
            simple_public_object_input_for_create=body, _request_timeout=api.timeout
        )
    return str(created.id)


def create_task(api: HubSpotApi, task: TaskSpec) -> str:
    """``POST /crm/v3/objects/tasks`` (type CALL), associated 204 / 216, in a queue when set.

    ``hs_timestamp`` is the due date. The queue is the ``hs_queue_membership_ids`` property
    (the queue's id, from the task queue settings); it is not in the tasks guide's table but is
    the property HubSpot's own UI writes.
    https://developers.hubspot.com/docs/api/crm/tasks
    """
    priority = (task.priority or "HIGH").upper()
    if priority not in TASK_PRIORITIES:
        raise ValueError(f"task priority must be one of {sorted(TASK_PRIORITIES)}")
    props = {
        "hs_task_subject": task.subject,
        "hs_task_body": task.body,
        "hs_timestamp": hs_timestamp(task.due_at),
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": priority,
        "hs_task_type": "CALL",
    }
    if task.owner_id:
        props["hubspot_owner_id"] = task.owner_id
    if task.queue_id:
        props["hs_queue_membership_ids"] = task.queue_id
    body = sdk_model(
        tasks_sdk.SimplePublicObjectInputForCreate,
        properties=props,
        associations=associations(
            tasks_sdk, "tasks", {"contacts": task.contact_id, "deals": task.deal_id}
        ),
    )
    with api.translating("task create", ambiguous=True):
        created = api.tasks.create(
            simple_public_object_input_for_create=body, _request_timeout=api.timeout
        )
    return str(created.id)


def appended(body: str, text: str) -> str:
    """``body`` with ``text`` as a new last line, in the body's own format (plain or HTML)."""
    if not body:
        return text
    if _LOOKS_HTML.search(body):
        return f"{body}<p>{html.escape(text, quote=False)}</p>"
    return f"{body}\n{text}"


def append_to_task(api: HubSpotApi, task_id: str, text: str) -> None:
    """Read ``hs_task_body``, add a line, ``PATCH`` it back (two calls; last writer wins).

    Ambiguous on failure: a PATCH that took effect and is retried would add the line twice.
    """
    with api.translating("task read", ambiguous=False):
        current = api.tasks.get_by_id(
            task_id=task_id, properties=["hs_task_body"], _request_timeout=api.timeout
        )
    body = (current.properties or {}).get("hs_task_body") or ""
    update = sdk_model(tasks_sdk.SimplePublicObjectInput,
                       properties={"hs_task_body": appended(body, text)})
    with api.translating("task update", ambiguous=True):
        api.tasks.update(
            task_id=task_id, simple_public_object_input=update, _request_timeout=api.timeout
        )


def raise_task_priority(api: HubSpotApi, task_id: str) -> None:
    """``PATCH`` ``hs_task_priority`` to HIGH (an escalation); idempotent."""
    update = sdk_model(tasks_sdk.SimplePublicObjectInput, properties={"hs_task_priority": "HIGH"})
    with api.translating("task priority", ambiguous=False):
        api.tasks.update(
            task_id=task_id, simple_public_object_input=update, _request_timeout=api.timeout
        )


def task_completed(api: HubSpotApi, task_id: str) -> bool:
    """Whether the task's ``hs_task_status`` is COMPLETED."""
    with api.translating("task read", ambiguous=False):
        task = api.tasks.get_by_id(
            task_id=task_id, properties=["hs_task_status"], _request_timeout=api.timeout
        )
    return (task.properties or {}).get("hs_task_status") == "COMPLETED"
