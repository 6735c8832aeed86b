"""CRM adapters, keyed by the ``crm.kind`` of the account file."""

from crm_adapters.base import CrmAdapter
from crm_adapters.housecallpro import HousecallProCrm
from crm_adapters.hubspot import HubSpotCrm
from crm_adapters.jobber import JobberCrm
from crm_adapters.sandbox import SandboxCrm

CRMS: dict[str, type[CrmAdapter]] = {
    adapter.name: adapter
    for adapter in (SandboxCrm, HubSpotCrm, JobberCrm, HousecallProCrm)
}

__all__ = ["CRMS", "CrmAdapter"]
