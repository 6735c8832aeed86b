"""Waking the workers after a webhook is answered, not before.

A webhook view commits what the provider told it, and that commit is what the answer promises.
Putting the job on the queue only wakes a worker sooner: the sweeper finds stored work that was
never queued (a crash between the commit and the enqueue) within a minute. So the views hand their
enqueues to one thread per process and answer at once; that thread puts them on the queue in the
order they came. Those it finds waiting together it runs inside one ``batch`` block, which has
the queue write them in one go (:mod:`connector.jobs.batched_enqueues`). With Huey's immediate
mode (no queue: the job runs inside the enqueue) the enqueue runs in the caller, as it would have.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from connector.kernel.batches import take_batch

log = logging.getLogger(__name__)

#: The most enqueues one batch takes; more wait for the next.
MAX_BATCH = 64


class Enqueuer:
    """Runs enqueue callables on a thread of its own, in order; started with the first.

    ``batch`` makes the block the enqueues found waiting together run in; when it raises on
    leaving (the queue refused the batch), every enqueue of it is reported as failed.
    """

    def __init__(self, *, inline: bool = False,
                 batch: Callable[[], AbstractContextManager[object]] | None = None) -> None:
        self.inline = inline
        self._batch = batch or nullcontext
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
        closing = False
        while not closing:
            waiting, closing = take_batch(self._pending, MAX_BATCH)
            if waiting:
                self._run_together(waiting)

    def _run_together(self, waiting: list[Callable[[], None]]) -> None:
        try:
            with self._batch():
                for enqueue in waiting:
                    _run(enqueue)
        except Exception:  # noqa: BLE001 - the work is stored; the sweeper will queue it
            log.exception("%d enqueues failed together; the sweeper will queue the work",
                          len(waiting))


def _run(enqueue: Callable[[], None]) -> None:
    try:
        enqueue()
    except Exception:  # noqa: BLE001 - the work is stored; the sweeper will queue it
        log.exception("enqueue failed; the sweeper will queue the work")
