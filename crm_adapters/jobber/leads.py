"""The lead as a Jobber request.

Jobber has no pipelines or stages: a request's ``requestStatus`` is derived from its assessment
and from the quotes and jobs made from it, and cannot be set. So the account mapping's pipeline
and stage are ignored, and "putting the lead in the pipeline" means: a new request for a new
lead, the same request while it is open.

"Open" means the request still waits for the business: ``new``, ``unscheduled`` (assessment not
scheduled), ``upcoming``, ``today`` or ``overdue`` (assessment scheduled) or
``assessment_completed`` (assessed, no quote yet). ``converted`` (a quote or job was made),
``completed`` and ``archived`` are closed, as is any status we do not know (a new enum value),
because a fresh request is safer than burying a new enquiry in a finished one. A request that no
longer exists, or that now belongs to another client (merged clients), is replaced too.
``RequestStatusTypeEnum`` in the schema; https://developer.getjobber.com/docs (Request type).

The request is created with the lead's name as its title. Its details (the call time and the
text sent) arrive as the missed-call note the connector logs right after, linked to the request:
the pinned version's ``requestDetails`` is a structured form, not free text.

:func:`find_lead` (asked on a retry whose earlier attempt may have made or kept the request)
reads the client's recently updated requests and takes the newest open one with the lead's
title.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connector.kernel.errors import PermanentProviderError
from crm_adapters.base import LeadSpec
from crm_adapters.jobber.client import JobberApi
from crm_adapters.jobber.documents import CLIENT_REQUESTS, REQUEST_CREATE, REQUEST_STATUS
from crm_adapters.jobber.errors import PROVIDER

OPEN_STATUSES = frozenset(
    {"new", "unscheduled", "upcoming", "today", "overdue", "assessment_completed"}
)
CLOSED_STATUSES = frozenset({"converted", "completed", "archived"})
#: Requests :func:`find_lead` reads. ``Query.requests`` lists the most recently updated first,
#: and the request looked for was made or kept by an attempt minutes earlier, so it is at the top
#: of its client's list; 20 leaves room for a client whose other requests staff are busy with.
REQUESTS_PAGE = 20
#: Sorts a ``createdAt`` Jobber did not give (or we cannot read) below every real one.
_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)


def is_open(api: JobberApi, request_id: str, client_id: str) -> bool:
    """True when the request exists, is the client's and waits for the business."""
    data = api.execute(REQUEST_STATUS, {"id": request_id})
    request = data.get("request")
    if not isinstance(request, Mapping):
        return False  # deleted, or not in this account
    owner = request.get("client")
    if isinstance(owner, Mapping) and owner.get("id") and str(owner["id"]) != client_id:
        return False
    return str(request.get("requestStatus") or "") in OPEN_STATUSES


def set_pipeline_stage(api: JobberApi, lead: LeadSpec, existing_id: str | None) -> str:
    """See :meth:`crm_adapters.base.CrmAdapter.set_pipeline_stage` and the module docstring."""
    if existing_id and is_open(api, existing_id, lead.contact_id):
        return existing_id
    payload = api.mutate(
        REQUEST_CREATE,
        {"input": {"clientId": lead.contact_id, "title": lead.name}},
        "requestCreate",
    )
    request = payload.get("request")
    if not isinstance(request, Mapping) or not request.get("id"):
        raise PermanentProviderError("Jobber requestCreate returned no request", provider=PROVIDER)
    return str(request["id"])


def _created_at(request: Mapping[str, Any]) -> datetime:
    try:
        value = datetime.fromisoformat(str(request.get("createdAt") or ""))
    except ValueError:
        return _UNKNOWN_TIME
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _is_the_lead(request: Any, lead: LeadSpec) -> bool:
    """An open request of the lead's client with the lead's name as its title."""
    if not isinstance(request, Mapping) or not request.get("id"):
        return False
    owner = request.get("client")
    # The query filters by client already; a request of another client is still refused here,
    # because linking it would file this caller's calls under someone else.
    if isinstance(owner, Mapping) and owner.get("id") and str(owner["id"]) != lead.contact_id:
        return False
    return (request.get("title") == lead.name
            and str(request.get("requestStatus") or "") in OPEN_STATUSES)


def find_lead(api: JobberApi, lead: LeadSpec) -> str | None:
    """The id of the newest (``createdAt``) open request of ``lead.contact_id`` titled
    ``lead.name`` among its :data:`REQUESTS_PAGE` most recently updated, or None."""
    data = api.execute(CLIENT_REQUESTS, {"clientId": lead.contact_id, "first": REQUESTS_PAGE})
    nodes = (data.get("requests") or {}).get("nodes") or []
    matches = [n for n in nodes if _is_the_lead(n, lead)]
    if not matches:
        return None
    # max keeps the first of equal times: Jobber's order, most recently updated first.
    return str(max(matches, key=_created_at)["id"])
