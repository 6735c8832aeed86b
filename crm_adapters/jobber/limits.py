"""Jobber's two limits, per app and account, kept in the budget every worker shares.

- At most 2,500 requests per 5 minutes (a 429 beyond it, without ``Retry-After``).
- A query-cost bucket of 10,000 points refilling at 500 per second: every answer reports it in
  ``extensions.cost.throttleStatus``; an empty bucket answers 200 with a ``THROTTLED`` error.

https://developer.getjobber.com/docs/using_jobbers_api/api_rate_limits
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests

from connector.kernel.http import retry_after_seconds
from connector.kernel.ratelimit import Budget, RateLimiter, acquire
from crm_adapters.jobber.errors import PROVIDER

REQUESTS_BUDGET = Budget("requests", 2500, 300.0)
#: 500 points a second; the bucket kept a little below Jobber's 10,000.
COST_BUDGET = Budget("query cost", 500, 1.0, burst=9000)
#: What a query is expected to cost until Jobber has reported one.
DEFAULT_QUERY_COST = 100.0
#: A 429 without ``Retry-After``: wait this long (the request window is 5 minutes).
REQUESTS_429_WAIT = 60.0

_LOG = logging.getLogger(__name__)


def _throttle(body: Any) -> tuple[float | None, float | None, float | None]:
    """``(requestedQueryCost, currentlyAvailable, restoreRate)`` from an answer, where given."""
    cost = (body.get("extensions") or {}).get("cost") if isinstance(body, Mapping) else None
    if not isinstance(cost, Mapping):
        return None, None, None
    status: Mapping[str, Any] = cost.get("throttleStatus") or {}
    if not isinstance(status, Mapping):
        status = {}

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) else None

    return (number(cost.get("requestedQueryCost")), number(status.get("currentlyAvailable")),
            number(status.get("restoreRate")))


class JobberMeter:
    """Keeps GraphQL requests within the account's request and query-cost budgets."""

    def __init__(self, limiter: RateLimiter, key: str) -> None:
        self._limiter = limiter
        self._requests = f"{PROVIDER}-requests:{key}"
        self._cost = f"{PROVIDER}-cost:{key}"
        self._expected = DEFAULT_QUERY_COST

    @staticmethod
    def _metered(request: requests.PreparedRequest) -> bool:
        return (request.path_url or "").startswith("/api/graphql")  # not the token endpoint

    def before(self, request: requests.PreparedRequest) -> None:
        """Wait for one request and the expected query cost."""
        if not self._metered(request):
            return
        acquire(self._limiter, self._requests, REQUESTS_BUDGET, provider=PROVIDER)
        acquire(self._limiter, self._cost, COST_BUDGET, self._expected, provider=PROVIDER)

    def after(self, request: requests.PreparedRequest, response: requests.Response) -> None:
        """Follow Jobber's own count of the cost bucket; hold on 429 and ``THROTTLED``."""
        if not self._metered(request):
            return
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"), REQUESTS_429_WAIT)
            self._limiter.hold(self._requests, REQUESTS_BUDGET, wait)
            _LOG.warning("jobber answered 429; holding its request budget for %.0f s", wait)
            return
        try:
            body = response.json()
        except ValueError:
            return
        requested, available, restore = _throttle(body)
        if requested is not None:
            self._expected = max(1.0, requested)
        if available is None:
            return
        if available < COST_BUDGET.capacity:  # otherwise it changes nothing: no write
            self._limiter.observe(self._cost, COST_BUDGET, available)
        errors = body.get("errors") if isinstance(body, Mapping) else None
        throttled = any(isinstance(e, Mapping) and (e.get("extensions") or {}).get("code")
                        == "THROTTLED" for e in errors or ())
        if throttled:
            wait = max(1.0, (self._expected - available) / (restore or COST_BUDGET.limit))
            self._limiter.hold(self._cost, COST_BUDGET, wait)
            _LOG.warning("jobber query throttled; holding its cost budget for %.0f s", wait)
