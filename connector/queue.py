"""Huey: SQLite storage consumed by threads inside ``textback serve`` by default, Redis storage
consumed by ``textback worker`` processes on any number of machines when configured.

The queue only wakes workers; the database is the source of truth and a periodic sweeper
re-enqueues anything left unfinished.
"""

from __future__ import annotations

import logging
from pathlib import Path

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from connector.config import Settings

log = logging.getLogger(__name__)

#: Idle polling of the SQLite queue: start at 50 ms and never sleep longer than 100 ms, so an idle
#: worker picks up a new job well within 250 ms. Redis dequeues block, so they wake at once.
POLL_INITIAL_DELAY = 0.05
POLL_MAX_DELAY = 0.1

#: Job priorities: texts first, so CRM latency never delays a text-back.
PRIORITY_TEXT = 100
PRIORITY_CRM = 10


def build_huey(settings: Settings, *, immediate: bool = False, name: str = "textback") -> Huey:
    """The Huey instance for the configured queue URL; ``name`` prefixes its Redis keys."""
    if settings.queue_is_redis:
        return PriorityRedisHuey(
            name, url=settings.queue_url, results=False, utc=True, immediate=immediate
        )
    path = Path(settings.queue_url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        name, filename=str(path), results=False, utc=True, immediate=immediate, timeout=30
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
