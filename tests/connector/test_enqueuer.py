"""The webhook views' enqueues run after the answer, on a thread of their own, in order; a
failing one is logged (the sweeper queues the stored work) and never reaches the caller."""

from __future__ import annotations

import logging
import threading

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
