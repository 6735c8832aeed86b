"""Enqueues found waiting together reach the queue in one write, on Redis and on SQLite; the
jobs they carry come out as they would have one by one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from connector.jobs.batched_enqueues import batched
from connector.jobs.queue import PRIORITY_CRM, PRIORITY_TEXT
from connector.runtime import Runtime
from tests.connector.test_storage_and_queue import _runtime


@pytest.fixture(params=["sqlite", "redis"])
def queued(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Runtime]:
    queue_url = (f"sqlite:///{tmp_path / 'queue.db'}" if request.param == "sqlite"
                 else str(request.getfixturevalue("redis_url")))
    rt = _runtime(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", queue_url)
    yield rt
    rt.huey.flush()
    rt.crm_huey.flush()
    rt.close()


def _count_writes(storage: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each write to the storage's queue: how many tasks it carried."""
    writes: list[int] = []
    write = storage.enqueue_many

    def counted(tasks: list[tuple[bytes, Any]]) -> None:
        writes.append(len(tasks))
        write(tasks)

    monkeypatch.setattr(storage, "enqueue_many", counted)
    return writes


def test_a_batch_is_one_write_and_its_tasks_come_out_in_priority_then_arrival_order(
        queued: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = queued.huey.storage
    writes = _count_writes(storage, monkeypatch)
    with batched(queued.huey, queued.crm_huey):
        storage.enqueue(b"crm-1", PRIORITY_CRM)
        storage.enqueue(b"text-1", PRIORITY_TEXT)
        storage.enqueue(b"crm-2", PRIORITY_CRM)
        storage.enqueue(b"text-2", PRIORITY_TEXT)
        assert storage.queue_size() == 0  # kept until the block ends
    assert writes == [4]
    assert [storage.dequeue() for _ in range(4)] == [b"text-1", b"text-2", b"crm-1", b"crm-2"]
    assert storage.dequeue() is None


def test_other_threads_and_code_outside_a_batch_enqueue_at_once(
        queued: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = queued.huey.storage
    writes = _count_writes(storage, monkeypatch)
    with batched(queued.huey):
        other = threading.Thread(target=storage.enqueue, args=(b"elsewhere", PRIORITY_TEXT))
        other.start()
        other.join()
        assert storage.queue_size() == 1
        storage.enqueue(b"mine", PRIORITY_TEXT)
    storage.enqueue(b"after", PRIORITY_TEXT)
    assert writes == [1, 1, 1]
    assert [storage.dequeue() for _ in range(3)] == [b"elsewhere", b"mine", b"after"]


def test_a_batch_whose_block_fails_writes_nothing(queued: Runtime) -> None:
    storage = queued.huey.storage
    with pytest.raises(RuntimeError), batched(queued.huey):
        storage.enqueue(b"lost", PRIORITY_TEXT)
        raise RuntimeError("the enqueuer died")
    assert storage.queue_size() == 0
    storage.enqueue(b"next", PRIORITY_TEXT)  # the thread is out of the batch
    assert storage.queue_size() == 1


def test_the_runtimes_enqueuer_puts_waiting_jobs_on_the_queue_together(
        queued: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    texts, crm = (_count_writes(h.storage, monkeypatch) for h in (queued.huey, queued.crm_huey))
    running, gate = threading.Event(), threading.Event()
    queued.enqueuer.submit(lambda: (running.set(), gate.wait(30)))
    assert running.wait(30)
    for n in range(5):
        queued.enqueuer.submit(lambda n=n: queued.jobs.enqueue_text_back(f"call-{n}"))
    queued.enqueuer.submit(lambda: queued.jobs.enqueue_crm_sync("call-0"))
    gate.set()
    queued.enqueuer.close()
    assert texts == [5] and crm == [1]
    tasks = [queued.huey.dequeue() for _ in range(5)]
    assert [t.args for t in tasks] == [(f"call-{n}",) for n in range(5)]
    assert queued.crm_huey.dequeue().args == ("call-0",)
