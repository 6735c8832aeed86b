"""Jobber CRM adapter (GraphQL over ``requests``, OAuth with rotating refresh tokens).

Modules: ``adapter`` (:class:`JobberCrm`, :data:`API_CALLS`), ``documents`` (every GraphQL
document sent), ``client`` (transport, token renewal on 401, error translation), ``errors``
(Jobber's failure shapes), ``tokens`` (JWT expiry, refresh under the installation lock),
``oauth`` (the install's endpoints, JWT claims and account), ``webhooks`` (signature, parsing),
``contacts`` (clients), ``leads`` (requests) and ``activities`` (notes, tasks, assessments).
"""

from crm_adapters.jobber.adapter import (
    API_CALLS,
    DEFAULT_GRAPHQL_VERSION,
    JobberCrm,
    JobberUser,
    api_calls_per_missed_call,
)

__all__ = [
    "API_CALLS",
    "DEFAULT_GRAPHQL_VERSION",
    "JobberCrm",
    "JobberUser",
    "api_calls_per_missed_call",
]
