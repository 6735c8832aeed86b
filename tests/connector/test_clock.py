"""The program's one clock: frozen by the suite, or replaced for a block with ``clock.use``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from connector.kernel import clock


def test_a_clock_of_ones_own_for_a_block() -> None:
    fixed = datetime(2030, 1, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    before = clock.now()
    with clock.use(lambda: fixed):
        assert clock.now() == fixed and clock.now().tzinfo is UTC
        assert clock.timestamp() == fixed.timestamp()
        assert clock.today_in(ZoneInfo("America/Chicago")).isoformat() == "2030-01-01"
        assert clock.today_in(ZoneInfo("Pacific/Kiritimati")).isoformat() == "2030-01-02"
    assert abs((clock.now() - before).total_seconds()) < 60  # the suite's clock again


def test_a_naive_clock_is_refused() -> None:
    with clock.use(lambda: datetime(2030, 1, 1)), pytest.raises(ValueError, match="naive"):  # noqa: DTZ001
        clock.now()
