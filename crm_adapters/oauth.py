"""Which CRMs install through OAuth: those in :data:`~crm_adapters.CRMS` declaring
:attr:`~crm_adapters.base.CrmAdapter.oauth`.

The connector's ``/oauth/<crm>/install`` and ``/oauth/<crm>/callback`` routes and
``textback accounts install-link`` look CRMs up here; the flow itself is
:mod:`crm_adapters.oauth_flow`, run from each adapter's declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from crm_adapters import CRMS
from crm_adapters.base import CrmAdapter

#: The adapter class of each CRM kind that installs through OAuth.
OAUTH_PROVIDERS: Mapping[str, type[CrmAdapter]] = MappingProxyType(
    {kind: adapter for kind, adapter in CRMS.items() if adapter.oauth is not None}
)
