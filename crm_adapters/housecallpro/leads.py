"""Leads: the follow-up (assigned to an employee) and its forward-only pipeline status.

Housecall Pro has no task object. The follow-up is a **lead** (``POST /leads``) for the customer,
``assigned_employee_id`` = the account's employee, the account's ``lead_source``, a tag marking
it as ours (``textback`` by default) and a short ``note``. The public API has no lead update and
no lead notes endpoint, so the lead's note is written once at creation and everything later goes
to the customer's notes (:mod:`crm_adapters.housecallpro.notes`).

Pipeline statuses (``GET /pipeline/statuses?resource_type=lead`` -> ``statuses[{id, name,
status_type}]``, empty when the company has no pipeline; ``PUT /pipeline/statuses`` with
``{resource_type, resource_id, status_id}``) only move forward: "the target status must have an
order value greater than or equal to the current status" (OpenAPI ``PipelineStatusUpdate``).
The API exposes no order field, so the order is the position in the listing *(inferred)*, and
the lead's ``pipeline_status`` (a string) is matched against the status ids and names
*(inferred: which of the two it holds is undocumented)*. A move backwards is never attempted:
the lead keeps its status, an INFO line is logged (no personal data) and the
:class:`PipelineDecision` says why, for ``textback explain``.

The mapping's ``stage`` is a status id (``kcs_...``) or name; ``pipeline`` is ignored (one
lead pipeline per company). A stage the company does not have raises
:class:`~connector.kernel.errors.ConfigurationError` before anything is written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass
from typing import Any

from connector.kernel.errors import ConfigurationError, PermanentProviderError
from crm_adapters.base import LeadSpec
from crm_adapters.housecallpro.client import HcpClient

_LOG = logging.getLogger(__name__)

#: How long the status listing is reused (it changes only when an admin edits the pipeline).
STATUS_CACHE_SECONDS = 600.0
#: Pages of a customer's open leads searched for one of ours.
OPEN_LEAD_PAGES = 2


@dataclass(frozen=True)
class PipelineStatus:
    """One lead pipeline status; ``order`` is its position in Housecall Pro's listing."""

    id: str
    name: str
    order: int
    status_type: str | None = None


@dataclass(frozen=True)
class PipelineDecision:
    """What ``set_pipeline_stage`` did to a lead and why; free of personal data."""

    lead_id: str
    lead: str  # "created" or "reused"
    status: str  # "moved", "unchanged", "not_moved_back", "no_pipeline", "not_set", "refused"
    reason: str


def _customer_of(lead: Mapping[str, Any]) -> str | None:
    """The id of the customer a listed lead names, None when it names none."""
    customer = lead.get("customer")
    found = customer.get("id") if isinstance(customer, Mapping) else None
    return str(found) if found else None


class Leads:
    """Lead creation, reuse and pipeline moves for one adapter."""

    def __init__(self, client: HcpClient, *, lead_source: str | None, tag: str | None) -> None:
        self.client = client
        self.lead_source = lead_source
        self.tag = tag
        self._statuses: tuple[float, list[PipelineStatus]] | None = None
        self._lock = threading.Lock()

    # -- statuses --------------------------------------------------------------------------

    def statuses(self, *, refresh: bool = False, ambiguous: bool = False) -> list[PipelineStatus]:
        """The company's lead statuses in pipeline order (cached for a few minutes).

        ``ambiguous`` is true when read for a write operation (see the client's docstring).
        """
        with self._lock:
            cached = self._statuses
        if cached and not refresh and time.monotonic() - cached[0] < STATUS_CACHE_SECONDS:
            return cached[1]
        items = self.client.paged(
            "/pipeline/statuses",
            "statuses",
            operation="pipeline status list",
            ambiguous=ambiguous,
            params={"resource_type": "lead"},
        )
        found = [
            PipelineStatus(str(s["id"]), str(s.get("name") or ""), i, s.get("status_type"))
            for i, s in enumerate(x for x in items if x.get("id"))
        ]
        with self._lock:
            self._statuses = (time.monotonic(), found)
        return found

    @staticmethod
    def match(statuses: list[PipelineStatus], value: str | None) -> PipelineStatus | None:
        """The status whose id, or name ignoring case, is ``value``."""
        if not value:
            return None
        for status in statuses:
            if status.id == value:
                return status
        folded = value.strip().casefold()
        return next((s for s in statuses if s.name.strip().casefold() == folded), None)

    def target(self, stage: str | None) -> tuple[PipelineStatus | None, list[PipelineStatus]]:
        """The mapped status and the listing; ConfigurationError for an unknown stage."""
        if not stage:
            return None, []
        statuses = self.statuses(ambiguous=True)
        if not statuses:
            return None, statuses
        found = self.match(statuses, stage)
        if found is None:  # an admin may have added it since the listing was cached
            statuses = self.statuses(refresh=True, ambiguous=True)
            found = self.match(statuses, stage)
        if found is None:
            names = ", ".join(s.name for s in statuses)
            raise ConfigurationError(
                f"Housecall Pro has no lead pipeline status {stage!r} (it has: {names})",
                field="crm.mapping.stage",
            )
        return found, statuses

    # -- leads -----------------------------------------------------------------------------

    def get(self, lead_id: str) -> dict[str, Any] | None:
        """``GET /leads/{id}``; None when it is gone (404)."""
        try:
            return self.client.request(
                "GET", f"/leads/{lead_id}", operation="lead read", ambiguous=True
            )
        except PermanentProviderError as exc:
            if exc.status == 404:
                return None
            raise

    def find_ours(
        self, customer_id: str, *, operation: str = "lead list", ambiguous: bool = True
    ) -> dict[str, Any] | None:
        """The customer's oldest open lead carrying our tag (our write may have been lost).

        None without a tag: the ``Lead`` Housecall Pro returns has no note and no creation
        time, so nothing else tells our lead from one a rep made. ``ambiguous`` is true when
        read for a write operation (see the client's docstring).
        """
        return next(self._open_ours(customer_id, "asc", operation, ambiguous), None)

    def newest_ours(
        self, customer_id: str, *, skip: Set[str], operation: str, ambiguous: bool = False
    ) -> dict[str, Any] | None:
        """The customer's newest open lead carrying our tag whose id is not in ``skip``.

        The listing is asked newest first (``sort_direction=desc``; :meth:`find_ours` asks
        oldest first, and both take the default sort to be by creation *(inferred)*), so the
        lead an earlier attempt just made comes first. None without a tag, as for
        :meth:`find_ours`.
        """
        for lead in self._open_ours(customer_id, "desc", operation, ambiguous):
            if str(lead["id"]) not in skip:
                return lead
        return None

    def open_ours(self, customer_id: str, *, operation: str, ambiguous: bool = True) -> list[str]:
        """The ids of the customer's open leads carrying our tag, oldest first; none without a
        tag. ``ambiguous`` as for :meth:`find_ours`."""
        return [str(lead["id"]) for lead in self._open_ours(customer_id, "asc", operation,
                                                            ambiguous)]

    def _open_ours(
        self, customer_id: str, direction: str, operation: str, ambiguous: bool
    ) -> Iterator[dict[str, Any]]:
        """The customer's open leads carrying our tag, in ``direction`` (``asc``/``desc``)."""
        if not self.tag:
            return
        params = {"customer_id": customer_id, "status": "open", "sort_direction": direction}
        for lead in self.client.paged(
            "/leads",
            "leads",
            operation=operation,
            ambiguous=ambiguous,
            params=params,
            max_pages=OPEN_LEAD_PAGES,
        ):
            tags = lead.get("tags") or []
            # The listing is filtered by ``customer_id``, but a filter the server ignored would
            # hand us the company's leads: a lead naming another customer is never ours to reuse.
            if (
                lead.get("id")
                and lead.get("status", "open") == "open"
                and self.tag in tags
                and _customer_of(lead) in (None, customer_id)
            ):
                yield lead

    def create(self, customer_id: str, employee_id: str | None, note: str) -> dict[str, Any]:
        """``POST /leads`` for an existing customer."""
        body: dict[str, Any] = {"customer_id": customer_id, "note": note}
        if employee_id:
            body["assigned_employee_id"] = employee_id
        if self.lead_source:
            body["lead_source"] = self.lead_source
        if self.tag:
            body["tags"] = [self.tag]
        lead = self.client.request(
            "POST", "/leads", operation="lead create", ambiguous=True, json=body
        )
        if not lead.get("id"):
            raise PermanentProviderError(
                "Housecall Pro answered the lead create without an id", provider="housecallpro"
            )
        return lead

    def move_forward(
        self, lead: Mapping[str, Any], target: PipelineStatus, statuses: list[PipelineStatus]
    ) -> tuple[str, str]:
        """Set ``target`` unless that would move the lead backwards; (status, reason)."""
        lead_id = str(lead["id"])
        current_value = lead.get("pipeline_status")
        current = self.match(statuses, current_value if isinstance(current_value, str) else None)
        if current is not None and current.id == target.id:
            return "unchanged", f"already in status {target.name!r}"
        if current is None and current_value:
            _LOG.info("housecallpro: lead %s has a status we cannot place; not moved", lead_id)
            return "unchanged", "its current status is not in the lead pipeline listing"
        if current is not None and current.order > target.order:
            _LOG.info(
                "housecallpro: lead %s not moved back from status order %d to %d "
                "(Housecall Pro pipeline statuses only move forward)",
                lead_id,
                current.order,
                target.order,
            )
            return "not_moved_back", (
                f"the lead is already at {current.name!r}, past the mapped {target.name!r}; "
                "Housecall Pro statuses only move forward, so it was left there"
            )
        body = {"resource_type": "lead", "resource_id": lead_id, "status_id": target.id}
        try:
            self.client.request(
                "PUT", "/pipeline/statuses", operation="pipeline move", ambiguous=True, json=body
            )
        except PermanentProviderError as exc:
            # The lead exists and the rest of the sync should go on; the move is reported.
            _LOG.info("housecallpro: pipeline move of lead %s refused (%s)", lead_id, exc.status)
            return "refused", f"Housecall Pro refused the move to {target.name!r} ({exc.status})"
        return "moved", f"moved to {target.name!r}"

    def set_pipeline_stage(
        self, spec: LeadSpec, existing_id: str | None
    ) -> tuple[str, PipelineDecision]:
        """Reuse the open lead (``existing_id``, else an open one of ours) or make one; move it."""
        target, statuses = self.target(spec.stage)
        lead: Mapping[str, Any] | None = None
        if existing_id:
            lead = self.get(existing_id)
            if lead is not None and lead.get("status", "open") != "open":
                lead = None  # won or lost: the next missed call is a new lead
        if lead is None:
            lead = self.find_ours(spec.contact_id)
        how = "reused"
        if lead is None:
            note = f"{spec.name}\nMissed-call details, texts and replies: see the customer's notes."
            lead = self.create(spec.contact_id, spec.owner_id, note)
            how = "created"
        lead_id = str(lead["id"])
        if target is not None:
            status, reason = self.move_forward(lead, target, statuses)
        elif spec.stage:
            status, reason = "no_pipeline", "the company has no lead pipeline statuses"
        else:
            status, reason = "not_set", "no stage is mapped (crm.mapping.stage)"
        return lead_id, PipelineDecision(lead_id, how, status, reason)
