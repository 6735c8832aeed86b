"""The built-in ``sandbox`` CRM: contacts, activities, tasks and leads recorded locally.

Used by the demo and the workflow tests. Records go to a :class:`SandboxCrmStore`; the connector
passes one backed by its ``sandbox_records`` table, tests use the in-memory default. Its webhooks
(none are sent today) would be signed like the sandbox carrier's: hex HMAC-SHA256 of the raw body
under ``webhook_secret`` in ``X-Sandbox-Signature``; they are verified and acknowledged.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from marshmallow import Schema, fields

from connector.kernel.errors import WebhookVerificationError, checking_credentials
from connector.kernel.http import WebhookRequest, classify_status
from connector.kernel.phone import to_e164
from connector.kernel.signing import constant_time_equals, hmac_hex
from crm_adapters.base import (
    PER_ACCOUNT,
    CallLog,
    CrmAdapter,
    CrmContact,
    LeadSpec,
    MessageLog,
    TaskSpec,
    WebhookSpec,
    holds_marker,
)
from crm_adapters.catalog import (
    Choice,
    ConnectionCheck,
    CrmChoices,
    Permission,
    PipelineChoice,
)

SIGNATURE_HEADER = "X-Sandbox-Signature"

#: The sandbox CRM's lists, as :meth:`SandboxCrm.list_choices` offers them (the demo account
#: maps to ``default`` / ``new`` / ``owner-1``).
PIPELINES = (
    PipelineChoice(
        "default",
        "Sales pipeline",
        (
            Choice("new", "New lead"),
            Choice("contacted", "Contacted"),
            Choice("quoted", "Quote sent"),
            Choice("won", "Won"),
            Choice("lost", "Lost"),
        ),
    ),
    PipelineChoice(
        "service",
        "Service requests",
        (Choice("requested", "Requested"), Choice("scheduled", "Scheduled"),
         Choice("done", "Done")),
    ),
)
OWNERS = (Choice("owner-1", "Alex Rivera (owner)"), Choice("owner-2", "Sam Lee"))
#: What textback does in the sandbox CRM; nothing there needs a grant.
ACTIONS = (
    "find and create contacts",
    "log missed calls and texts",
    "create follow-up tasks",
    "put leads in a pipeline stage",
)


def verify(request: WebhookRequest, secret: str) -> None:
    """Raise :class:`WebhookVerificationError` unless ``X-Sandbox-Signature`` signs the body."""
    given = request.headers.get(SIGNATURE_HEADER)
    if not secret or not constant_time_equals(hmac_hex(secret, request.body), given):
        raise WebhookVerificationError("sandbox CRM signature missing or wrong")


class SandboxCrmStore(Protocol):
    """Where the sandbox CRM keeps its records."""

    def add(self, kind: str, data: Mapping[str, Any], key: str | None = None) -> str:
        """Store a record and return its id; with ``key`` set, return the existing one instead."""

    def get(self, kind: str, record_id: str) -> Mapping[str, Any] | None:
        """One record by id."""

    def update(self, kind: str, record_id: str, data: Mapping[str, Any]) -> None:
        """Replace a record's fields with ``data`` merged in."""

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        """Every record of a kind, oldest first, each with its ``id``."""


class MemoryCrmStore:
    """An in-memory store; ``fail_next(status)`` makes the next operation fail like an API would."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, dict[str, Any]]] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)
        self._failures: list[int] = []
        self._lock = threading.RLock()

    def fail_next(self, status: int) -> None:
        """Answer the next operation with this HTTP status."""
        with self._lock:
            self._failures.append(status)

    def take_failure(self) -> int | None:
        """The queued failure status, if any."""
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def add(self, kind: str, data: Mapping[str, Any], key: str | None = None) -> str:
        with self._lock:
            if key is not None and (kind, key) in self._keys:
                return self._keys[(kind, key)]
            record_id = str(next(self._ids))
            self._records.setdefault(kind, {})[record_id] = {**data, "id": record_id}
            if key is not None:
                self._keys[(kind, key)] = record_id
            return record_id

    def get(self, kind: str, record_id: str) -> Mapping[str, Any] | None:
        with self._lock:
            record = self._records.get(kind, {}).get(record_id)
            return dict(record) if record else None

    def update(self, kind: str, record_id: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._records[kind][record_id].update(data)

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records.get(kind, {}).values()]


class SandboxCrmCredentials(Schema):
    """``crm.credentials`` for the sandbox (a secret for its webhooks)."""

    webhook_secret = fields.String(load_default="", metadata={"secret": True})


class SandboxCrm(CrmAdapter):
    """A CRM that keeps its records locally."""

    name: ClassVar[str] = "sandbox"
    display_name: ClassVar[str] = "Sandbox (built in)"
    docs_url: ClassVar[str] = "https://github.com/textback/textback#sandbox"
    default_api_base_url: ClassVar[str] = "sandbox://local"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"contacts", "call_log", "message_log", "tasks", "pipeline", "webhooks"}
    )
    config_schema = SandboxCrmCredentials
    webhook = WebhookSpec(url=PER_ACCOUNT, credential="webhook_secret", verify=verify)

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
        store: SandboxCrmStore | None = None,
    ) -> None:
        super().__init__(credentials, api_base_url=api_base_url)
        self.store: SandboxCrmStore = store if store is not None else MemoryCrmStore()

    def _maybe_fail(self) -> None:
        take = getattr(self.store, "take_failure", None)
        status = take() if take else None
        if status is not None:
            raise classify_status(self.name, status, f"sandbox CRM answered {status}")

    def find_or_create_contact(self, phone: str, name: str | None = None) -> CrmContact:
        self._maybe_fail()
        e164 = to_e164(phone)
        if e164 is None:
            raise ValueError("find_or_create_contact needs a valid phone number")
        for record in self.store.all("contact"):
            if to_e164(str(record.get("phone", ""))) == e164:
                return CrmContact(
                    id=str(record["id"]), phone=e164, first_name=record.get("first_name"),
                    last_name=record.get("last_name"), language=record.get("language"),
                )
        first, _, last = (name or "").partition(" ")
        before = {r["id"] for r in self.store.all("contact")}
        contact_id = self.store.add(
            "contact", {"phone": e164, "first_name": first or None, "last_name": last or None},
            key=e164,
        )
        return CrmContact(
            id=contact_id, phone=e164, first_name=first or None, created=contact_id not in before
        )

    def log_call(self, call: CallLog) -> str:
        self._maybe_fail()
        return self.store.add(
            "call",
            {
                "contact_id": call.contact_id,
                "outcome": call.outcome.value,
                "occurred_at": call.occurred_at.isoformat(),
                "title": call.title,
                "body": call.body,
                "deal_id": call.deal_id,
            },
        )

    def log_message(self, message: MessageLog) -> str:
        self._maybe_fail()
        return self.store.add(
            "message",
            {
                "contact_id": message.contact_id,
                "direction": message.direction,
                "body": message.body,
                "occurred_at": message.occurred_at.isoformat(),
            },
        )

    def create_task(self, task: TaskSpec) -> str:
        self._maybe_fail()
        return self.store.add(
            "task",
            {
                "contact_id": task.contact_id,
                "subject": task.subject,
                "body": task.body,
                "due_at": task.due_at.isoformat(),
                "owner_id": task.owner_id,
                "priority": task.priority,
                "queue_id": task.queue_id,
                "deal_id": task.deal_id,
                "status": "NOT_STARTED",
            },
        )

    def find_call_log(self, call: CallLog) -> str | None:
        self._maybe_fail()
        return self._newest("call", contact_id=call.contact_id, title=call.title,
                            occurred_at=call.occurred_at.isoformat())

    def find_message_log(self, message: MessageLog) -> str | None:
        self._maybe_fail()
        return self._newest("message", contact_id=message.contact_id,
                            direction=message.direction, body=message.body,
                            occurred_at=message.occurred_at.isoformat())

    def find_lead(self, lead: LeadSpec) -> str | None:
        self._maybe_fail()
        return self._newest("lead", contact_id=lead.contact_id, name=lead.name, closed=False)

    def _newest(self, kind: str, **fields: object) -> str | None:
        """The newest record of ``kind`` whose fields hold these values."""
        for record in reversed(self.store.all(kind)):
            if all(record.get(name) == value for name, value in fields.items()):
                return str(record["id"])
        return None

    def find_task(self, task: TaskSpec, marker: str) -> str | None:
        self._maybe_fail()
        for made in reversed(self.store.all("task")):
            if (made.get("contact_id") == task.contact_id
                    and holds_marker(made.get("body"), marker)):
                return str(made["id"])
        return None

    def append_to_task(self, task_id: str, text: str) -> None:
        self._maybe_fail()
        task = self.store.get("task", task_id)
        if task is None:
            raise classify_status(self.name, 404, "sandbox task not found")
        self.store.update("task", task_id, {"body": f"{task['body']}\n{text}"})

    def set_pipeline_stage(self, lead: LeadSpec, existing_id: str | None = None) -> str:
        self._maybe_fail()
        if existing_id is not None:
            existing = self.store.get("lead", existing_id)
            if existing is not None and not existing.get("closed"):
                return existing_id
        return self.store.add(
            "lead",
            {
                "contact_id": lead.contact_id,
                "name": lead.name,
                "pipeline": lead.pipeline or "default",
                "stage": lead.stage or "new",
                "owner_id": lead.owner_id,
                "closed": False,
            },
        )

    def task_completed(self, task_id: str) -> bool:
        self._maybe_fail()
        task = self.store.get("task", task_id)
        return bool(task and task.get("status") == "COMPLETED")

    def raise_task_priority(self, task_id: str) -> None:
        self._maybe_fail()
        self.store.update("task", task_id, {"priority": "HIGH", "escalated": True})

    def set_opt_out(self, contact_id: str, opted_out: bool) -> None:
        self._maybe_fail()
        if self.store.get("contact", contact_id) is None:
            raise classify_status(self.name, 404, "sandbox contact not found")
        self.store.update("contact", contact_id, {"sms_opted_out": opted_out})

    # -- setup ------------------------------------------------------------------------------

    def check_connection(self) -> ConnectionCheck:
        """Read one contact (the first, if any); every action is allowed. A failure queued on
        the store (``fail_next(401)``) is refused credentials, a 5xx an unreachable CRM."""
        with checking_credentials(self.display_name, "check crm.credentials"):
            self._maybe_fail()
            contacts = self.store.all("contact")
        return ConnectionCheck(
            account="Sandbox CRM (built in)",
            record=f"contact {contacts[0]['id']}" if contacts else None,
            permissions=tuple(Permission(action, True) for action in ACTIONS),
        )

    def list_choices(self) -> CrmChoices:
        """Two pipelines with their stages and two owners; the sandbox has no task queues,
        lead sources or lead statuses."""
        with checking_credentials(self.display_name, "check crm.credentials"):
            self._maybe_fail()
        return CrmChoices(pipelines=PIPELINES, owners=OWNERS)
