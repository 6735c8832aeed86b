"""CRM adapters, keyed by the ``crm.kind`` of the account file."""

from crm_adapters.base import CrmAdapter
from crm_adapters.hubspot import HubSpotCrm
from crm_adapters.sandbox import SandboxCrm

CRMS: dict[str, type[CrmAdapter]] = {
    SandboxCrm.name: SandboxCrm,
    HubSpotCrm.name: HubSpotCrm,
}

__all__ = ["CRMS", "CrmAdapter"]
