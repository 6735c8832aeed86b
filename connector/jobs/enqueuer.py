"""Waking the workers after a webhook is answered, not before.

A webhook view commits what the provider told it, and that commit is what the answer promises.
Putting the job on the queue only wakes a worker sooner: the sweeper finds stored work that was
never queued (a crash between the commit and the enqueue) within a minute. So the views hand their
enqueues to one thread per process and answer at once; that thread puts them on the queue in the
order they came. With Huey's immediate mode (no queue: the job runs inside the enqueue) the
enqueue runs in the caller, as it would have.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Enqueuer:
    """Runs enqueue callables on a thread of its own, in order; started with the first."""

    def __init__(self, *, inline: bool = False) -> None:
        self.inline = inline
        self._pending: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, enqueue: Callable[[], None]) -> None:
        """Put ``enqueue`` in line (or run it now when inline or closed); never raises."""
        if not self.inline:
            with self._lock:
                if not self._closed:
                    if self._thread is None:
                        self._thread = threading.Thread(target=self._loop, name="enqueuer",
                                                        daemon=True)
                        self._thread.start()
                    self._pending.put(enqueue)
                    return
        _run(enqueue)

    def close(self) -> None:
        """Run what is in line, then stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._pending.put(None)
            thread.join()

    def _loop(self) -> None:
        while (enqueue := self._pending.get()) is not None:
            _run(enqueue)


def _run(enqueue: Callable[[], None]) -> None:
    try:
        enqueue()
    except Exception:  # noqa: BLE001 - the work is stored; the sweeper will queue it
        log.exception("enqueue failed; the sweeper will queue the work")
