"""The service under test: a fresh PostgreSQL schema, a Redis database, ``textback serve`` and
the ``textback worker`` processes, which the fault thread kills (SIGKILL) and restarts."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._common import (
    BIN,
    Processes,
    account_document,
    free_port,
    prepare_textback,
    start_serve,
    textback_env,
)

#: Settings that make the sweeper and its timers quicker, set only when this version of textback
#: has them (an unknown ``TEXTBACK_*`` setting stops textback from starting). Values in seconds.
QUICK_TIMERS: Mapping[str, str] = {
    "TEXTBACK_SWEEP_INTERVAL_SECONDS": "5",
    "TEXTBACK_STALL_AFTER_SECONDS": "5",
    "TEXTBACK_LEASE_SECONDS": "60",
    "TEXTBACK_RECONCILE_AFTER_SECONDS": "5",
}


def known_settings() -> frozenset[str]:
    """The ``TEXTBACK_*`` settings this version of textback reads."""
    from connector.settings.config import ENV_PREFIX, _EnvSchema

    return frozenset(ENV_PREFIX + name for name in _EnvSchema().fields)


def plain_pg_url(url: str) -> str:
    """An SQLAlchemy ``postgresql+psycopg://`` URL as psycopg takes it."""
    return url.replace("postgresql+psycopg", "postgresql")


@contextmanager
def pg_schema(base_url: str, *, keep: bool = False) -> Iterator[tuple[str, str]]:
    """A fresh schema in the test database: ``(schema, SQLAlchemy URL using it)``; dropped after
    unless ``keep`` (to read a run's calls afterwards, with ``textback explain``)."""
    import psycopg

    schema = "tbfault_" + uuid.uuid4().hex[:12]
    with psycopg.connect(plain_pg_url(base_url), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base_url else "?"
    try:
        yield schema, f"{base_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        if not keep:
            with psycopg.connect(plain_pg_url(base_url), autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


#: The key that marks a Redis database as taken by a fault-suite run (removed at its end).
CLAIM_KEY = "textback-faults:claimed"
#: A run that died without cleaning up frees its database after this long.
CLAIM_SECONDS = 3600


@contextmanager
def redis_database(url: str, fallbacks: Sequence[int] = ()) -> Iterator[str]:
    """A Redis database for the run, emptied at start and at end: ``url``'s, else the first of
    ``fallbacks`` (database numbers on the same server) that no other run has claimed.

    Two test runs at once (two people running the suite) each get a database of their own.
    """
    import redis

    base = url.rsplit("/", 1)[0]
    token = uuid.uuid4().hex
    for candidate in [url, *(f"{base}/{n}" for n in fallbacks)]:
        client = redis.Redis.from_url(candidate)
        if client.set(CLAIM_KEY, token, nx=True, ex=CLAIM_SECONDS):
            break
        client.close()
    else:
        raise RuntimeError(f"every Redis database tried is in use by another fault-suite run ({url})")
    _empty(client)
    try:
        yield candidate
    finally:
        _empty(client)
        if client.get(CLAIM_KEY) == token.encode():
            client.delete(CLAIM_KEY)
        client.close()


def _empty(client: Any) -> None:
    """Delete every key but the claim (a flush that keeps the database ours)."""
    for key in client.scan_iter(count=500):
        if key != CLAIM_KEY.encode():
            client.delete(key)


class Service:
    """``textback serve`` and N ``textback worker`` processes on PostgreSQL and Redis.

    Every process runs in its own process group; :meth:`kill_worker` SIGKILLs the group, and
    :meth:`close` (also reached from :class:`Processes`' exit) stops everything. Start, kill
    and close hold one lock, so a restart racing a shutdown never leaves a process behind.
    """

    def __init__(self, procs: Processes, tmp: Path, database_url: str, queue_url: str,
                 workers: int) -> None:
        self.procs = procs
        self.tmp = tmp
        self.port = free_port()
        self.env = service_env(tmp, self.port, database_url, queue_url)
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.kills = 0
        self.restarts = 0
        self._lock = threading.Lock()
        self._closed = False

    @property
    def public_url(self) -> str:
        """``TEXTBACK_PUBLIC_URL``: what the webhooks are signed against."""
        return self.env["TEXTBACK_PUBLIC_URL"]

    def prepare(self, carrier_url: str, hubspot_url: str) -> None:
        """Migrate the schema and import the Twilio + HubSpot account (``textback`` commands)."""
        prepare_textback(self.tmp, self.env, [account_document(carrier_url, hubspot_url)])

    def start(self) -> None:
        """``textback serve`` (once ``/healthz`` answers) and every worker."""
        start_serve(self.procs, self.tmp, self.env, self.port)
        for index in range(len(self.workers)):
            self.start_worker(index)

    def start_worker(self, index: int) -> None:
        """Start worker ``index`` (its log is appended to across restarts)."""
        with self._lock:
            if self._closed:
                return
            self.workers[index] = self.procs.start(
                f"textback worker {index + 1}", [str(BIN / "textback"), "worker"], env=self.env,
                log_path=self.tmp / f"worker-{index + 1}.log", append=True,
            )

    def kill_worker(self, index: int) -> None:
        """kill -9 worker ``index`` (its whole process group), if it runs."""
        with self._lock:
            proc = self.workers[index]
            if self._closed or proc is None:
                return
            self.procs.kill(proc)
            self.workers[index] = None
            self.kills += 1

    def restart_worker(self, index: int) -> None:
        """Start worker ``index`` again after a kill."""
        self.start_worker(index)
        self.restarts += 1

    def ensure_workers(self) -> None:
        """Every worker running: restart any that is missing or exited on its own."""
        for index, proc in enumerate(self.workers):
            if proc is None or proc.poll() is not None:
                self.start_worker(index)

    def close(self) -> None:
        """Refuse further starts and stop every process started here."""
        with self._lock:
            self._closed = True
            self.procs.stop_all()


def service_env(tmp: Path, port: int, database_url: str, queue_url: str) -> dict[str, str]:
    """The ``TEXTBACK_*`` environment for the service: PostgreSQL, Redis, quick timers if known."""
    env: dict[str, Any] = textback_env(tmp, port, queue_url=queue_url, database_url=database_url)
    known = known_settings()
    env.update({name: value for name, value in QUICK_TIMERS.items() if name in known})
    if "TEXTBACK_ALLOW_HTTP_LOOPBACK" not in known:
        env.pop("TEXTBACK_ALLOW_HTTP_LOOPBACK", None)  # an older textback refuses unknown ones
    return dict(env)
