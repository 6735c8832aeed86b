"""Taking work off a queue in batches: what one worker thread finds waiting at a moment."""

from __future__ import annotations

import queue
from typing import TypeVar

T = TypeVar("T")


def take_batch(pending: queue.SimpleQueue[T | None], limit: int) -> tuple[list[T], bool]:
    """Wait for the first item of ``pending``, then take what else is waiting, up to ``limit``.

    Returns the items and whether the ``None`` that asks the thread to stop was met (the items
    taken before it are still to be done).
    """
    first = pending.get()
    if first is None:
        return [], True
    batch = [first]
    while len(batch) < limit:
        try:
            item = pending.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return batch, True
        batch.append(item)
    return batch, False
