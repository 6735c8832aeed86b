"""Rate limits every worker shares: a token bucket per CRM portal, kept where all workers see it.

A CRM adapter's HTTP client calls :func:`acquire` before each request and tells the limiter what
the provider answered (:meth:`RateLimiter.observe` with what the provider says is left,
:meth:`RateLimiter.hold` with a 429's wait). The limiter itself is injected: Redis when the queue
is Redis, the database otherwise (``connector.storage.ratelimits``), so ten workers on three
machines draw on one budget. Adapters import only this interface.

A :class:`Budget` of ``limit`` per ``window`` seconds becomes a bucket holding at most
:data:`BURST_SHARE` of the limit (one request at least) and refilling so that, whatever the
timing, no window of that length sees more than ``(BURST_SHARE + RATE_SHARE) * limit`` requests:
the rest is room for the clocks and network delays between us and the provider. A request that would
wait longer than ``max_wait`` is refused with :class:`RateLimitedError` instead: its job goes back
on the queue for later, and the thread is free for other work.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

from connector.kernel import clock
from connector.kernel.errors import RateLimitedError

#: Shares of a budget's limit: the bucket's size and its refill over one window.
BURST_SHARE = 0.08
RATE_SHARE = 0.9
#: The longest a request waits in its thread for the budget before its job is put back.
MAX_WAIT = 15.0
#: A refusal asks the queue to try again no sooner than this.
MIN_RETRY = 1.0


def portal_key(credential: str) -> str:
    """A bucket key naming the portal a credential belongs to, without revealing it (for an
    adapter built without a key of its own)."""
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Budget:
    """A provider's limit for one portal: ``limit`` units (requests, or query points) per
    ``window`` seconds."""

    name: str
    limit: float
    window: float
    #: The most the bucket holds, when the provider's own bucket says (Jobber's query cost);
    #: by default a short burst of :data:`BURST_SHARE` of the limit.
    burst: float | None = None

    @property
    def capacity(self) -> float:
        """The most the bucket holds."""
        return self.burst if self.burst is not None else max(1.0, self.limit * BURST_SHARE)

    @property
    def rate(self) -> float:
        """Units the bucket regains per second: what fills a window up to ``(BURST_SHARE +
        RATE_SHARE) * limit`` with the bucket's burst; a refill rate of ``RATE_SHARE`` of the
        limit when the provider's bucket is a leaky one of its own size (``burst``)."""
        if self.burst is not None:
            return self.limit * RATE_SHARE / self.window
        return (self.limit * (BURST_SHARE + RATE_SHARE) - self.capacity) / self.window


@dataclass(frozen=True)
class Bucket:
    """One budget's state: units left at ``updated`` (epoch seconds), nothing before ``held``."""

    tokens: float
    updated: float
    held: float = 0.0


def take(bucket: Bucket | None, budget: Budget, cost: float, now: float) -> tuple[Bucket, float]:
    """Take ``cost`` units if the bucket has them: the new bucket and 0, else the bucket
    (refilled, nothing taken) and the seconds until it will have them.

    The one algorithm every limiter runs (the Redis one as a script of the same steps).
    """
    cost = min(cost, budget.capacity)
    state = refill(bucket, budget, now)
    if state.held > now:
        return state, state.held - now
    if state.tokens >= cost:
        return Bucket(state.tokens - cost, now, state.held), 0.0
    return state, (cost - state.tokens) / budget.rate


def refill(bucket: Bucket | None, budget: Budget, now: float) -> Bucket:
    """The bucket as it stands at ``now`` (full when new)."""
    if bucket is None:
        return Bucket(budget.capacity, now)
    elapsed = max(0.0, now - bucket.updated)
    return Bucket(min(budget.capacity, bucket.tokens + elapsed * budget.rate), now, bucket.held)


def hold(bucket: Bucket | None, budget: Budget, seconds: float, now: float) -> Bucket:
    """The bucket emptied and granting nothing for ``seconds`` (a provider's 429)."""
    state = refill(bucket, budget, now)
    return Bucket(0.0, now, max(state.held, now + seconds))


def observe(bucket: Bucket | None, budget: Budget, available: float, now: float) -> Bucket:
    """The bucket holding no more than the ``available`` units the provider reports."""
    state = refill(bucket, budget, now)
    return Bucket(min(state.tokens, max(0.0, available)), now, state.held)


class RateLimiter(Protocol):
    """Token buckets by key, shared by every process that uses the same store."""

    def take(self, key: str, budget: Budget, cost: float = 1.0) -> float:
        """Take ``cost`` units of ``key``'s budget now and answer 0, or take nothing and answer
        the seconds until they will be there."""

    def hold(self, key: str, budget: Budget, seconds: float) -> None:
        """Grant nothing from ``key``'s budget for ``seconds`` (the provider said to wait)."""

    def observe(self, key: str, budget: Budget, available: float) -> None:
        """The provider says ``available`` units are left: never count on more than that."""


class NoRateLimiter:
    """No shared budget: every request goes at once (an adapter built without a limiter)."""

    def take(self, key: str, budget: Budget, cost: float = 1.0) -> float:
        """Always granted."""
        return 0.0

    def hold(self, key: str, budget: Budget, seconds: float) -> None:
        """Nothing to hold."""

    def observe(self, key: str, budget: Budget, available: float) -> None:
        """Nothing to adjust."""


class MemoryRateLimiter:
    """Buckets in this process only: for one process on its own, and for tests."""

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, budget: Budget, cost: float = 1.0) -> float:
        """See :meth:`RateLimiter.take`."""
        with self._lock:
            self._buckets[key], wait = take(self._buckets.get(key), budget, cost,
                                            clock.timestamp())
            return wait

    def hold(self, key: str, budget: Budget, seconds: float) -> None:
        """See :meth:`RateLimiter.hold`."""
        with self._lock:
            self._buckets[key] = hold(self._buckets.get(key), budget, seconds, clock.timestamp())

    def observe(self, key: str, budget: Budget, available: float) -> None:
        """See :meth:`RateLimiter.observe`."""
        with self._lock:
            self._buckets[key] = observe(self._buckets.get(key), budget, available,
                                         clock.timestamp())


#: Each bucket's turn in this process: one thread at a time asks the shared store for it, and
#: the others wait here. A spent budget is then asked for once per process as it refills, not
#: once by every waiting thread (each ask is a write to the store).
_turns: dict[str, threading.Lock] = {}
_turns_guard = threading.Lock()


def _turn(key: str) -> threading.Lock:
    with _turns_guard:
        turn = _turns.get(key)
        if turn is None:
            turn = _turns[key] = threading.Lock()
        return turn


def acquire(
    limiter: RateLimiter,
    key: str,
    budget: Budget,
    cost: float = 1.0,
    *,
    provider: str,
    max_wait: float = MAX_WAIT,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait in this thread for ``cost`` units of ``key``'s budget; when the wait would be longer
    than ``max_wait``, raise :class:`RateLimitedError` so the job is put back on the queue.

    The threads of one process wait for a bucket in turn (see :data:`_turns`); the time spent
    waiting for the turn counts towards ``max_wait``.
    """
    began = time.monotonic()
    turn = _turn(key)
    if not turn.acquire(timeout=max_wait):
        raise RateLimitedError(
            f"{provider} {budget.name} budget: other requests have waited for it for "
            f"{math.ceil(max_wait)} s; trying again later", provider=provider,
            retry_after=MIN_RETRY)
    try:
        waited = time.monotonic() - began
        while True:
            wait = limiter.take(key, budget, cost)
            if wait <= 0:
                return
            if waited + wait > max_wait:
                raise RateLimitedError(
                    f"{provider} {budget.name} budget spent for now; trying again in "
                    f"{math.ceil(wait)} s", provider=provider, retry_after=max(wait, MIN_RETRY))
            sleep(wait)
            waited += wait
    finally:
        turn.release()


class Meter(Protocol):
    """What a provider's client does around each request to keep within its budgets."""

    def before(self, request: requests.PreparedRequest) -> None:
        """Wait for the budget (or raise :class:`RateLimitedError`) before ``request`` goes."""

    def after(self, request: requests.PreparedRequest, response: requests.Response) -> None:
        """Tell the limiter what the provider answered (what is left, how long to hold)."""


class MeteredAdapter(HTTPAdapter):
    """A ``requests`` transport that runs a :class:`Meter` around every request it sends."""

    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        """Send within the budget."""
        self.meter.before(request)
        response = super().send(request, *args, **kwargs)
        self.meter.after(request, response)
        return response


def meter_session(session: requests.Session, meter: Meter) -> requests.Session:
    """``session`` with every http(s) request it sends going through ``meter``."""
    adapter = MeteredAdapter(meter)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
