"""The activity log: the missed call, each text and follow-up lines in the customer's notes.

Housecall Pro's public API has no activity, timeline, task or SMS-log object, and no notes
endpoint for customers or leads. What it has (OpenAPI "Housecall v1 API"):

- ``POST /jobs/{job_id}/notes``: needs a job, and a missed caller has none (a lead is not a job;
  the ``Lead`` object does not even carry the job id it was converted to).
- ``LeadCreate.note``: written once when the lead is made; there is no lead update endpoint and
  the ``Lead`` the API returns does not include the note.
- ``Customer.notes``: one free-text string, replaced by ``PUT /customers/{id}``.

So every entry is appended to the customer's notes: read (``GET /customers/{id}``), append,
write (``PUT /customers/{id}`` with ``notes`` only). Each entry starts with a marker carrying an
id derived from the entry's content (``[textback call-1a2b3c4d5e6f]``); the append is skipped
when the marker is already there, so a write repeated after a crash (Housecall Pro saved, our
link did not) adds nothing, and the connector's retry of such a write first asks
:meth:`CustomerNotes.holds` (a read only) and links the entry it finds. The connector's
``crm_links`` stay the first line of defence. A follow-up made as a new lead is written between
a pending entry and the follow-up entry naming the lead, the trail a retry reads
(:mod:`crm_adapters.housecallpro.follow_ups`).

Caveats: this is last-writer-wins. An in-process lock per customer serialises our own appends;
a rep saving the notes in the web app at the same instant, or another process appending, can
lose one of the two edits. Texts appear as notes, not as native Housecall Pro messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from crm_adapters.base import CallLog, MessageLog, TaskSpec
from crm_adapters.housecallpro.client import HcpClient, StripedLocks

MARKER_PREFIX = "[textback "


def entry_ref(kind: str, *parts: object) -> str:
    """A stable id for an entry: ``kind`` and 12 hex digits of a hash of ``parts``."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"{kind}-{digest[:12]}"


def marker(ref: str) -> str:
    """The text an entry starts with, searched for before appending."""
    return f"{MARKER_PREFIX}{ref}]"


def _when(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("note timestamps need an aware datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _entry(ref: str, head: str, body: str = "") -> str:
    """``[textback ref] head``, then the body's lines indented by two spaces."""
    lines = [f"{marker(ref)} {head}"]
    lines += [f"  {line}" for line in body.splitlines() if line.strip()]
    return "\n".join(lines)


def call_entry(call: CallLog) -> tuple[str, str]:
    """The missed call's ref and entry."""
    ref = entry_ref(
        "call",
        call.contact_id,
        call.caller,
        call.called,
        call.outcome.value,
        call.occurred_at.isoformat(),
        call.deal_id or "",
    )
    head = f"{call.title} at {_when(call.occurred_at)}, from {call.caller} to {call.called}"
    return ref, _entry(ref, head, call.body)


def message_entry(message: MessageLog) -> tuple[str, str]:
    """One text's ref and entry."""
    ref = entry_ref(
        "sms",
        message.contact_id,
        message.direction,
        message.occurred_at.isoformat(),
        message.sender,
        message.recipient,
        hashlib.sha256(message.body.encode()).hexdigest(),
        message.deal_id or "",
    )
    word = "Text received" if message.direction == "inbound" else "Text sent"
    head = f"{word} at {_when(message.occurred_at)}, from {message.sender} to {message.recipient}:"
    return ref, _entry(ref, head, message.body)


def task_entry(task: TaskSpec, lead_id: str) -> tuple[str, str]:
    """A follow-up's details, filed under its lead."""
    ref = entry_ref(
        "task", lead_id, task.subject, task.body, task.due_at.isoformat(), task.owner_id or ""
    )
    head = f"Follow-up (lead {lead_id}, due {_when(task.due_at)}): {task.subject}"
    return ref, _entry(ref, head, task.body)


#: How a pending entry lists the customer's open leads of ours made before it.
OPEN_BEFORE = "Open leads already there:"


def pending_ref(customer_id: str, call_line: str) -> str:
    """The ref of a follow-up lead's pending entry: the customer's and the call's only."""
    return entry_ref("pending", customer_id, call_line)


def pending_entry(
    customer_id: str, call_line: str, open_before: Sequence[str] = ()
) -> tuple[str, str]:
    """The note that a follow-up lead is about to be made for a missed call.

    ``call_line`` is the follow-up's ``textback call <id>`` line; ``open_before`` the ids of the
    customer's open leads of ours listed just before, none of which is this follow-up's. The ref
    depends on the customer and the call line only, so every attempt at the same follow-up
    writes it once, with the first attempt's list.
    """
    ref = pending_ref(customer_id, call_line)
    body = call_line + (f"\n{OPEN_BEFORE} {', '.join(open_before)}" if open_before else "")
    return ref, _entry(ref, "Making a follow-up lead for a missed call", body)


def task_line(lead_id: str, text: str) -> tuple[str, str]:
    """A line added to a follow-up (a reply, a delivery failure)."""
    ref = entry_ref("note", lead_id, text)
    return ref, _entry(ref, f"Follow-up (lead {lead_id}): {text}")


def has_entry(notes: str, ref: str) -> bool:
    """True when ``notes`` hold the entry ``ref`` (its marker, anywhere in the text)."""
    return marker(ref) in notes


def note_record_id(customer_id: str, ref: str) -> str:
    """The id an entry is known by to the connector: the customer and the entry's ref."""
    return f"customer:{customer_id}#{ref}"


class CustomerNotes:
    """Append-only writer of the customer's notes, one customer at a time per process."""

    def __init__(self, client: HcpClient) -> None:
        self.client = client
        self._locks = StripedLocks()

    def read(self, customer_id: str, *, operation: str, ambiguous: bool = True) -> str:
        """The customer's notes ("" when empty).

        ``ambiguous`` is true when read for a write operation (see the client's docstring).
        """
        customer = self.client.request(
            "GET", f"/customers/{customer_id}", operation=operation, ambiguous=ambiguous
        )
        notes = customer.get("notes")
        return notes if isinstance(notes, str) else ""

    def holds(self, customer_id: str, ref: str, *, operation: str) -> bool:
        """True when the customer's notes have the entry ``ref``; a read only.

        The same test :meth:`append` makes before writing, so an entry found here is one the
        append would skip.
        """
        return has_entry(self.read(customer_id, operation=operation, ambiguous=False), ref)

    def append(self, customer_id: str, ref: str, entry: str, *, operation: str) -> bool:
        """Add ``entry`` at the end unless its marker is there already; True when written."""
        with self._locks.lock_for(customer_id):
            current = self.read(customer_id, operation=operation)
            if has_entry(current, ref):
                return False
            separator = "\n" if current and not current.endswith("\n") else ""
            self.client.request(
                "PUT",
                f"/customers/{customer_id}",
                operation=operation,
                ambiguous=True,
                json={"notes": f"{current}{separator}{entry}"},
            )
            return True
