"""The timeline (client notes) and the follow-up (a task, or an assessment on the request).

Jobber has no call or SMS activity object; both are notes. Each ``log_*`` call makes exactly one
``clientCreateNote``; when the lead's request is known the note is linked to the client's
requests (``linkedTo: {requests: true}``), so it shows on the client and on the request. Jobber
links by kind, not by id: the note shows on every request of that client. Jobber does not
de-duplicate creates; the connector's ``crm_links`` does.

A note has no field of ours to search on, so :func:`find_note` (asked on a retry whose earlier
attempt may have written the note) reads the client's newest notes and compares their text with
the text :func:`log_call` or :func:`log_message` would write.

The follow-up is a ``taskCreate`` assigned to the configured team member (``assignedTo``), or,
for accounts that prefer site visits, an ``assessmentCreate`` on the request
(``teamMemberIdsToAssign``). Assessment ids are handed out as ``assessment:<id>`` so
:func:`append_to_task` knows which object to edit whatever the setting is later.

:func:`find_task` (asked on a retry whose earlier attempt may have made the follow-up) cannot
search tasks by their text: Jobber lists tasks only by schedule. So it lists the tasks scheduled
over the follow-up's due time (the retry asks with the first attempt's due time) for its owner,
and takes the client's task whose instructions hold the call's marker as a word. An assessment
is read from its request (a request has one) and compared by the marker the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connector.kernel.errors import PermanentProviderError
from crm_adapters.base import CallLog, MessageLog, TaskSpec, holds_marker
from crm_adapters.jobber.client import JobberApi
from crm_adapters.jobber.documents import (
    ASSESSMENT_CREATE,
    ASSESSMENT_DONE,
    ASSESSMENT_EDIT,
    ASSESSMENT_INSTRUCTIONS,
    CLIENT_NOTE_CREATE,
    CLIENT_NOTES,
    REQUEST_ASSESSMENT,
    SCHEDULED_TASKS,
    TASK_CREATE,
    TASK_DONE,
    TASK_EDIT,
    TASK_INSTRUCTIONS,
)
from crm_adapters.jobber.errors import PROVIDER

#: ``follow_up`` settings.
FOLLOW_UP_TASK = "task"
FOLLOW_UP_ASSESSMENT = "assessment"
FOLLOW_UPS = (FOLLOW_UP_TASK, FOLLOW_UP_ASSESSMENT)
#: Prefix of the ids :func:`create_task` returns for assessments.
ASSESSMENT_PREFIX = "assessment:"
#: Length of the follow-up's calendar slot, from its due time.
SLOT = timedelta(minutes=15)
#: Newest notes :func:`find_note` reads. The retry that looks comes a backoff (or a lapsed lease)
#: after the attempt that may have written the note, so only notes written in those minutes sit
#: above it: the rest of that conversation's texts and what staff type meanwhile, far fewer than
#: 50. Jobber prices a connection at ``first`` times the fields selected, so this page costs
#: about a hundred points of the account's 10,000-point bucket.
NOTES_PAGE = 50
#: The window :func:`find_task` lists, from the task's due time: one second, the precision of
#: the ``startAt`` :func:`task_input` sends. The task's own slot (``startAt`` to ``startAt`` +
#: :data:`SLOT`) overlaps it whether Jobber counts the window's ends in or not, and even when it
#: keeps ``startAt`` to the minute only; a zero-length window would meet the slot at its start
#: alone, which a half-open comparison (``start < window end``) misses and Jobber may refuse.
TASK_WINDOW = timedelta(seconds=1)
#: Tasks per ``scheduledItems`` page in :func:`find_task`. What overlaps that second is the
#: owner's tasks from calls missed in the slot's 15 minutes before it, and their all-day tasks
#: of that day: a handful. Priced at ``first`` times the fields selected (four), a page costs
#: about a hundred points of the 10,000-point bucket, which restores 500 points a second.
TASKS_PAGE = 25
#: Pages :func:`find_task` reads at most (100 tasks, about 400 points, under a second of the
#: bucket's restore). A moment busier than that is past what a retry can afford to read: the
#: follow-up may then be made twice, as when a CRM cannot search.
TASK_PAGES = 4


def _utc(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("Jobber timestamps need an aware datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(value: datetime) -> str:
    # To the second: a note is found again (find_note) by its text alone, and the time is what
    # tells apart a caller's two calls, or two equal texts ("ok", "ok"), within one minute.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def call_note(call: CallLog) -> str:
    """The missed call as note text: the connector's title and body, then the call's facts."""
    facts = f"Call from {call.caller} to {call.called or 'the business line'} at {_when(call.occurred_at)}"
    facts += f" ({call.outcome.value})."
    return "\n".join(part for part in (call.title, call.body, facts) if part)


def message_note(message: MessageLog) -> str:
    """One text as note text: direction, numbers and time first (notes have no such fields)."""
    direction = "Inbound" if message.direction == "inbound" else "Outbound"
    head = f"{direction} text from {message.sender} to {message.recipient} at {_when(message.occurred_at)}"
    return f"{head}:\n{message.body}"


def _note(api: JobberApi, client_id: str, text: str, request_id: str | None) -> str:
    note_input: dict[str, Any] = {"message": text}
    if request_id:
        note_input["linkedTo"] = {"requests": True}
    payload = api.mutate(
        CLIENT_NOTE_CREATE, {"clientId": client_id, "input": note_input}, "clientCreateNote"
    )
    return _id_of(payload.get("clientNote"), "clientCreateNote")


def log_call(api: JobberApi, call: CallLog) -> str:
    """One client note for the missed call, linked to the client's requests when there is one."""
    return _note(api, call.contact_id, call_note(call), call.deal_id)


def log_message(api: JobberApi, message: MessageLog) -> str:
    """One client note for one text."""
    return _note(api, message.contact_id, message_note(message), message.deal_id)


def normalised(text: str) -> str:
    r"""Note text as compared by :func:`find_note`: Jobber may hand a message back with ``\r\n``
    line endings and trailing whitespace trimmed or added, which says nothing about its origin."""
    return text.replace("\r\n", "\n").rstrip()


def _newest_notes(api: JobberApi, client_id: str) -> list[Mapping[str, Any]]:
    data = api.execute(CLIENT_NOTES, {"clientId": client_id, "first": NOTES_PAGE})
    client = data.get("client")
    if not isinstance(client, Mapping):
        return []  # the client is gone or in another account: no note of ours is there
    nodes = (client.get("notes") or {}).get("nodes") or []
    return [n for n in nodes if isinstance(n, Mapping) and n.get("id")]


def find_note(api: JobberApi, client_id: str, text: str) -> str | None:
    """The id of the newest of the client's :data:`NOTES_PAGE` newest notes whose message is
    ``text`` (compared :func:`normalised`), or None."""
    wanted = normalised(text)
    for note in _newest_notes(api, client_id):
        if normalised(str(note.get("message") or "")) == wanted:
            return str(note["id"])
    return None


def find_call_log(api: JobberApi, call: CallLog) -> str | None:
    """The note an earlier :func:`log_call` of ``call`` wrote, or None."""
    return find_note(api, call.contact_id, call_note(call))


def find_message_log(api: JobberApi, message: MessageLog) -> str | None:
    """The note an earlier :func:`log_message` of ``message`` wrote, or None."""
    return find_note(api, message.contact_id, message_note(message))


def _id_of(record: Any, operation: str) -> str:
    if not isinstance(record, Mapping) or not record.get("id"):
        raise PermanentProviderError(f"Jobber {operation} returned no id", provider=PROVIDER)
    return str(record["id"])


def task_input(task: TaskSpec) -> dict[str, Any]:
    """``TaskCreateInput``: title, instructions, a slot at the due time, the assignee.

    Jobber tasks have no priority or queue; ``priority`` and ``queue_id`` are not sent.
    """
    fields: dict[str, Any] = {
        "title": task.subject,
        "instructions": task.body,
        "startAt": _utc(task.due_at),
        "endAt": _utc(task.due_at + SLOT),
        "allDay": False,
    }
    if task.owner_id:
        fields["assignedTo"] = [task.owner_id]
        fields["emailAssignments"] = True  # the team member hears about it at once
    return fields


def assessment_input(task: TaskSpec, timezone: str) -> dict[str, Any]:
    """``AssessmentCreateInput``: instructions and a schedule in the account's local time.

    ``LocalDateTimeAttributes`` wants a date, a time and a tz database zone name.
    """
    local = task.due_at.astimezone(ZoneInfo(timezone))
    end = local + SLOT

    def stamp(value: datetime) -> dict[str, str]:
        return {"date": value.date().isoformat(), "time": value.strftime("%H:%M:%S"),
                "timezone": timezone}

    schedule: dict[str, Any] = {"startAt": stamp(local), "endAt": stamp(end)}
    if task.owner_id:
        schedule["teamMemberIdsToAssign"] = [task.owner_id]
        schedule["notifyTeam"] = True
    return {"instructions": f"{task.subject}\n{task.body}", "schedule": schedule}


def create_task(api: JobberApi, task: TaskSpec, *, follow_up: str, timezone: str) -> str:
    """The follow-up: an assessment on the request when so configured and a request exists,
    otherwise a task on the client."""
    if follow_up == FOLLOW_UP_ASSESSMENT and task.deal_id:
        payload = api.mutate(
            ASSESSMENT_CREATE,
            {"requestId": task.deal_id, "input": assessment_input(task, timezone)},
            "assessmentCreate",
        )
        return ASSESSMENT_PREFIX + _id_of(payload.get("assessment"), "assessmentCreate")
    payload = api.mutate(
        TASK_CREATE, {"clientId": task.contact_id, "input": task_input(task)}, "taskCreate"
    )
    return _id_of(payload.get("task"), "taskCreate")


def scheduled_tasks_filter(task: TaskSpec) -> dict[str, Any]:
    """``ScheduledItemsFilterAttributes``: the tasks whose schedule overlaps the
    :data:`TASK_WINDOW` at ``task.due_at``, assigned to its owner when it has one."""
    fields: dict[str, Any] = {
        "scheduleItemType": "BASIC_TASK",
        "occursWithin": {"startAt": _utc(task.due_at), "endAt": _utc(task.due_at + TASK_WINDOW)},
    }
    if task.owner_id:
        # A task made without an owner has no assignee: filtering would hide it.
        fields["assignedTo"] = [task.owner_id]
    return fields


def _scheduled_tasks(api: JobberApi, task: TaskSpec) -> Iterator[Mapping[str, Any]]:
    """The scheduled items :func:`scheduled_tasks_filter` selects, page by page, at most
    :data:`TASK_PAGES` pages."""
    variables: dict[str, Any] = {"filter": scheduled_tasks_filter(task), "first": TASKS_PAGE,
                                 "after": None}
    for _ in range(TASK_PAGES):
        page = api.execute(SCHEDULED_TASKS, variables).get("scheduledItems") or {}
        for node in page.get("nodes") or []:
            if isinstance(node, Mapping):
                yield node
        info = page.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            return
        variables = {**variables, "after": info["endCursor"]}


def _is_the_task(node: Mapping[str, Any], task: TaskSpec, marker: str) -> bool:
    """The client's task whose instructions hold the marker. The client is checked as well: a
    task of someone else's is never linked to this caller, whatever its text says."""
    client = node.get("client")
    return (bool(node.get("id")) and isinstance(client, Mapping)
            and client.get("id") == task.contact_id
            and holds_marker(node.get("instructions"), marker))


def _find_assessment(api: JobberApi, request_id: str, marker: str) -> str | None:
    data = api.execute(REQUEST_ASSESSMENT, {"requestId": request_id})
    request = data.get("request")
    # A request that is gone (or in another account) is null; one without an assessment has a
    # null assessment.
    assessment = request.get("assessment") if isinstance(request, Mapping) else None
    if not isinstance(assessment, Mapping) or not assessment.get("id"):
        return None
    if not holds_marker(assessment.get("instructions"), marker):
        return None
    return ASSESSMENT_PREFIX + str(assessment["id"])


def find_task(api: JobberApi, task: TaskSpec, marker: str, *, follow_up: str) -> str | None:
    """The follow-up an earlier :func:`create_task` of ``task`` made, or None: the request's
    assessment (as ``assessment:<id>``) when ``create_task`` would make one, otherwise the
    client's task scheduled at ``task.due_at`` whose instructions hold ``marker`` as a word."""
    if follow_up == FOLLOW_UP_ASSESSMENT and task.deal_id:
        return _find_assessment(api, task.deal_id, marker)
    for node in _scheduled_tasks(api, task):
        if _is_the_task(node, task, marker):
            return str(node["id"])
    return None


def appended(text: str, line: str) -> str:
    """``text`` with ``line`` as a new last line."""
    return f"{text}\n{line}" if text else line


def append_to_task(api: JobberApi, task_id: str, text: str) -> None:
    """Read the instructions, add a line, write them back (two calls; last writer wins)."""
    if task_id.startswith(ASSESSMENT_PREFIX):
        assessment_id = task_id[len(ASSESSMENT_PREFIX) :]
        data = api.execute(ASSESSMENT_INSTRUCTIONS, {"id": assessment_id})
        current = _instructions(data.get("assessment"), "assessment")
        api.mutate(
            ASSESSMENT_EDIT,
            {"assessmentId": assessment_id, "input": {"instructions": appended(current, text)}},
            "assessmentEdit",
        )
        return
    data = api.execute(TASK_INSTRUCTIONS, {"id": task_id})
    current = _instructions(data.get("task"), "task")
    api.mutate(
        TASK_EDIT, {"taskId": task_id, "input": {"instructions": appended(current, text)}},
        "taskEdit",
    )


def _instructions(record: Any, kind: str) -> str:
    # Lookups by id answer null when the record is gone or belongs to another account.
    if not isinstance(record, Mapping):
        raise PermanentProviderError(f"Jobber {kind} not found", provider=PROVIDER, status=404)
    return str(record.get("instructions") or "")


def task_completed(api: JobberApi, task_id: str) -> bool:
    """Whether the task (or assessment) is marked complete in Jobber."""
    if task_id.startswith(ASSESSMENT_PREFIX):
        data = api.execute(ASSESSMENT_DONE, {"id": task_id[len(ASSESSMENT_PREFIX):]})
        item = data.get("assessment")
    else:
        data = api.execute(TASK_DONE, {"id": task_id})
        item = data.get("task")
    return bool(isinstance(item, dict) and item.get("isComplete"))
