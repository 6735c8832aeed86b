"""One queue for SQLite's single writer, across every process that writes the file.

SQLite lets one connection write at a time. A connection that finds the file locked sleeps and
tries again, in steps that grow to 100 ms (its busy handler), so under load the writers that lost
sleep while the one that won takes the lock again: the web process's commits wait behind the job
process's in bursts of several milliseconds. Here every writing connection first takes a lock
file's ``flock`` (after a lock of its own process's threads): the kernel queues the writers and
wakes the next one the moment the lock is released. SQLite's own locking is untouched and still
decides; the queue only spares it the sleeping.

A connection takes the lock at its first statement that writes and gives it back when its
transaction ends (commit, rollback, close, or a statement that leaves no transaction open).
Reads (``SELECT``, ``PRAGMA``) never take it: in WAL mode they do not wait for writers.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

#: Seconds a thread waits for its own process's writers before failing as SQLite would.
THREAD_WAIT_SECONDS = 30.0
#: Statements that only read, by their first word.
_READS = frozenset({"SELECT", "PRAGMA", "EXPLAIN"})
_WRITE_WORDS = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def writes(sql: str) -> bool:
    """True when ``sql`` may write (and so must hold the lock)."""
    words = sql.lstrip().split(None, 1)
    if not words:
        return False
    first = words[0].upper()
    if first in _READS:
        return False
    if first == "WITH":  # a common table expression: a read unless it ends in a write
        return bool(_WRITE_WORDS.search(sql))
    return True


class WriteQueue:
    """The lock a process's connections to one database file take before writing."""

    def __init__(self, lock_file: Path) -> None:
        self.lock_file = lock_file
        self._threads = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> None:
        """Wait for this process's other writers, then for other processes' writers."""
        if not self._threads.acquire(timeout=THREAD_WAIT_SECONDS):
            raise sqlite3.OperationalError("database is locked")
        try:
            if self._fd is None:
                self._fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        """Let the next writer in."""
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_queues: dict[Path, WriteQueue] = {}
_queues_guard = threading.Lock()


def write_queue(database: Path) -> WriteQueue:
    """This process's :class:`WriteQueue` for ``database`` (its lock file sits beside it)."""
    lock_file = database.with_name(database.name + ".write-lock").resolve()
    with _queues_guard:
        return _queues.setdefault(lock_file, WriteQueue(lock_file))


class QueuedConnection(sqlite3.Connection):
    """A connection that writes only while holding its database's :class:`WriteQueue`.

    Made per database by :func:`connection_factory` (``sqlite3.connect`` takes a class).
    """

    queue: WriteQueue
    _holding = False

    def cursor(self, factory: Any = None) -> Any:  # noqa: ARG002 - always ours
        """A cursor that takes the queue before a statement that writes."""
        return super().cursor(QueuedCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """:meth:`sqlite3.Connection.execute` through a queued cursor."""
        cursor: QueuedCursor = self.cursor()
        return cursor.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        """:meth:`sqlite3.Connection.executemany` through a queued cursor."""
        cursor: QueuedCursor = self.cursor()
        return cursor.executemany(sql, parameters)

    def commit(self) -> None:
        """Commit, then let the next writer in."""
        try:
            super().commit()
        finally:
            self.statement_done()

    def rollback(self) -> None:
        """Roll back, then let the next writer in."""
        try:
            super().rollback()
        finally:
            self.statement_done()

    def close(self) -> None:
        """Close (ending any transaction), then let the next writer in."""
        try:
            super().close()
        finally:
            self._release()

    def before_statement(self, sql: str) -> None:
        """Take the queue before the first statement of a transaction that writes."""
        if not self._holding and writes(sql):
            self.queue.acquire()
            self._holding = True

    def statement_done(self) -> None:
        """Give the queue back once no transaction is open."""
        if self._holding and not self.in_transaction:
            self._release()

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            self.queue.release()


class QueuedCursor(sqlite3.Cursor):
    """A cursor of a :class:`QueuedConnection`."""

    connection: QueuedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> QueuedCursor:
        """Run ``sql`` holding the queue when it writes."""
        self.connection.before_statement(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.statement_done()

    def executemany(self, sql: str, parameters: Any, /) -> QueuedCursor:
        """Run ``sql`` for each parameter set, holding the queue when it writes."""
        self.connection.before_statement(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            self.connection.statement_done()

    def executescript(self, script: str, /) -> QueuedCursor:
        """Run a script (it commits first), holding the queue throughout."""
        self.connection.before_statement("script")
        try:
            super().executescript(script)
            return self
        finally:
            self.connection.statement_done()


def connection_factory(database: Path) -> type[QueuedConnection]:
    """The connection class for ``database``: ``sqlite3.connect(..., factory=...)``."""
    queue = write_queue(database)
    return type("QueuedConnection", (QueuedConnection,), {"queue": queue})
