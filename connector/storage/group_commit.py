"""Group commit: many threads' small writes, one transaction and one commit.

The webhook views store what a provider told them and must commit before they answer. Each
commit costs a disk flush on PostgreSQL and the single write lock on SQLite, so under a burst
the threads would mostly queue for commits. Instead each view hands its write (a function of a
:class:`~sqlalchemy.orm.Session`) to :meth:`GroupCommit.run`, and one writer thread per process
runs every write waiting at that moment in one transaction, commits once, and hands each caller
its own result. A caller still returns only after its write is committed: nothing is answered
that a crash could lose.

Writes of one kind can also be handed in as items for a function that writes many at once
(:meth:`GroupCommit.run_many`): the batch then makes one statement of all the items of that kind
(one multi-row ``INSERT``), so a burst costs one round trip to the database per batch, not one
per request. Where that statement can stand alone, a batch made only of such items is first
sent as that statement on a connection in autocommit mode: no ``BEGIN`` and no ``COMMIT``, one
round trip on PostgreSQL, and on SQLite the write lock held for the statement alone.

A write that raises does not cost the others theirs: the batch is rolled back and each of its
writes runs again in a transaction of its own, so each caller gets exactly what running alone
would have given it (its result, or its own exception). Writes must therefore only touch the
database (no provider calls, no enqueueing): that is also what keeps the batch short.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from connector.kernel.batches import take_batch
from connector.storage.db import Database, committing

log = logging.getLogger(__name__)
T = TypeVar("T")
Item = TypeVar("Item")

#: The most writes one transaction takes; more wait for the next one.
MAX_BATCH = 64
#: Writes many items as one statement on a connection in autocommit mode; returns each item's
#: result, or None for an item it did not write (which is then written in a transaction).
Statement = Callable[[Connection, list[Any]], list[Any]]


@dataclass
class _Write(Generic[T]):
    """One caller's write and, once the writer is done with it, its outcome."""

    work: Callable[[Session], T]
    #: For :meth:`GroupCommit.run_many`: the function writing many items, and this write's.
    many: Callable[[Session, list[Any]], list[Any]] | None = None
    item: Any = None
    #: For :meth:`GroupCommit.run_many`: the same items as one statement standing alone.
    statement: Statement | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None

    def settle(self, result: T | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class GroupCommit:
    """Runs writes from many threads in shared transactions on one writer thread.

    The thread starts with the first write and stops with :meth:`close`.
    """

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._pending: queue.SimpleQueue[_Write[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        #: The writer thread's own connection, kept between batches: taking one from the pool
        #: for each batch would cost a round trip to the database (its liveness check) each time.
        self._connection: Connection | None = None
        #: The same, in autocommit mode, for the statements that stand alone.
        self._autocommit: Connection | None = None
        #: Transactions committed and the writes they carried (what the tests check).
        self.batches = 0
        self.writes = 0

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a transaction shared with other callers' writes; return its
        result once committed, or raise what it raised (or what the commit raised)."""
        return self._submit(_Write(work))

    def run_many(self, many: Callable[[Session, list[Item]], list[T]], item: Item, *,
                 statement: Statement | None = None) -> T:
        """Write ``item`` with ``many(session, items)``, called once per batch with every item
        handed in for that same function (it returns one result per item, in order); return
        this item's result once committed. Running alone, ``many`` gets this item only.

        With ``statement``, a batch whose writes all name it is first handed to it whole, on
        a connection in autocommit mode; ``many`` then writes only the items it left (None).
        """
        return self._submit(
            _Write(lambda session: many(session, [item])[0], many, item, statement))

    def _submit(self, write: _Write[T]) -> T:
        if threading.current_thread() is self._thread:  # a write that writes: no deadlock
            with self.db.session() as session:
                return write.work(session)
        return self._hand_in(write)

    def _hand_in(self, write: _Write[T]) -> T:
        self._ensure_started()
        self._pending.put(write)
        while not write.done.wait(1.0):
            thread = self._thread
            if thread is None or not thread.is_alive():  # handed in as the writer closed
                if not write.done.is_set():
                    raise RuntimeError("the group commit writer is closed")
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[return-value]

    def waiting(self) -> int:
        """Writes handed in that no transaction has taken yet."""
        return self._pending.qsize()

    def close(self) -> None:
        """Finish the writes already handed in, then stop the writer thread."""
        with self._start_lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._pending.put(None)
            thread.join()
        for connection in (self._connection, self._autocommit):
            if connection is not None:
                connection.close()
        self._connection = self._autocommit = None

    def _ensure_started(self) -> None:
        if self._thread is not None and not self._closed:
            return
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the group commit writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="group-commit",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        closing = False
        while not closing:
            batch, closing = take_batch(self._pending, self.max_batch)
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Write[Any]]) -> None:
        """One transaction for the batch; on any failure, each write in one of its own."""
        batch = self._by_statement(batch)
        if not batch:
            return
        if len(batch) > 1:
            results = self._try_together(batch)
            if results is not None:
                for write, result in zip(batch, results, strict=True):
                    write.settle(result)
                return
        for write in batch:
            self._run_alone(write)

    def _try_together(self, batch: list[_Write[Any]]) -> list[Any] | None:
        """Every write's result when all ran and committed together; None when one failed
        (the transaction is rolled back and nothing of the batch is kept)."""
        try:
            with self._session() as session:
                results = _run_together(session, batch)
        except Exception:  # noqa: BLE001 - each write is retried alone and gets its own error
            log.debug("a write of a batch of %d failed; running each alone", len(batch))
            return None
        self.batches += 1
        self.writes += len(batch)
        return results

    def _by_statement(self, batch: list[_Write[Any]]) -> list[_Write[Any]]:
        """Settle the writes the batch's standing-alone statement makes; the writes left."""
        statement = batch[0].statement
        if statement is None or any(write.statement is not statement for write in batch):
            return batch
        try:
            connection = self._autocommit_connection()
            results = statement(connection, [w.item for w in batch])
            connection.commit()  # in autocommit mode, only ends SQLAlchemy's own bookkeeping
        except Exception:  # noqa: BLE001 - the writes go the usual way, which reports errors
            # Whatever it stored (the connection may have dropped after the commit) is found
            # there by the transaction that follows, as a re-delivered event would be.
            log.debug("a standing-alone statement of %d writes failed", len(batch))
            return batch
        left = []
        for write, result in zip(batch, results, strict=True):
            if result is None:
                left.append(write)
            else:
                write.settle(result)
        if len(left) < len(batch):
            self.batches += 1
            self.writes += len(batch) - len(left)
        return left

    def _autocommit_connection(self) -> Connection:
        self._autocommit = self._usable(self._autocommit, autocommit=True)
        return self._autocommit

    def _usable(self, kept: Connection | None, *, autocommit: bool = False) -> Connection:
        """``kept``, or a new connection in its place when there is none or the database
        dropped it."""
        if kept is not None and not kept.invalidated and not kept.closed:
            return kept
        if kept is not None:
            kept.close()
        connection = self.db.engine.connect()
        if autocommit:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        return connection

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session on the writer's connection that commits when the block ends cleanly; a
        connection the database dropped is replaced for the next transaction."""
        self._connection = self._usable(self._connection)
        with committing(Session(bind=self._connection, expire_on_commit=False)) as session:
            yield session

    def _run_alone(self, write: _Write[Any]) -> None:
        for attempt in (1, 2):
            try:
                with self._session() as session:
                    result = write.work(session)
            except DBAPIError as exc:
                # The connection kept between batches was dropped (the server restarted): the
                # transaction never began, so one more try on a new connection is safe.
                if attempt == 1 and exc.connection_invalidated:
                    continue
                write.settle(error=exc)
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
                write.settle(error=exc)
                return
            break
        self.batches += 1
        self.writes += 1
        write.settle(result)


def _run_together(session: Session, batch: list[_Write[Any]]) -> list[Any]:
    """Each write's result, in order: the items of each ``many`` function written by one call,
    every other write on its own, all in ``session``."""
    results: list[Any] = [None] * len(batch)
    groups: dict[Callable[[Session, list[Any]], list[Any]], list[int]] = {}
    for index, write in enumerate(batch):
        if write.many is None:
            results[index] = write.work(session)
        else:
            groups.setdefault(write.many, []).append(index)
    for many, indexes in groups.items():
        written = many(session, [batch[i].item for i in indexes])
        if len(written) != len(indexes):
            raise RuntimeError(f"{many!r} returned {len(written)} results for {len(indexes)}")
        for index, result in zip(indexes, written, strict=True):
            results[index] = result
    return results
