"""Queue storages that can take many enqueues in one write.

Under load the webhook views hand their enqueues to one thread per process (see
:mod:`connector.jobs.enqueuer`), which finds several waiting at a time. One by one, each costs a
round trip to Redis (or a transaction on the SQLite queue's file, under its write lock). Inside
:meth:`BatchedEnqueues.batched`, a thread's enqueues are kept and written together when the
block ends: one ``ZADD`` of every task on Redis, one transaction on SQLite. Enqueues from other
threads, and from this one outside the block, go straight to the queue as before.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from huey.api import Huey
from huey.storage import PriorityRedisStorage, SqliteStorage


class _Pending(threading.local):
    """The current thread's kept enqueues: None outside a :meth:`BatchedEnqueues.batched`."""

    tasks: list[tuple[bytes, Any]] | None = None


class BatchedEnqueues:
    """Mixed into a Huey storage: :meth:`batched` keeps a thread's enqueues and writes them at
    its end with :meth:`enqueue_many`."""

    _pending: _Pending

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending = _Pending()

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Keep this thread's enqueues until the block ends, then write them in one go.

        When the block raises, what it kept is dropped with it; when the write fails, its
        error is raised here, for all of them. Nested blocks write with the outermost.
        """
        if self._pending.tasks is not None:
            yield
            return
        self._pending.tasks = []
        try:
            yield
            tasks = self._pending.tasks
        finally:
            self._pending.tasks = None
        if tasks:
            self.enqueue_many(tasks)

    def enqueue(self, data: bytes, priority: Any = None) -> None:
        """Huey's enqueue: kept inside :meth:`batched`, else written at once (a batch of one)."""
        tasks = self._pending.tasks
        if tasks is None:
            self.enqueue_many([self.entry(data, priority)])
        else:
            tasks.append(self.entry(data, priority))

    def entry(self, data: bytes, priority: Any) -> tuple[bytes, Any]:
        """What :meth:`enqueue_many` takes for one task, made when it is enqueued."""
        return data, priority

    def enqueue_many(self, tasks: list[tuple[bytes, Any]]) -> None:
        """Write ``tasks`` (made by :meth:`entry`) to the queue in one go, in their order."""
        raise NotImplementedError


class BatchedRedisStorage(BatchedEnqueues, PriorityRedisStorage):
    """Huey's Redis priority queue (a sorted set), a batch written as one ``ZADD``."""

    def entry(self, data: bytes, priority: Any) -> tuple[bytes, Any]:
        # As huey does (PriorityRedisStorage.enqueue): the member starts with the enqueue time
        # in microseconds, so tasks of one priority come out in the order they went in; the
        # score is the priority, negated (the set is read from its lowest score).
        prefix = struct.pack(">Q", int(time.time() * 1e6))
        return prefix + data, 0 if priority is None else -priority

    def enqueue_many(self, tasks: list[tuple[bytes, Any]]) -> None:
        """One ``ZADD`` of every task."""
        self.conn.zadd(self.queue_key, dict(tasks))


class BatchedSqliteStorage(BatchedEnqueues, SqliteStorage):
    """Huey's SQLite queue, a batch written in one transaction."""

    def enqueue_many(self, tasks: list[tuple[bytes, Any]]) -> None:
        """One ``INSERT`` per task, one transaction (one hold of the file's write lock)."""
        with self.db(commit=True) as cursor:
            cursor.executemany(
                "insert into task (queue, data, priority) values (?, ?, ?)",
                [(self.name, sqlite3.Binary(data), priority or 0) for data, priority in tasks])


@contextmanager
def batched(*hueys: Huey) -> Iterator[None]:
    """:meth:`BatchedEnqueues.batched` on every queue given whose storage batches."""
    with ExitStack() as stack:
        for huey in hueys:
            if isinstance(huey.storage, BatchedEnqueues):
                stack.enter_context(huey.storage.batched())
        yield
