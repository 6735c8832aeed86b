"""The accounts the webhook path reads, kept for a short while and read again by one thread.

Every webhook names its account, so every request would read it. A read account is kept for
``max_age`` seconds instead, which bounds how long an import or a change takes to be seen.

When a kept account grows too old, the first request to notice reads it again, and the others
go on with the one they have until that read is done (a few milliseconds). Without that, every
request arriving during the read would read it too: under load, ten threads of a process read
the same row at the same moment every ``max_age`` seconds, and every answer of that moment waits
for them. The first read of an account has nothing to go on with, so the requests that come
meanwhile wait for it, and get what it got: the account, or its error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from connector.storage.models import Account

#: How many ids are kept before those past their age are dropped.
MAX_KEPT = 1024


@dataclass(frozen=True)
class _Kept:
    """An account as read (None: no such account) and when the read began."""

    account: Account | None
    read_at: float


class AccountCache:
    """Accounts by id, each read with ``read`` and kept for ``max_age`` seconds.

    ``monotonic`` is the clock the ages are measured on (the tests pass their own).
    """

    def __init__(self, read: Callable[[str], Account | None], *, max_age: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self.max_age = max_age
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}
        #: The accounts being read now, each with the read's outcome once it ends.
        self._reading: dict[str, Future[Account | None]] = {}

    def get(self, account_id: str) -> Account | None:
        """The account (None when there is none), read at most ``max_age`` seconds ago, or
        a moment more while another thread reads it again. Raises what the read raised."""
        now = self._monotonic()
        with self._lock:
            kept = self._kept.get(account_id)
            if kept is not None and now - kept.read_at < self.max_age:
                return kept.account
            reading = self._reading.get(account_id)
            if reading is None:
                reading = self._reading[account_id] = Future()
                mine = True
            else:
                mine = False
        if not mine:
            # Another thread is reading it: go on with the one kept, or wait for the first.
            return kept.account if kept is not None else reading.result()
        try:
            account = self._read(account_id)
        except BaseException as exc:
            with self._lock:
                del self._reading[account_id]
            reading.set_exception(exc)
            raise
        with self._lock:
            del self._reading[account_id]
            if len(self._kept) >= MAX_KEPT:
                self._forget_older_than(now - self.max_age)
            self._kept[account_id] = _Kept(account, now)
        reading.set_result(account)
        return account

    def _forget_older_than(self, moment: float) -> None:
        """Drop what was read before ``moment`` (under the lock): ids that name no account are
        kept too, and a stranger can make up any number of them."""
        for account_id in [k for k, kept in self._kept.items() if kept.read_at < moment]:
            del self._kept[account_id]
