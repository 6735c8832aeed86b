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
"""

from __future__ import annotations

from collections.abc import Mapping

from connector.kernel.errors import PermanentProviderError
from crm_adapters.base import LeadSpec
from crm_adapters.jobber.client import JobberApi
from crm_adapters.jobber.documents import REQUEST_CREATE, REQUEST_STATUS
from crm_adapters.jobber.errors import PROVIDER

OPEN_STATUSES = frozenset(
    {"new", "unscheduled", "upcoming", "today", "overdue", "assessment_completed"}
)
CLOSED_STATUSES = frozenset({"converted", "completed", "archived"})


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
