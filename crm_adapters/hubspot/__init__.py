"""HubSpot CRM adapter (hubspot-api-client).

Modules: ``adapter`` (the :class:`HubSpotCrm` class and :data:`API_CALLS`), ``client`` (SDK setup
and error translation), ``contacts``, ``activities`` (calls, SMS, tasks), ``deals``, ``webhooks``
(signature v3) and ``mappings`` (property values and association type ids).
"""

from crm_adapters.hubspot.adapter import (
    API_CALLS,
    CALLER_KINDS,
    HubSpotCrm,
    api_calls_per_missed_call,
)

__all__ = ["API_CALLS", "CALLER_KINDS", "HubSpotCrm", "api_calls_per_missed_call"]
