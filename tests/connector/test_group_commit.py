"""Group commit: the webhook views' writes from many threads share transactions, each caller
still gets its own result (or its own error), and only once its write is committed."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from connector.jobs.intake import insert_new_missed_calls, record_missed_calls
from connector.kernel import clock
from connector.kernel.events import CallOutcome, MissedCall
from connector.runtime import Runtime
from connector.storage.db import upgrade
from connector.storage.group_commit import GroupCommit
from connector.storage.models import Account, Call
from tests.conftest import make_settings
from tests.connector.helpers import add_account, drop_on_the_server, sandbox_account

BUSINESS = "+14155550100"


@pytest.fixture(params=["sqlite", "postgresql"])
def runtime_on(request: pytest.FixtureRequest, tmp_path: Path,
               webhook_secret: str) -> Iterator[Runtime]:
    url = (f"sqlite:///{tmp_path / 'gc.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    settings = make_settings(tmp_path, database_url=url)
    upgrade(settings.database_url)
    rt = Runtime(settings, immediate_queue=True)
    add_account(rt, sandbox_account("acme", webhook_secret))
    yield rt
    rt.close()


def account(rt: Runtime) -> Account:
    found = rt.account("acme")
    assert found is not None
    return found


def missed(n: int, event_id: str | None = None) -> MissedCall:
    return MissedCall("sandbox", event_id or f"CA{n:06d}", f"+1415555{n:04d}", BUSINESS,
                      CallOutcome.NO_ANSWER, clock.now())


def calls(rt: Runtime) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Call)) or 0)


def until_waiting(writer: GroupCommit, count: int) -> None:
    """Return once ``count`` writes wait in line (behind a held one)."""
    while writer.waiting() < count:
        threading.Event().wait(0.01)


def hold_the_writer(writer: GroupCommit) -> tuple[threading.Event, threading.Thread]:
    """Occupy the writer with one write until the returned event is set."""
    entered, release = threading.Event(), threading.Event()

    def slow(_session: Session) -> None:
        entered.set()
        release.wait(30)

    thread = threading.Thread(target=writer.run, args=(slow,))
    thread.start()
    assert entered.wait(30)
    return release, thread


def test_writes_waiting_together_are_one_transaction_and_each_gets_its_own_result(
        runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    release, holder = hold_the_writer(rt.writer)
    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(rt.writer.run_many, record_missed_calls, (acme, missed(n)))
                   for n in range(20)]
        until_waiting(rt.writer, 20)  # all twenty queue behind the held write
        assert calls(rt) == 0
        release.set()
        results = [f.result(timeout=30) for f in futures]
    holder.join()
    assert all(created for _, created in results)
    assert len({call_id for call_id, _ in results}) == 20
    assert calls(rt) == 20
    # The held write was one transaction, the twenty the next one.
    assert (rt.writer.batches, rt.writer.writes) == (2, 21)


def test_one_failing_write_costs_only_its_own_caller(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)

    def broken(session: Session) -> None:
        record_missed_calls(session, [(acme, missed(999))])
        raise ValueError("this write is wrong")

    release, holder = hold_the_writer(rt.writer)
    with ThreadPoolExecutor(6) as pool:
        good = [pool.submit(rt.writer.run_many, record_missed_calls, (acme, missed(n)))
                for n in range(5)]
        bad = pool.submit(rt.writer.run, broken)
        until_waiting(rt.writer, 6)
        release.set()
        with pytest.raises(ValueError, match="this write is wrong"):
            bad.result(timeout=30)
        assert all(f.result(timeout=30)[1] for f in good)
    holder.join()
    with rt.db.session() as s:  # the good five are kept, the failed write's call is not
        assert sorted(s.scalars(select(Call.event_id))) == [f"CA{n:06d}" for n in range(5)]


def test_a_result_is_returned_only_once_committed(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    call_id, created = rt.writer.run_many(record_missed_calls, (acme, missed(1)))
    with rt.db.session() as other:  # a new session: sees only what is committed
        assert created and other.get(Call, call_id) is not None


def test_the_same_call_twice_in_one_insert_is_one_row(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    with rt.db.session() as s:
        first, again, other = record_missed_calls(
            s, [(acme, missed(1, "CA-dup")), (acme, missed(1, "CA-dup")), (acme, missed(2))])
    assert first[1] and not again[1] and other[1]
    assert first[0] == again[0]
    with rt.db.session() as s:  # a callback re-delivered later finds the same call
        [(call_id, created)] = record_missed_calls(s, [(acme, missed(1, "CA-dup"))])
    assert (call_id, created) == (first[0], False)
    assert calls(rt) == 2


def test_a_write_that_writes_from_the_writer_thread_runs_at_once(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)

    def nested(_session: Session) -> Any:
        return rt.writer.run_many(record_missed_calls, (acme, missed(7)))

    call_id, created = rt.writer.run(nested)
    assert created and calls(rt) == 1 and call_id


def test_close_finishes_the_writes_handed_in_and_takes_no_more(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    release, holder = hold_the_writer(rt.writer)
    queued = threading.Thread(target=rt.writer.run_many,
                              args=(record_missed_calls, (acme, missed(1))))
    queued.start()
    until_waiting(rt.writer, 1)
    closing = threading.Thread(target=rt.writer.close)
    closing.start()
    release.set()
    closing.join(30)
    holder.join(30)
    queued.join(30)
    assert calls(rt) == 1  # handed in before close: written
    with pytest.raises(RuntimeError, match="closed"):
        rt.writer.run(lambda _session: None)


def test_a_writer_never_started_closes_at_once(runtime_on: Runtime) -> None:
    writer = GroupCommit(runtime_on.db)
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.run(lambda _session: None)


def test_a_write_with_no_transaction_under_way_runs_on_its_callers_thread(
        runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    ran_on: list[threading.Thread] = []

    def many(session: Session, items: list[Any]) -> list[Any]:
        ran_on.append(threading.current_thread())
        return record_missed_calls(session, items)

    threads_before = threading.active_count()
    assert rt.writer.run_many(many, (acme, missed(1)))[1]
    assert ran_on == [threading.current_thread()]  # no hand-over to a thread of its own
    assert threading.active_count() == threads_before
    assert calls(rt) == 1


def test_the_writes_in_line_are_led_by_one_of_their_callers(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    callers: set[threading.Thread] = set()
    ran_on: list[tuple[threading.Thread, int]] = []

    def many(session: Session, items: list[Any]) -> list[tuple[str, bool]]:
        ran_on.append((threading.current_thread(), len(items)))
        return record_missed_calls(session, items)

    def write(n: int) -> tuple[str, bool]:
        callers.add(threading.current_thread())
        return rt.writer.run_many(many, (acme, missed(n)))

    release, holder = hold_the_writer(rt.writer)
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(write, n) for n in range(5)]
        until_waiting(rt.writer, 5)
        release.set()
        assert all(f.result(timeout=30)[1] for f in futures)
    holder.join()
    [(thread, items)] = ran_on  # the five in one transaction, on one of their own threads
    assert items == 5 and thread in callers
    assert (rt.writer.batches, rt.writer.writes, rt.writer.waiting()) == (2, 6, 0)


class Interrupt(BaseException):
    """What a signal raises in the thread it interrupts (as ``KeyboardInterrupt`` does)."""


def test_an_interrupted_leader_fails_the_writes_it_carried_and_the_lead_goes_on(
        runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)

    def interrupted(_session: Session) -> None:
        raise Interrupt

    release, holder = hold_the_writer(rt.writer)
    with ThreadPoolExecutor(4) as pool:
        leader = pool.submit(rt.writer.run, interrupted)  # first in line: it leads the batch
        until_waiting(rt.writer, 1)
        carried = [pool.submit(rt.writer.run_many, record_missed_calls, (acme, missed(n)))
                   for n in range(3)]
        until_waiting(rt.writer, 4)
        release.set()
        with pytest.raises(Interrupt):
            leader.result(timeout=30)
        for future in carried:
            with pytest.raises(RuntimeError, match="interrupted"):
                future.result(timeout=30)
    holder.join()
    assert calls(rt) == 0  # the transaction was rolled back
    # Nobody is left leading: the next write leads, and lands.
    assert rt.writer.run_many(record_missed_calls, (acme, missed(9)))[1]
    assert calls(rt) == 1


def test_a_caller_interrupted_while_in_line_leaves_it(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    ran: list[int] = []

    def interrupt(_signum: int, _frame: object) -> None:
        raise Interrupt

    release, holder = hold_the_writer(rt.writer)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupt):  # this (main) thread waits in line behind the holder
            rt.writer.run(lambda _session: ran.append(1))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert rt.writer.waiting() == 0  # out of the line
    release.set()
    holder.join(30)
    assert ran == []  # never run
    assert rt.writer.run_many(record_missed_calls, (acme, missed(1)))[1]
    assert calls(rt) == 1


@pytest.fixture
def pg_runtime(pg_url: str, tmp_path: Path, webhook_secret: str) -> Iterator[Runtime]:
    """A runtime on PostgreSQL with the account ``acme``."""
    settings = make_settings(tmp_path, database_url=pg_url)
    upgrade(settings.database_url)
    rt = Runtime(settings, immediate_queue=True)
    add_account(rt, sandbox_account("acme", webhook_secret))
    yield rt
    rt.close()


def test_the_writer_reconnects_after_the_server_drops_its_connection(
        pg_runtime: Runtime) -> None:
    rt, acme = pg_runtime, account(pg_runtime)
    rt.writer.run_many(record_missed_calls, (acme, missed(1)))
    kept = rt.writer._connection  # noqa: SLF001 - the connection the writer keeps
    assert kept is not None
    drop_on_the_server(rt.db.engine, kept)
    # The next write fails on the dropped connection, is retried alone on a new one, and lands.
    assert rt.writer.run_many(record_missed_calls, (acme, missed(2)))[1]
    assert calls(rt) == 2


# -- the standing-alone statement: new missed calls in one autocommit INSERT -------------------


def queue_behind_the_writer(rt: Runtime, items: list[tuple[Account, MissedCall]],
                            statement: Any = insert_new_missed_calls) -> list[tuple[str, bool]]:
    """Hand ``items`` in together (behind a held write, so they make one batch); the results."""
    release, holder = hold_the_writer(rt.writer)
    with ThreadPoolExecutor(len(items)) as pool:
        futures = [pool.submit(rt.writer.run_many, record_missed_calls, item,
                               statement=statement) for item in items]
        until_waiting(rt.writer, len(items))
        release.set()
        results = [f.result(timeout=30) for f in futures]
    holder.join()
    return results


def test_new_calls_handed_in_together_are_one_autocommit_insert(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    sent: list[int] = []

    def statement(connection: Any, items: list[Any]) -> list[Any]:
        sent.append(len(items))
        return insert_new_missed_calls(connection, items)

    results = queue_behind_the_writer(rt, [(acme, missed(n)) for n in range(12)], statement)
    assert sent == [12]  # one statement for the batch
    assert all(created for _, created in results) and len({i for i, _ in results}) == 12
    assert calls(rt) == 12
    assert (rt.writer.batches, rt.writer.writes) == (2, 13)
    # Nothing was left open: a reader elsewhere sees every call, and the file takes a writer.
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 12
        s.execute(update(Call).values(attempts=1))


def test_calls_already_there_and_copies_are_settled_in_a_transaction(
        runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    [(earlier, _)] = queue_behind_the_writer(rt, [(acme, missed(1))])
    results = queue_behind_the_writer(rt, [
        (acme, missed(1)),  # re-delivered
        (acme, missed(2, "CA-twice")), (acme, missed(2, "CA-twice")),  # two copies at once
        (acme, missed(3)),
    ])
    assert results[0] == (earlier, False)
    copies = sorted([results[1], results[2]], key=lambda r: not r[1])
    assert copies[0][1] and copies[1] == (copies[0][0], False)
    assert results[3][1]
    assert calls(rt) == 3


def test_a_statement_that_fails_leaves_the_batch_to_a_transaction(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)

    def broken(_connection: Any, _items: list[Any]) -> list[Any]:
        raise RuntimeError("the statement failed")

    results = queue_behind_the_writer(rt, [(acme, missed(n)) for n in range(5)], broken)
    assert all(created for _, created in results) and calls(rt) == 5
    assert (rt.writer.batches, rt.writer.writes) == (2, 6)  # the held write, then one transaction


def test_the_autocommit_insert_stores_what_the_transaction_stores(runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    chicago = clock.now().astimezone(ZoneInfo("America/Chicago")) - timedelta(seconds=40)

    def event(event_id: str) -> MissedCall:
        return MissedCall("sandbox", event_id, "+14155550123", BUSINESS, CallOutcome.BUSY, chicago,
                          caller_raw="(415) 555-0123", ring_seconds=12.5, voicemail=True,
                          attestation="TN-Validation-Passed-A")

    with rt.db.engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        [(fast_id, created)] = insert_new_missed_calls(autocommit, [(acme, event("CA-fast"))])
        autocommit.commit()
    assert created
    with rt.db.session() as s:
        [(slow_id, _)] = record_missed_calls(s, [(acme, event("CA-slow"))])
    with rt.db.session() as s:
        fast, slow = s.get(Call, fast_id), s.get(Call, slow_id)
        assert fast is not None and slow is not None
        own = ("id", "event_id", "created_at", "updated_at")  # the times: each write's now
        columns = [c.key for c in Call.__table__.columns if c.key not in own]
        assert {c: getattr(fast, c) for c in columns} == {c: getattr(slow, c) for c in columns}
        assert fast.occurred_at == chicago and fast.occurred_at.utcoffset() == timedelta(0)
        assert fast.created_at.utcoffset() == timedelta(0)
        assert abs(fast.created_at - slow.created_at) < timedelta(seconds=1)
        assert (fast.ring_seconds, fast.voicemail) == (12.5, True)


def test_the_autocommit_connection_dropped_by_the_server_is_replaced(
        pg_runtime: Runtime) -> None:
    rt, acme = pg_runtime, account(pg_runtime)
    queue_behind_the_writer(rt, [(acme, missed(n)) for n in range(3)])
    kept = rt.writer._autocommit  # noqa: SLF001 - the connection the statements use
    assert kept is not None
    drop_on_the_server(rt.db.engine, kept)
    # The statement fails on the dropped connection and the batch is written in a
    # transaction; the next batch's statement runs on a new connection.
    assert all(created for _, created in
               queue_behind_the_writer(rt, [(acme, missed(n)) for n in range(3, 6)]))
    assert kept.invalidated
    sent: list[int] = []

    def statement(connection: Any, items: list[Any]) -> list[Any]:
        results = insert_new_missed_calls(connection, items)
        sent.append(sum(r is not None for r in results))
        return results

    assert all(created for _, created in queue_behind_the_writer(
        rt, [(acme, missed(n)) for n in range(6, 9)], statement))
    assert sent == [3] and rt.writer._autocommit is not kept  # noqa: SLF001
    assert calls(rt) == 9


def test_calls_already_there_are_read_back_together_and_their_gaps_filled(
        runtime_on: Runtime) -> None:
    rt, acme = runtime_on, account(runtime_on)
    first = [missed(n) for n in range(4)]
    with rt.db.session() as s:
        ids = [call_id for call_id, _ in record_missed_calls(s, [(acme, e) for e in first])]
    # The same calls reported again, now with what the first reports lacked, and a new call.
    again = [replace(e, outcome=CallOutcome.BUSY, ring_seconds=7.0, voicemail=True)
             for e in first]
    selects: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM calls" in statement:
            selects.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", seen)
    try:
        with rt.db.session() as s:
            results = record_missed_calls(s, [(acme, e) for e in [*again, missed(9)]])
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", seen)
    assert results[:4] == [(i, False) for i in ids] and results[4][1]
    assert len(selects) == 1  # the four calls already there, in one read
    with rt.db.session() as s:
        for call_id in ids:
            call = s.get(Call, call_id)
            assert call is not None
            # Gaps only: the outcome was known and stays; ring time and voicemail were not.
            assert (call.outcome, call.ring_seconds, call.voicemail) == ("no-answer", 7.0, True)
