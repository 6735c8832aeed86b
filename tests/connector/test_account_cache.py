"""The webhook path's account cache: kept for its age, read again by one thread at a time."""

from __future__ import annotations

import threading

import pytest

from connector.runtime import ACCOUNT_CACHE_SECONDS, Runtime
from connector.storage import account_cache
from connector.storage.account_cache import AccountCache
from connector.storage.models import Account
from tests.connector.helpers import add_account, sandbox_account

WAIT = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """A ``read`` that counts its calls and, when ``gate`` is set up, holds each until
    released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.version = 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.error: Exception | None = None

    def __call__(self, account_id: str) -> Account | None:
        self.calls.append(account_id)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        if self.error is not None:
            raise self.error
        if account_id.startswith("stranger"):
            return None
        self.version += 1
        return Account(id=account_id, name=f"v{self.version}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reads() -> Reads:
    return Reads()


@pytest.fixture
def cache(reads: Reads, clock: FakeClock) -> AccountCache:
    return AccountCache(reads, max_age=2.0, monotonic=clock)


def name(account: Account | None) -> str | None:
    return None if account is None else account.name


def in_threads(cache: AccountCache, n: int) -> tuple[list[threading.Thread], list[object]]:
    got: list[object] = []

    def get() -> None:
        try:
            got.append(name(cache.get("acme")))
        except Exception as exc:  # noqa: BLE001 - what each thread got is the assertion
            got.append(exc)

    threads = [threading.Thread(target=get) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, got


def join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()


def test_an_account_is_kept_for_its_age_then_read_again(cache, reads, clock):
    assert name(cache.get("acme")) == "v1"
    clock.now += 1.9
    assert name(cache.get("acme")) == "v1"
    assert reads.calls == ["acme"]
    clock.now += 0.1
    assert name(cache.get("acme")) == "v2"
    assert reads.calls == ["acme", "acme"]


def test_when_the_kept_account_is_old_one_thread_reads_and_the_others_go_on_at_once(
        cache, reads, clock):
    assert name(cache.get("acme")) == "v1"
    clock.now += 5
    reads.gate, reads.entered = threading.Event(), threading.Event()
    reader, got_by_reader = in_threads(cache, 1)
    assert reads.entered.wait(WAIT)
    others, got = in_threads(cache, 10)
    join(others)  # they finish while the read is still held
    assert got == ["v1"] * 10
    assert reader[0].is_alive()
    reads.gate.set()
    join(reader)
    assert got_by_reader == ["v2"]
    assert reads.calls == ["acme", "acme"]
    assert name(cache.get("acme")) == "v2"


def test_the_first_read_is_waited_for_and_made_once(cache, reads):
    reads.gate = threading.Event()
    threads, got = in_threads(cache, 8)
    assert reads.entered.wait(WAIT)
    assert len(got) == 0
    reads.gate.set()
    join(threads)
    assert got == ["v1"] * 8
    assert reads.calls == ["acme"]


def test_a_failed_first_read_fails_for_every_thread_waiting_and_the_next_request_reads_again(
        cache, reads):
    reads.gate, reads.error = threading.Event(), ConnectionError("database down")
    threads, got = in_threads(cache, 5)
    assert reads.entered.wait(WAIT)
    reads.gate.set()
    join(threads)
    assert len(got) == 5 and all(isinstance(g, ConnectionError) for g in got)
    assert reads.calls == ["acme"]
    reads.gate, reads.error = None, None
    assert name(cache.get("acme")) == "v1"
    assert reads.calls == ["acme", "acme"]


def test_a_failed_read_again_keeps_nothing_and_the_next_request_tries_again(cache, reads, clock):
    cache.get("acme")
    clock.now += 5
    reads.error = ConnectionError("database down")
    with pytest.raises(ConnectionError):
        cache.get("acme")
    reads.error = None
    assert name(cache.get("acme")) == "v2"


def test_an_unknown_id_is_kept_as_none_and_old_ones_are_dropped_past_the_bound(
        cache, reads, clock, monkeypatch):
    monkeypatch.setattr(account_cache, "MAX_KEPT", 4)
    assert cache.get("stranger-0") is None
    assert cache.get("stranger-0") is None
    assert reads.calls == ["stranger-0"]
    for i in range(1, 4):
        cache.get(f"stranger-{i}")
    clock.now += 5  # all four are now old
    cache.get("acme")
    assert sorted(cache._kept) == ["acme"]


def test_the_runtime_sees_a_changed_account_once_the_cache_age_has_passed(
        runtime: Runtime, webhook_secret, monkeypatch):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    clock = FakeClock()
    monkeypatch.setattr(runtime._accounts, "_monotonic", clock)
    first = runtime.account("acme")
    assert first is not None
    with runtime.db.session() as s:
        s.get(Account, "acme").name = "Renamed Plumbing"
    assert runtime.account("acme").name == first.name != "Renamed Plumbing"
    clock.now += ACCOUNT_CACHE_SECONDS
    assert runtime.account("acme").name == "Renamed Plumbing"
