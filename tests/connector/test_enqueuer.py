"""The webhook views' enqueues run after the answer, on a thread of their own, in order; a
failing one is logged (the sweeper queues the stored work) and never reaches the caller."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from connector.jobs.enqueuer import Enqueuer


def test_enqueues_run_on_their_own_thread_in_order_and_close_runs_what_is_left() -> None:
    enqueuer = Enqueuer()
    gate, ran, threads = threading.Event(), [], set()
    enqueuer.submit(lambda: gate.wait(30))
    for n in range(5):
        enqueuer.submit(lambda n=n: (ran.append(n), threads.add(threading.get_ident())))
    assert ran == []  # the caller was not held: the first enqueue still waits
    gate.set()
    enqueuer.close()
    assert ran == [0, 1, 2, 3, 4]
    assert threads and threading.get_ident() not in threads


def test_a_failing_enqueue_is_logged_and_the_next_still_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    enqueuer, ran = Enqueuer(), []

    def broken() -> None:
        raise ConnectionError("queue down")

    with caplog.at_level(logging.ERROR, logger="connector.jobs.enqueuer"):
        enqueuer.submit(broken)
        enqueuer.submit(lambda: ran.append("next"))
        enqueuer.close()
    assert ran == ["next"]
    assert "the sweeper will queue the work" in caplog.text


def test_inline_and_after_close_the_enqueue_runs_in_the_caller() -> None:
    for enqueuer in (Enqueuer(inline=True), Enqueuer()):
        enqueuer.close()
        seen: list[int] = []
        enqueuer.submit(lambda seen=seen: seen.append(threading.get_ident()))
        assert seen == [threading.get_ident()]


def test_enqueues_waiting_together_run_in_one_batch_and_a_refused_batch_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    blocks: list[list[str]] = []

    @contextmanager
    def batch() -> Iterator[None]:
        blocks.append([])
        yield
        if "refused" in blocks[-1]:
            raise ConnectionError("queue down")

    enqueuer = Enqueuer(batch=batch)
    running, gate = threading.Event(), threading.Event()
    enqueuer.submit(lambda: (blocks[-1].append("first"), running.set(), gate.wait(30)))
    assert running.wait(30)
    enqueuer.submit(lambda: blocks[-1].append("a"))

    after = threading.Event()

    def refused_then_more() -> None:
        blocks[-1].append("refused")
        enqueuer.submit(lambda: (blocks[-1].append("after"), after.set()))  # the next batch

    enqueuer.submit(refused_then_more)
    with caplog.at_level(logging.ERROR, logger="connector.jobs.enqueuer"):
        gate.set()
        assert after.wait(30)
        enqueuer.close()
    assert blocks == [["first"], ["a", "refused"], ["after"]]  # the thread went on
    assert "2 enqueues failed together; the sweeper will queue the work" in caplog.text
