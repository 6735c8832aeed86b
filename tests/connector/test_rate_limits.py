"""The CRM rate limiter: one budget per portal shared by every worker (Redis or the database),
kept by the CRM clients before each request and adjusted by what the provider answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from connector.kernel.errors import RateLimitedError
from connector.kernel.ratelimit import (
    Bucket,
    Budget,
    MemoryRateLimiter,
    RateLimiter,
    acquire,
    take,
)
from connector.storage.db import Database, upgrade
from connector.storage.ratelimits import DbRateLimiter, RedisRateLimiter
from crm_adapters.hubspot.client import REQUESTS_BUDGET, SEARCH_BUDGET
from crm_adapters.jobber.limits import COST_BUDGET, JobberMeter
from tests.stubs.hubspot_stub import HubSpotStub

HUBSPOT = Budget("requests", 100, 10.0)
#: A budget that barely refills while a test runs, whatever the machine's speed.
SLOW = Budget("requests", 100, 1000.0)


# -- the algorithm ---------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [HUBSPOT, SEARCH_BUDGET], ids=["requests", "search"])
def test_no_window_sees_more_than_the_limit_however_greedy_the_callers(budget: Budget) -> None:
    bucket: Bucket | None = None
    granted: list[float] = []
    now = 1_000.0
    minute = 60.0
    while now < 1_000.0 + minute:  # a caller asking every millisecond for a minute
        bucket, wait = take(bucket, budget, 1.0, now)
        if wait == 0:
            granted.append(now)
        now += 0.001
    busiest = max(sum(1 for t in granted if start <= t < start + budget.window)
                  for start in granted)
    assert busiest <= budget.limit - 1  # a request's room for network delays
    # ... and the budget is used: at least three quarters of the limit over the minute.
    assert len(granted) >= 0.75 * budget.limit * minute / budget.window


def test_a_request_that_cannot_go_yet_is_told_how_long_to_wait() -> None:
    bucket = Bucket(0.0, 1_000.0)
    after, wait = take(bucket, HUBSPOT, 1.0, 1_000.0)
    assert wait == pytest.approx(1 / HUBSPOT.rate) and after.tokens == 0.0


def test_acquire_waits_short_and_refuses_long_waits_so_the_job_is_queued_again() -> None:
    limiter = MemoryRateLimiter()
    slept: list[float] = []
    for _ in range(int(HUBSPOT.capacity)):
        acquire(limiter, "p", HUBSPOT, provider="hubspot", sleep=slept.append)
    assert slept == []
    limiter.hold("p", HUBSPOT, 40.0)
    with pytest.raises(RateLimitedError) as info:
        acquire(limiter, "p", HUBSPOT, provider="hubspot", sleep=slept.append)
    assert 39.0 < info.value.retry_after <= 40.0 and info.value.provider == "hubspot"
    assert slept == []  # not worth waiting in the thread: the job goes back on the queue


class CountingLimiter(MemoryRateLimiter):
    """A limiter that counts the times it is asked (each a write on a shared store)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def take(self, key: str, budget: Budget, cost: float = 1.0) -> float:
        self.asked += 1
        return super().take(key, budget, cost)


def test_threads_of_one_process_ask_the_store_in_turn_not_all_at_once() -> None:
    import threading

    limiter = CountingLimiter()
    budget = Budget("requests", 50, 1.0)  # spent after 4, then one every ~20 ms
    threads = [threading.Thread(target=lambda: [
        acquire(limiter, "turns", budget, provider="hubspot") for _ in range(5)])
        for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted = 40
    # Each grant after the burst costs one refused ask and one granted one; eight threads all
    # polling the store as the bucket refills would ask several times per grant.
    assert granted <= limiter.asked <= 2 * granted + 8


def test_a_thread_that_waited_too_long_for_its_turn_puts_its_job_back() -> None:
    import threading
    import time

    limiter = MemoryRateLimiter()
    limiter.hold("slow", HUBSPOT, 0.5)
    asleep = threading.Event()

    def sleep(seconds: float) -> None:
        asleep.set()
        time.sleep(seconds)

    first = threading.Thread(
        target=lambda: acquire(limiter, "slow", HUBSPOT, provider="hubspot", sleep=sleep))
    first.start()
    assert asleep.wait(5.0)  # the first thread has its turn, waiting out the hold
    with pytest.raises(RateLimitedError, match="waited for it") as info:
        acquire(limiter, "slow", HUBSPOT, provider="hubspot", max_wait=0.1)
    assert info.value.retry_after >= 1.0 and info.value.provider == "hubspot"
    first.join()
    assert limiter.take("slow", HUBSPOT) == 0.0  # the first got its request, and the hold ended


# -- the shared stores -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[
        tuple[RateLimiter, RateLimiter]]:
    """Two limiters on one store, as two worker processes would have."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        a, b = RedisRateLimiter(url), RedisRateLimiter(url)
        yield a, b
        a.close()
        b.close()
        return
    url = (request.getfixturevalue("pg_url") if request.param == "postgresql"
           else f"sqlite:///{tmp_path / 'limits.db'}")
    upgrade(url)
    dbs = Database(url), Database(url)
    yield DbRateLimiter(dbs[0]), DbRateLimiter(dbs[1])
    for db in dbs:
        db.dispose()


def test_two_workers_draw_on_one_budget(two_workers: tuple[RateLimiter, RateLimiter]) -> None:
    a, b = two_workers
    burst = int(SLOW.capacity)
    granted = [a.take("acme", SLOW) if i % 2 else b.take("acme", SLOW)
               for i in range(burst)]
    assert granted == [0.0] * burst
    # The burst is spent for both: the next request waits, whichever worker asks.
    assert 0 < a.take("acme", SLOW) <= 1 / SLOW.rate
    assert 0 < b.take("acme", SLOW) <= 1 / SLOW.rate
    # Another portal has a budget of its own.
    assert b.take("globex", SLOW) == 0.0


def test_a_429_held_by_one_worker_holds_the_other(
        two_workers: tuple[RateLimiter, RateLimiter]) -> None:
    a, b = two_workers
    a.hold("acme", SLOW, 20.0)
    assert 19.0 < b.take("acme", SLOW) <= 20.0
    assert b.take("globex", SLOW) == 0.0


def test_what_the_provider_says_is_left_caps_the_budget(
        two_workers: tuple[RateLimiter, RateLimiter]) -> None:
    a, b = two_workers
    a.observe("acme", SLOW, 1.0)
    assert b.take("acme", SLOW) == 0.0
    assert b.take("acme", SLOW) > 0


# -- the CRM clients ---------------------------------------------------------------------------


def hubspot(stub: HubSpotStub, limiter: RateLimiter) -> Any:
    from crm_adapters.hubspot import HubSpotCrm

    return HubSpotCrm({"access_token": "pat-test"}, api_base_url=stub.url,
                      rate_limiter=limiter, rate_limit_key="acme")


def test_hubspot_holds_every_worker_after_a_429() -> None:
    limiter = MemoryRateLimiter()
    with HubSpotStub(access_token="pat-test") as stub:
        crm = hubspot(stub, limiter)
        stub.fail_next(429, headers={"Retry-After": "12"})
        with pytest.raises(RateLimitedError):
            crm.find_or_create_contact("+14155550123")
        assert len(stub.requests) == 1
        budget = SEARCH_BUDGET if stub.requests[0].path.endswith("/search") else REQUESTS_BUDGET
        assert 11.0 < limiter.take(f"hubspot-{budget.name}:acme", budget) <= 12.0


def test_hubspot_reads_the_remaining_requests_from_its_headers() -> None:
    limiter = MemoryRateLimiter()
    with HubSpotStub(access_token="pat-test", rate_limit=(5, 10.0)) as stub:
        crm = hubspot(stub, limiter)
        crm.find_or_create_contact("+14155550123")
        assert stub.throttled == 0
        sent = len([r for r in stub.requests if not r.path.endswith("/search")])
        # The stub said 5 - sent are left: the bucket (8 when full) counts on no more.
        for _ in range(5 - sent):
            assert limiter.take("hubspot-requests:acme", REQUESTS_BUDGET) == 0.0
        assert limiter.take("hubspot-requests:acme", REQUESTS_BUDGET) > 0


def test_steady_hubspot_load_draws_no_429() -> None:
    limiter = MemoryRateLimiter()
    budget = Budget("requests", 20, 1.0)  # the stub's limit, scaled down to keep the test short
    with HubSpotStub(access_token="pat-test", rate_limit=(20, 1.0)) as stub:
        session = requests.Session()
        for _ in range(60):
            acquire(limiter, "acme", budget, provider="hubspot")
            session.post(f"{stub.url}/crm/v3/objects/calls", json={"properties": {}})
        assert stub.throttled == 0


@responses.activate
def test_jobber_follows_its_cost_bucket_and_holds_on_throttled() -> None:
    limiter = MemoryRateLimiter()
    session = requests.Session()
    from connector.kernel.ratelimit import meter_session

    meter_session(session, JobberMeter(limiter, "acme"))
    cost = {"requestedQueryCost": 300, "actualQueryCost": 250,
            "throttleStatus": {"maximumAvailable": 10000, "currentlyAvailable": 120,
                               "restoreRate": 500}}
    responses.post("https://api.getjobber.com/api/graphql",
                   json={"data": {}, "extensions": {"cost": cost}})
    session.post("https://api.getjobber.com/api/graphql", data=json.dumps({}))
    # Jobber says 120 points are left and queries cost 300: the next one waits for 180.
    wait = limiter.take("jobber-cost:acme", COST_BUDGET, 300)
    assert wait == pytest.approx(180 / COST_BUDGET.rate, rel=0.05)
    responses.replace(responses.POST, "https://api.getjobber.com/api/graphql", json={
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {"cost": dict(cost, throttleStatus=dict(cost["throttleStatus"],
                                                                currentlyAvailable=0))}})
    session.post("https://api.getjobber.com/api/graphql", data=json.dumps({}))
    # Throttled: nothing goes until Jobber's bucket has the query's cost again (300 / 500 s).
    assert 0.5 < limiter.take("jobber-cost:acme", COST_BUDGET, 1) <= 1.0


@responses.activate
def test_housecall_pro_holds_for_its_retry_after() -> None:
    from crm_adapters.housecallpro import HousecallProCrm

    limiter = MemoryRateLimiter()
    responses.get("https://api.housecallpro.com/customers", status=429,
                  headers={"Retry-After": "40"}, json={"message": "slow down"})
    crm = HousecallProCrm({"api_key": "hcp-key"}, rate_limiter=limiter, rate_limit_key="acme")
    with pytest.raises(RateLimitedError):
        crm.find_or_create_contact("+14155550123")
    with pytest.raises(RateLimitedError) as info:  # the next request does not go at all
        crm.find_or_create_contact("+14155550123")
    assert 39 < info.value.retry_after <= 40
    assert len(responses.calls) == 1


# -- the jobs --------------------------------------------------------------------------------


def test_a_spent_budget_puts_the_crm_sync_back_without_counting_a_failure(
        app: Any, runtime: Any, webhook_secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from connector.kernel import clock
    from connector.storage.models import Call
    from tests.connector.helpers import add_account, missed, post, sandbox_account

    add_account(runtime, sandbox_account("acme", webhook_secret))
    crm = runtime.crm_for  # the sandbox CRM, but its budget is spent for 40 s

    class Spent:
        def __init__(self, real: Any) -> None:
            self._real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

        def find_or_create_contact(self, *args: Any, **kwargs: Any) -> Any:
            raise RateLimitedError("budget spent", provider="sandbox", retry_after=40.0)

    monkeypatch.setattr(runtime, "crm_for", lambda account: Spent(crm(account)))
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    with runtime.db.session() as s:
        call = s.scalar(select(Call))
        assert call.state == "texted"  # the text went; only the CRM waits
        assert call.crm_state == "retry" and call.attempts == 0
        wait = (call.next_attempt_at - clock.now()).total_seconds()
        assert 35 < wait <= 40


# -- whose budget: the CRM portal, not the textback account -----------------------------------


def test_accounts_in_one_crm_portal_draw_on_one_budget(runtime: Any, webhook_secret: str) -> None:
    from connector.storage.installations import save_installation
    from crm_adapters.base import OAuthTokens
    from tests.connector.helpers import add_account, sandbox_account

    token = {"access_token": "pat-na1-shared"}
    shared = runtime.crm_portal("hubspot", "acme-north", token)
    assert shared == runtime.crm_portal("hubspot", "acme-south", token)
    assert "pat-na1-shared" not in shared  # the token itself is never a key
    assert shared != runtime.crm_portal("hubspot", "acme-north", {"access_token": "pat-other"})
    # A marketplace install counts against the portal it is installed in, whoever's account.
    for account in ("hubspot-1", "hubspot-1-west"):
        add_account(runtime, sandbox_account(account, webhook_secret))
        save_installation(runtime.db, runtime.box, account, "hubspot",
                          OAuthTokens("access", "refresh"), external_id="24681357")
    assert runtime.crm_portal("hubspot", "hubspot-1", {"client_id": "app"}) == "hubspot:24681357"
    assert runtime.crm_portal("hubspot", "hubspot-1-west", {"client_id": "app"}) \
        == "hubspot:24681357"
    # Nothing names a portal: the account is the best guess.
    assert runtime.crm_portal("jobber", "pipes", {"client_id": "c"}) == "jobber:account:pipes"
