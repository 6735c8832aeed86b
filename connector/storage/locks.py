"""Named locks that hold across threads, processes and, on PostgreSQL, machines.

PostgreSQL: a session advisory lock (``pg_advisory_lock``) on a dedicated connection. SQLite (one
machine by nature): an exclusive ``flock`` on a lock file beside the database. Both add a thread
lock so threads of one process queue up in memory first.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

_thread_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def _thread_lock(name: str) -> threading.Lock:
    with _guard:
        return _thread_locks.setdefault(name, threading.Lock())


@contextmanager
def named_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock called ``name`` for the block."""
    with _thread_lock(name):
        if engine.dialect.name == "postgresql":
            key = int.from_bytes(hashlib.sha256(f"textback:{name}".encode()).digest()[:8], "big",
                                 signed=True)
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        else:
            path = Path(engine.url.database or "var/textback.db")
            digest = hashlib.sha256(name.encode()).hexdigest()[:16]
            locks = path.with_name(f"{path.name}.locks")
            locks.mkdir(exist_ok=True)
            with open(locks / digest, "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
