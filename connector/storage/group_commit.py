"""Group commit: many threads' small writes, one transaction and one commit.

The webhook views store what a provider told them and must commit before they answer. Each
commit costs a disk flush on PostgreSQL and the single write lock on SQLite, so under a burst
the threads would mostly queue for commits. Instead each view hands its write (a function of a
:class:`~sqlalchemy.orm.Session`) to :meth:`GroupCommit.run`. A thread that finds no commit
under way leads: it runs its own write and commits. Writes handed in meanwhile wait in line;
when the leader is done, the first of them leads the next transaction, which takes every write
then waiting. Each caller gets its own result, and only once its write is committed: nothing is
answered that a crash could lose. No thread of its own does the writing, so a write costs no
hand-over to another thread and back; under load that hand-over cost more CPU than the
``INSERT`` itself.

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

import _thread
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from connector.storage.db import Database, committing

log = logging.getLogger(__name__)
T = TypeVar("T")
Item = TypeVar("Item")

#: The most writes one transaction takes; more wait for the next one.
MAX_BATCH = 64
#: Writes many items as one statement on a connection in autocommit mode; returns each item's
#: result, or None for an item it did not write (which is then written in a transaction).
Statement = Callable[[Connection, list[Any]], list[Any]]


class _Wake:
    """Wakes the one thread waiting on it: a lock held from the start, released by :meth:`set`.

    ``threading.Event`` builds a condition in Python and a new lock for every wait; a bare lock
    is the cheapest way for one thread to sleep until another wakes it. Each :meth:`set` is
    consumed by one :meth:`wait`.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()


class _Leading(threading.local):
    """Whether the current thread is running a transaction's writes (then a write it makes
    runs at once, not in line behind itself)."""

    active: bool = False


@dataclass(eq=False)
class _Write(Generic[T]):
    """One caller's write and, once a transaction is done with it, its outcome."""

    work: Callable[[Session], T]
    #: For :meth:`GroupCommit.run_many`: the function writing many items, and this write's.
    many: Callable[[Session, list[Any]], list[Any]] | None = None
    item: Any = None
    #: For :meth:`GroupCommit.run_many`: the same items as one statement standing alone.
    statement: Statement | None = None
    wake: _Wake = field(default_factory=_Wake)
    #: Woken to lead the next transaction rather than with an outcome.
    leads: bool = False
    settled: bool = False
    result: T | None = None
    error: BaseException | None = None

    def settle(self, result: T | None = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.settled = result, error, True
        self.wake.set()

    def outcome(self) -> T:
        """The write's result, or its error raised."""
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit:
    """Runs writes from many threads in shared transactions, led by the callers' own threads.

    :meth:`close` lets the writes already handed in finish and refuses new ones.
    """

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        #: Guards the line, the leading flag and closing.
        self._mutex = threading.Lock()
        self._led = threading.Condition(self._mutex)
        self._line: deque[_Write[Any]] = deque()
        self._leading = False
        self._closed = False
        self._leader = _Leading()
        #: The connection the transactions use, kept between them (one leader at a time):
        #: taking one from the pool for each would cost a round trip to the database (its
        #: liveness check) each time.
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
        if self._leader.active:  # a write that writes: no deadlock
            with self.db.session() as session:
                return write.work(session)
        with self._mutex:
            if self._closed:
                raise RuntimeError("the group commit writer is closed")
            follows = self._leading
            if follows:
                self._line.append(write)
            else:
                self._leading = True
        if follows:
            try:
                write.wake.wait()
            except BaseException:  # interrupted while in line (a signal in the main thread)
                self._leave_line(write)
                raise
            if not write.leads:
                return write.outcome()
        self._lead(write)
        return write.outcome()

    def _leave_line(self, write: _Write[Any]) -> None:
        """Take back a write whose caller stopped waiting; if it was woken to lead, pass the
        lead on, or the writes behind it would wait for ever."""
        with self._mutex:
            if write in self._line:
                self._line.remove(write)
                return
            if not write.leads:
                return  # a transaction took it; its outcome goes unread
        self._hand_on()

    def _lead(self, first: _Write[Any]) -> None:
        """Commit ``first`` and the writes waiting in line, then hand the lead on."""
        with self._mutex:
            batch = [first]
            while self._line and len(batch) < self.max_batch:
                batch.append(self._line.popleft())
        self._leader.active = True
        try:
            self._commit(batch)
        except BaseException as exc:  # a signal in the leader's thread: it raises it, and the
            # others must not wait for ever (their writes may or may not be committed).
            for write in batch[1:]:
                if not write.settled:
                    interrupted = RuntimeError("the transaction carrying this write was "
                                               "interrupted")
                    interrupted.__cause__ = exc
                    write.settle(error=interrupted)
            raise
        finally:
            self._leader.active = False
            self._hand_on()

    def _hand_on(self) -> None:
        """Wake the first write in line to lead the next transaction, or stop leading."""
        with self._mutex:
            if self._line:
                successor = self._line.popleft()
                successor.leads = True
                successor.wake.set()
            else:
                self._leading = False
                self._led.notify_all()

    def waiting(self) -> int:
        """Writes handed in that no transaction has taken yet."""
        with self._mutex:
            return len(self._line)

    def close(self) -> None:
        """Let the writes already handed in finish, refuse new ones, and give the connections
        back."""
        with self._mutex:
            self._closed = True
            while self._leading:
                self._led.wait()
        for connection in (self._connection, self._autocommit):
            if connection is not None:
                connection.close()
        self._connection = self._autocommit = None

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
