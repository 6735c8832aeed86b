"""Huey: SQLite storage consumed by threads inside ``textback serve`` by default, Redis storage
consumed by ``textback worker`` processes on any number of machines when configured.

The queue only wakes workers; the database is the source of truth and a periodic sweeper
re-enqueues anything left unfinished.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from connector.settings.config import Settings

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
        return PriorityRedisHuey(
            full_name, url=settings.queue_url, results=False, utc=True, immediate=immediate
        )
    path = Path(settings.queue_url.removeprefix("sqlite:///"))
    if lane != "texts":
        path = path.with_name(f"{path.stem}-{lane}{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        full_name, filename=str(path), results=False, utc=True, immediate=immediate, timeout=30
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


def run_consumers(consumers: list[Consumer]) -> None:
    """Run several embedded consumers in this process until SIGTERM or SIGINT (``textback
    worker``), then stop them gracefully: jobs under way finish."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    for consumer in consumers:
        consumer.start()
    log.info("consumers running: %s", ", ".join(c.huey.name for c in consumers))
    stop.wait()
    for consumer in consumers:
        consumer.stop(graceful=True)
