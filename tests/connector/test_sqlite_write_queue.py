"""SQLite's writers queue on a lock file, across processes, instead of sleeping in SQLite's busy
handler: a writing connection holds the queue from its first write to the end of its
transaction, readers never take it, and a writer in another process is waited for."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from connector.storage.db import Database
from connector.storage.sqlite_lock import write_queue, writes

#: Long enough that a writer not made to wait would have finished (it takes well under 1 ms).
STILL_WAITING = 0.5


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT 1", False), ("  select * from calls", False), ("PRAGMA journal_mode=WAL", False),
    ("EXPLAIN QUERY PLAN SELECT 1", False), ("WITH x AS (SELECT 1) SELECT * FROM x", False),
    ("INSERT INTO t VALUES (1)", True), ("update t set a = 1", True), ("DELETE FROM t", True),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", True), ("SAVEPOINT s1", True),
    ("CREATE TABLE t (a)", True), ("SELECT updated_at FROM t", False),
])
def test_what_counts_as_a_write(sql: str, expected: bool) -> None:
    assert writes(sql) is expected


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'q.db'}")
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (a INTEGER)"))
    return database


def start_writer(db: Database, value: int) -> tuple[threading.Event, threading.Thread]:
    """A thread that inserts ``value`` in a transaction of its own; the event says it is done."""
    done = threading.Event()

    def write() -> None:
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    return done, writer


def test_a_write_waits_for_the_open_write_transaction_and_reads_do_not(db: Database) -> None:
    first = db.engine.connect()
    first.execute(text("INSERT INTO t VALUES (1)"))  # holds the queue until it commits
    done, writer = start_writer(db, 2)
    with db.engine.connect() as reader:  # a reader is not queued behind the writer
        assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0
    assert not done.wait(STILL_WAITING)
    first.commit()
    assert done.wait(30)
    writer.join()
    first.close()
    with db.engine.connect() as reader:
        assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_a_rollback_or_a_close_lets_the_next_writer_in(db: Database) -> None:
    for end in ("rollback", "close"):
        conn = db.engine.connect()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        getattr(conn, end)()
        with db.engine.begin() as other:  # would wait 30 s, then fail, if still held
            other.execute(text("INSERT INTO t VALUES (2)"))


def test_a_writer_in_another_process_is_waited_for(db: Database, tmp_path: Path) -> None:
    lock_file = write_queue(tmp_path / "q.db").lock_file
    holder = subprocess.Popen(  # noqa: S603 - our own interpreter, a fixed script
        [sys.executable, "-c",
         "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(lock_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done, writer = start_writer(db, 1)
        assert not done.wait(STILL_WAITING)
        assert holder.stdin is not None
        holder.stdin.close()  # the other process ends: its lock goes with it
        assert done.wait(30)
        writer.join()
    finally:
        holder.kill()
        holder.wait()
