"""The program's one clock.

Every reading of the current time in textback goes through :func:`now` (or :func:`timestamp`, the
same instant as seconds since the epoch), so a test, a benchmark or a replay can set the time in
one place instead of every module reading the wall clock on its own. Tests freeze it with
``time-machine``, which moves ``datetime.now`` and ``time.time`` underneath this module; code that
wants a clock of its own passes one to :func:`use`.

Dates a person types or reads (``--since``, "today", "open now") are dates in an account's zone:
:func:`today_in` gives today there, never the machine's zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, tzinfo

Source = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


_source: Source = _wall_clock


def now() -> datetime:
    """The current time, aware, in UTC."""
    current = _source()
    if current.tzinfo is None:
        raise ValueError("the clock returned a naive datetime; clocks must be aware")
    return current.astimezone(UTC)


def timestamp() -> float:
    """The current time as seconds since the epoch (for signature windows and token expiry)."""
    return now().timestamp()


def today_in(zone: tzinfo) -> date:
    """Today's date in ``zone`` (an account's zone), whatever the machine's ``TZ`` says."""
    return now().astimezone(zone).date()


@contextmanager
def use(source: Source) -> Iterator[None]:
    """Read the time from ``source`` inside the block (a replay, a demo, a benchmark's clock)."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
