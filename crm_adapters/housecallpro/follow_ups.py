"""The follow-up made as a new lead, and finding the one an earlier attempt made.

Housecall Pro has no task object. When the connector has a lead for the call (its pipeline step
ran) the follow-up is filed in the customer's notes under that lead; when it has none (no
pipeline step for the account), ``create_task`` makes a **new lead** as the follow-up. Nothing on
a Housecall Pro lead tells a retry which call it was made for: ``POST /leads`` takes no
idempotency key, and the ``Lead`` the API returns carries no note and no creation time. So the
customer's notes carry the trail, in three steps:

1. a *pending* entry, ``[textback pending-...] Making a follow-up lead for a missed call`` with
   the follow-up's ``textback call <id>`` line and the ids of the customer's open leads of ours
   listed just before (``GET /leads``): none of those is this follow-up's. Its ref depends on
   the customer and the call's line only, so a retry's append finds it there and adds nothing;
2. ``POST /leads``, the follow-up's subject and body as the lead's note;
3. the follow-up entry (:func:`~crm_adapters.housecallpro.notes.task_entry`),
   ``Follow-up (lead <id>, due ...): <subject>`` and the body, which holds the call's line: the
   lead is now named against the call.

:meth:`FollowUps.find` reads the trail back (a retry after the worker died, or after the
create's answer was lost):

- a follow-up entry holding ``textback call <id>`` (as whole words) names the lead; with a
  ``deal_id`` that is the lead the details were filed under;
- a pending entry without one means the earlier attempt stopped between steps 1 and 3 (or
  never saw the create's answer): the lead, if Housecall Pro made it, is the customer's newest
  open lead carrying the lead tag that the pending entry does not list as open before it and
  that no entry in the notes names (entries name leads as ``Follow-up (lead <id>...``). When
  there is none, Housecall Pro made none, and the retry makes it;
- neither: the earlier attempt never reached the create.

Limits: without a lead tag (the account's ``crm.mapping.lead_tag: ""``) our leads cannot be
told from a rep's, so the second case finds nothing and the follow-up lead can repeat. A lead
found in the second case is linked but not named in the notes (a find writes nothing); its own
note holds the details.
Two follow-ups of one customer that both died in that window could each take the other's
lead: each call still has one.

A follow-up whose body has no ``textback call <id>`` line is made as a lead alone: it leaves no
trail and cannot be found.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from crm_adapters.base import TaskSpec, holds_marker
from crm_adapters.housecallpro import notes
from crm_adapters.housecallpro.leads import Leads
from crm_adapters.housecallpro.notes import CustomerNotes

_LOG = logging.getLogger(__name__)

#: The words before the call id on the line the connector puts in every follow-up's body.
CALL_WORDS = "textback call"

#: One line of a follow-up's body naming its call: ``textback call <id>``.
_CALL_LINE = re.compile(rf"^\s*{CALL_WORDS} (\S+)\s*$", re.MULTILINE)
#: The first line of an entry: its marker (kind and hash, as :func:`notes.entry_ref` makes them)
#: and its head.
_ENTRY_HEAD = re.compile(r"^\[textback ([a-z]+)-[0-9a-f]{12}\] ?(.*)$")
#: How follow-up entries and the lines added to them start: the lead they are filed under.
_NAMED_LEAD = re.compile(r"^Follow-up \(lead ([^,)\s]+)[,)]")
#: The entry kinds that name a lead in their head (``task_entry`` and ``task_line``).
_NAMING_KINDS = frozenset({"task", "note"})


def call_id_in(body: str) -> str | None:
    """The call id of the body's ``textback call <id>`` line, None when it has none."""
    found = _CALL_LINE.search(body)
    return found.group(1) if found else None


def call_line(call_id: str) -> str:
    """``textback call <id>``."""
    return f"{CALL_WORDS} {call_id}"


@dataclass(frozen=True)
class Entry:
    """One of our entries in the customer's notes: its kind (``task``, ``pending``, ...), its
    head (the rest of its first line) and its whole text (head and indented body lines)."""

    kind: str
    head: str
    text: str

    @property
    def open_before(self) -> set[str]:
        """The leads a pending entry lists as open before its follow-up lead was made."""
        for line in self.text.splitlines():
            words = line.strip()
            if words.startswith(notes.OPEN_BEFORE):
                listed = words.removeprefix(notes.OPEN_BEFORE).split(",")
                return {lead.strip() for lead in listed if lead.strip()}
        return set()

    @property
    def lead(self) -> str | None:
        """The lead a follow-up entry, or a line added to one, is filed under."""
        if self.kind not in _NAMING_KINDS:
            return None
        found = _NAMED_LEAD.match(self.head)
        return found.group(1) if found else None


def entries(text: str) -> list[Entry]:
    """Our entries in the customer's notes, in order.

    An entry is a line starting with its marker and the lines after it indented by two spaces
    (see :func:`notes.task_entry`); whatever a rep typed around them is left out.
    """
    found: list[Entry] = []
    current: tuple[str, str, list[str]] | None = None
    for line in text.splitlines():
        head = _ENTRY_HEAD.match(line)
        if current is not None and head is None and line.startswith("  "):
            current[2].append(line)
            continue
        if current is not None:
            found.append(Entry(current[0], current[1], "\n".join(current[2])))
            current = None
        if head is not None:
            current = (head.group(1), head.group(2), [line])
    if current is not None:
        found.append(Entry(current[0], current[1], "\n".join(current[2])))
    return found


class FollowUps:
    """Follow-ups made as new leads, with the trail in the customer's notes a retry reads."""

    def __init__(self, customer_notes: CustomerNotes, leads: Leads) -> None:
        self.notes = customer_notes
        self.leads = leads

    def create_lead(self, task: TaskSpec) -> str:
        """Make the follow-up as a new lead for ``task.contact_id``; its id.

        With a ``textback call <id>`` line in the body: the pending entry, the lead, then the
        follow-up entry naming the lead (module docstring). Without one: the lead only.
        """
        call_id = call_id_in(task.body)
        if call_id is not None:
            # The leads of ours already open are listed in the pending entry: none of them is
            # this follow-up's, whatever a retry finds open later.
            before = self.leads.open_ours(task.contact_id, operation="follow-up lead")
            ref, entry = notes.pending_entry(task.contact_id, call_line(call_id), before)
            self.notes.append(task.contact_id, ref, entry, operation="follow-up lead")
        lead = self.leads.create(task.contact_id, task.owner_id, f"{task.subject}\n{task.body}")
        lead_id = str(lead["id"])
        if call_id is not None:
            ref, entry = notes.task_entry(task, lead_id)
            self.notes.append(task.contact_id, ref, entry, operation="task details")
        return lead_id

    def find(self, task: TaskSpec, call_id: str) -> str | None:
        """The lead an earlier ``create_task`` of ``task`` made or filed the follow-up under,
        else None; reads only (module docstring for what is looked at, and its limits).

        One ``GET /customers/{id}``, and ``GET /leads`` (one or two pages) only when a pending
        entry for the call is there without a follow-up entry.
        """
        text = self.notes.read(task.contact_id, operation="task lookup", ambiguous=False)
        ours = entries(text)
        for entry in ours:
            if entry.kind == "task" and entry.lead and holds_marker(entry.text, call_id):
                return entry.lead
        marker = notes.marker(notes.pending_ref(task.contact_id, call_line(call_id)))
        pending = next((e for e in ours if e.text.startswith(marker)), None)
        if pending is None:
            return None  # the earlier attempt never got to the create
        # The earlier attempt stopped between the pending entry and naming its lead: the lead,
        # if Housecall Pro made it, is the newest of ours that was not open before it and that
        # no entry names.
        named = {lead for entry in ours if (lead := entry.lead) is not None}
        skip = named | pending.open_before
        found = self.leads.newest_ours(task.contact_id, skip=skip, operation="task lookup")
        if found is None:
            return None
        _LOG.info("housecallpro: follow-up lead %s found by its pending entry", found["id"])
        return str(found["id"])
