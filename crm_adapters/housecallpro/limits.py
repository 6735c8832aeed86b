"""Housecall Pro's limit: not published, so only what it says in a 429 is followed.

A 429's ``Retry-After`` (or, without one, a short pause) holds the company's budget for every
worker; the budget itself is far above any rate the connector reaches, and is there to carry
those holds.
"""

from __future__ import annotations

import logging

import requests

from connector.kernel.http import retry_after_seconds
from connector.kernel.ratelimit import Budget, RateLimiter, acquire
from crm_adapters.housecallpro.errors import PROVIDER

HOLDS_ONLY = Budget("requests", 1000, 1.0)
#: The pause after a 429 without ``Retry-After``.
DEFAULT_429_WAIT = 10.0

_LOG = logging.getLogger(__name__)


class HousecallProMeter:
    """Holds the company's requests for as long as Housecall Pro's 429s ask."""

    def __init__(self, limiter: RateLimiter, key: str) -> None:
        self._limiter = limiter
        self._key = f"{PROVIDER}-requests:{key}"

    def before(self, request: requests.PreparedRequest) -> None:
        """Wait out a hold, if any."""
        acquire(self._limiter, self._key, HOLDS_ONLY, provider=PROVIDER)

    def after(self, request: requests.PreparedRequest, response: requests.Response) -> None:
        """A 429 holds every worker's requests for its ``Retry-After``."""
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"), DEFAULT_429_WAIT)
            self._limiter.hold(self._key, HOLDS_ONLY, wait)
            _LOG.warning("housecallpro answered 429; holding its requests for %.0f s", wait)
