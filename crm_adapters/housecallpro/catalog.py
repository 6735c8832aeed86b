"""Housecall Pro's setup calls: the "test connection" and the lists the setup pages map from.

- The connection: ``GET /company`` names the company (``name``) and ``GET
  /customers?page_size=1`` reads one customer. Housecall Pro's API has
  no scopes: a company API key (MAX and XL plans) or a partner installation reaches every
  endpoint or none, so once the read succeeds every action textback takes is allowed.
- The lists: active employees (``GET /employees``) are the owners leads are assigned to; the
  lead pipeline statuses (``GET /pipeline/statuses?resource_type=lead``) are the stages; the
  company's lead sources (``GET /lead_sources``, ``lead_sources[{id, name}]``, read by name:
  Housecall Pro refuses a lead or customer whose ``lead_source`` is not one of the company's
  names) feed ``crm.mapping.lead_source``. The lead-source endpoint is not in the OpenAPI
  document we have read; integrations use it, and a 404 from it leaves the list empty.
  Housecall Pro has no task queues and one lead pipeline per company, so those lists are None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from connector.kernel.errors import PermanentProviderError
from crm_adapters.catalog import (
    Choice,
    ConnectionCheck,
    CrmChoices,
    Permission,
    checking_connection,
)
from crm_adapters.housecallpro.client import HcpClient
from crm_adapters.housecallpro.errors import PROVIDER
from crm_adapters.housecallpro.leads import PipelineStatus


class _Employee(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str | None: ...


class HousecallProCrm(Protocol):
    """What these calls use of :class:`crm_adapters.housecallpro.HousecallProCrm`."""

    company_id: str | None

    def list_employees(self) -> Sequence[_Employee]: ...
    def list_lead_statuses(self) -> Sequence[PipelineStatus]: ...

DISPLAY_NAME = "Housecall Pro"
CREDENTIALS_HINT = (
    "check the API key (App Store > API Key Management, MAX or XL plan) or reconnect the app"
)
ACTIONS = (
    "find and create customers, add to their notes",
    "create leads assigned to an employee",
    "move leads along the lead pipeline",
)


def check_connection(crm: HousecallProCrm, client: HcpClient) -> ConnectionCheck:
    """One customer read; every action is allowed when it succeeds (no scopes)."""
    with checking_connection(DISPLAY_NAME, CREDENTIALS_HINT, provider=PROVIDER):
        company = client.request("GET", "/company", operation="company read", ambiguous=False)
        page = client.request(
            "GET", "/customers", operation="customer read", ambiguous=False,
            params={"page": 1, "page_size": 1},
        )
    customers = [c for c in page.get("customers") or [] if isinstance(c, dict)]
    name = str(company.get("name") or crm.company_id or "").strip()
    return ConnectionCheck(
        account=f"Housecall Pro company {name}" if name else "Housecall Pro company",
        record=f"customer {customers[0]['id']}" if customers and customers[0].get("id") else None,
        permissions=tuple(Permission(action, True) for action in ACTIONS),
    )


def lead_sources(client: HcpClient) -> tuple[Choice, ...]:
    """The company's lead sources by name (their name is what a lead carries)."""
    try:
        items = list(client.paged("/lead_sources", "lead_sources", operation="lead source list"))
    except PermanentProviderError as exc:
        if exc.status == 404:
            return ()
        raise
    names = [str(s.get("name") or "").strip() for s in items]
    return tuple(Choice(name, name) for name in dict.fromkeys(n for n in names if n))


def list_choices(crm: HousecallProCrm, client: HcpClient) -> CrmChoices:
    """Employees, lead sources and the lead pipeline statuses."""
    with checking_connection(DISPLAY_NAME, CREDENTIALS_HINT, provider=PROVIDER):
        employees = crm.list_employees()
        sources = lead_sources(client)
        statuses = crm.list_lead_statuses()
    return CrmChoices(
        owners=tuple(
            Choice(e.id, f"{e.name} ({e.email})" if e.email else e.name or e.id)
            for e in employees
        ),
        lead_sources=sources,
        pipeline_statuses=tuple(Choice(s.id, s.name or s.id) for s in statuses),
    )
