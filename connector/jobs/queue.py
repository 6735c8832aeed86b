"""Huey: SQLite storage consumed by threads inside ``textback serve`` by default, Redis storage
consumed by ``textback worker`` processes on any number of machines when configured.

The queue only wakes workers; the database is the source of truth and a periodic sweeper
re-enqueues anything left unfinished.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from connector.jobs.batched_enqueues import BatchedRedisStorage, BatchedSqliteStorage
from connector.settings.config import Settings
from connector.storage.sqlite_lock import connection_factory

log = logging.getLogger(__name__)

#: Idle polling of the SQLite queue: start at 50 ms and never sleep longer than 100 ms, so an idle
#: worker picks up a new job well within 250 ms. Redis dequeues block, so they wake at once.
POLL_INITIAL_DELAY = 0.05
POLL_MAX_DELAY = 0.1

#: Job priorities: texts first, so CRM latency never delays a text-back.
PRIORITY_TEXT = 100
PRIORITY_CRM = 10


#: The two lanes of work. Texts (text-backs, replies, alerts, escalations) have threads of their
#: own, so a slow CRM can never hold up a text: with one pool, every thread could be waiting on
#: the CRM while a text sits in the queue.
LANES = ("texts", "crm")

#: Waits between attempts while the Redis queue cannot be reached: doubling up to a cap.
OUTAGE_FIRST_WAIT = 1.0
OUTAGE_MAX_WAIT = 30.0
#: How long start-up waits for Redis to answer before giving up with one line.
REDIS_CHECK_TIMEOUT = 3.0

#: What redis-py raises when the server cannot be reached (refused, reset, timed out).
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def check_redis(url: str) -> str | None:
    """None when the Redis at ``url`` answers a PING, else why not, in a few words."""
    client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_CHECK_TIMEOUT,
                                  socket_timeout=REDIS_CHECK_TIMEOUT)
    try:
        client.ping()
    except UNREACHABLE as exc:
        reason = str(exc).rstrip(".") or type(exc).__name__
        return reason.split(". ")[-1] if ". " in reason else reason
    except redis.exceptions.RedisError as exc:  # answered, but refused us (AUTH, ...)
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def where(url: str) -> str:
    """``host:port/db`` of a Redis URL: enough to find it, without its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"


class QueueOutage:
    """Whether a lane's queue is reachable, shared by its consumer threads.

    The first failure of an outage logs one warning (no traceback); every thread then waits,
    doubling from :data:`OUTAGE_FIRST_WAIT` to :data:`OUTAGE_MAX_WAIT` seconds between
    attempts; the first success logs that the queue is back.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._wait = 0.0
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        """True during an outage."""
        return self._down_since is not None

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; the seconds to wait before the next one."""
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
                self._wait = OUTAGE_FIRST_WAIT
                log.warning("queue %s unreachable (%s); retrying quietly, up to every %.0f s",
                            self.name, type(exc).__name__, OUTAGE_MAX_WAIT)
            else:
                self._wait = min(self._wait * 2, OUTAGE_MAX_WAIT)
            return self._wait

    def succeeded(self) -> None:
        """Record a successful attempt, ending any outage."""
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                log.warning("queue %s reachable again after %.0f s", self.name,
                            time.monotonic() - self._down_since)
                self._down_since = None


class GuardedRedisHuey(PriorityRedisHuey):
    """The Redis queue, read by consumers that wait out an outage quietly.

    huey's consumer logs a traceback for every failed read and, as Redis reads block, retries at
    once; here a failed read or schedule check records the outage and sleeps instead, and the
    periodic sweep is not enqueued while the queue is down. Enqueues from webhooks still raise,
    so the caller knows (the sweeper re-enqueues what they stored). A batch of enqueues is one
    ``ZADD`` (:mod:`connector.jobs.batched_enqueues`).
    """

    storage_class = BatchedRedisStorage

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = QueueOutage(self.name)

    def dequeue(self) -> Any:
        """The next task, or None (after a wait) while Redis cannot be reached.

        huey's blocking read answers None both when nothing came within its read timeout and
        when Redis could not be reached; a None that comes back early is checked with a PING.
        """
        started = time.monotonic()
        try:
            task = super().dequeue()
            if task is None and time.monotonic() - started < self.storage.read_timeout / 2:
                self.storage.conn.ping()
        except UNREACHABLE as exc:
            time.sleep(self.outage.failed(exc))
            return None
        self.outage.succeeded()
        return task

    def read_schedule(self, timestamp: Any = None) -> list[Any]:
        """Scheduled tasks now due; none while Redis cannot be reached."""
        try:
            tasks = super().read_schedule(timestamp)
        except UNREACHABLE as exc:
            self.outage.failed(exc)
            return []
        self.outage.succeeded()
        return list(tasks)

    def read_periodic(self, timestamp: Any) -> list[Any]:
        """Periodic tasks now due; none during an outage (the next minute's run covers them)."""
        return [] if self.outage.down else list(super().read_periodic(timestamp))


class BatchedSqliteHuey(SqliteHuey):
    """The SQLite queue; a batch of enqueues is one transaction
    (:mod:`connector.jobs.batched_enqueues`)."""

    storage_class = BatchedSqliteStorage


def build_huey(settings: Settings, *, immediate: bool = False, name: str = "textback",
               lane: str = "texts") -> Huey:
    """The Huey instance of one lane for the configured queue URL.

    On Redis the lane is part of the key prefix; on SQLite the CRM lane has a file of its own
    next to the configured one, so the two lanes never wait on each other's file lock.
    """
    if lane not in LANES:
        raise ValueError(f"unknown queue lane {lane!r}")
    full_name = name if lane == "texts" else f"{name}-{lane}"
    if settings.queue_is_redis:
        return GuardedRedisHuey(
            full_name, url=settings.queue_url, results=False, utc=True, immediate=immediate
        )
    path = Path(settings.queue_url.removeprefix("sqlite:///"))
    if lane != "texts":
        path = path.with_name(f"{path.stem}-{lane}{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Web processes enqueue and the job process dequeues on one file: they queue in the kernel
    # for its write lock rather than sleeping in SQLite's busy handler (see sqlite_lock).
    return BatchedSqliteHuey(
        full_name, filename=str(path), results=False, utc=True, immediate=immediate, timeout=30,
        factory=connection_factory(path),
    )


class EmbeddedConsumer(Consumer):
    """A consumer that runs as threads inside another program (``textback serve``).

    It leaves signal handling to its host: the host calls :meth:`start` and, on shutdown,
    ``stop(graceful=True)``.
    """

    def _set_signal_handlers(self) -> None:  # noqa: D401 - the host owns signals
        return None


def make_consumer(huey: Huey, workers: int, *, embedded: bool) -> Consumer:
    """A thread-pool consumer polling at the latency the issue asks for."""
    cls = EmbeddedConsumer if embedded else Consumer
    return cls(
        huey,
        workers=workers,
        periodic=True,
        initial_delay=POLL_INITIAL_DELAY,
        backoff=1.15,
        max_delay=POLL_MAX_DELAY,
        worker_type="thread",
        check_worker_health=not embedded,
    )


def run_consumers(consumers: list[Consumer], *, until_stdin_closes: bool = False) -> None:
    """Run several embedded consumers in this process until SIGTERM or SIGINT (``textback
    worker``), then stop them gracefully: jobs under way finish.

    With ``until_stdin_closes`` they also stop when standard input closes: the way ``textback
    serve`` tells the job process it starts that it is going (or has died).
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if until_stdin_closes:
        def watch() -> None:
            sys.stdin.buffer.read()
            stop.set()

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    for consumer in consumers:
        consumer.start()
    log.info("consumers running: %s", ", ".join(c.huey.name for c in consumers))
    stop.wait()
    for consumer in consumers:
        consumer.stop(graceful=True)
