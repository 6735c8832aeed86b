"""The fault suite's short form in the normal test run: never twice, never lost.

50 missed calls from distinct callers, each webhook delivered three times shuffled, against
``textback serve`` and two ``textback worker`` processes on PostgreSQL and Redis, while the
workers are killed with SIGKILL and restarted four times, the carrier drops some sends before and
after accepting them and is down for a while, and HubSpot answers 503 and hangs for a while. Then
every call must settle, be texted exactly once, and leave exactly one of each CRM record.

It takes about two and a half minutes (the sweeper's one-minute tick and the two-minute lease a
killed worker leaves behind set the pace). Skipped only when PostgreSQL or Redis cannot be reached.
The long form: ``make faults`` (``python -m tests.faults --cycles 50``).
"""

from __future__ import annotations

import pytest

from tests.conftest import REDIS_URL as SUITE_REDIS_URL
from tests.conftest import _pg_reachable, _redis_reachable
from tests.faults.harness import run, short_config
from tests.faults.summary import print_report

#: The test run's Redis database on the suite's Redis server (the long form uses 9); 7, 6, 5 when
#: a concurrent run holds it.
REDIS_URL = SUITE_REDIS_URL.rsplit("/", 1)[0] + "/8"
REDIS_FALLBACKS = (7, 6, 5)


def test_missed_calls_are_texted_once_and_filed_once_despite_faults() -> None:
    unreachable = _pg_reachable() or _redis_reachable()
    if unreachable:
        pytest.skip(f"the fault suite needs PostgreSQL and Redis: {unreachable}")
    progress: list[str] = []
    report = run(short_config(redis_url=REDIS_URL, redis_fallbacks=REDIS_FALLBACKS),
                 progress=progress.append)
    lines: list[str] = []
    print_report(report, lines.append)
    print("\n".join(progress + lines))  # shown with -s, or under the failure
    assert not report.failures, "\n".join(lines)
