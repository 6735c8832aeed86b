"""Housecall Pro CRM adapter (REST over ``requests``).

Modules: ``adapter`` (:class:`HousecallProCrm`, its credentials and :data:`API_CALLS`),
``client`` (auth schemes, requests, paging), ``errors`` (error shapes and classification),
``customers`` (find or create by phone), ``leads`` (the follow-up lead and its forward-only
pipeline status), ``notes`` (the activity log in the customer's notes), ``follow_ups`` (a
follow-up made as a new lead, and finding it again on a retry) and ``webhooks``
(``Api-Signature`` and event parsing). Its partner OAuth install is declared on the adapter and
run by :mod:`crm_adapters.oauth_flow`.
"""

from crm_adapters.housecallpro.adapter import (
    API_CALLS,
    HcpEmployee,
    HousecallProCredentials,
    HousecallProCrm,
)
from crm_adapters.housecallpro.leads import PipelineDecision, PipelineStatus
from crm_adapters.housecallpro.webhooks import HcpWebhookEvent

__all__ = [
    "API_CALLS",
    "HcpEmployee",
    "HcpWebhookEvent",
    "HousecallProCredentials",
    "HousecallProCrm",
    "PipelineDecision",
    "PipelineStatus",
]
