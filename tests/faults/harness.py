"""The fault suite: the real service under kills, dropped connections and outages, then checks.

One run:

1. a fresh PostgreSQL schema and a flushed Redis database; the stub process (stub Twilio API with
   faults, HubSpot stub); ``textback db upgrade`` and ``textback accounts import`` of a Twilio +
   HubSpot account pointed at the stubs; ``textback serve`` and the ``textback worker`` processes;
2. every missed call (distinct callers) delivered ``copies`` times, shuffled, at ``rate`` per
   second, while the fault thread kills workers with SIGKILL and restarts them, the carrier drops
   some sends before and some after accepting them and is down for a while, and the CRM answers
   503 or hangs past the client's timeout for a while;
3. faults off, every worker running: wait (time-boxed) until every call is settled;
4. the checks of :mod:`tests.faults.checks`, and a table of counts.

Everything started is stopped, the schema dropped and the Redis database flushed, whatever
happens (Ctrl-C included).
"""

from __future__ import annotations

import atexit
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench._common import Processes
from tests.conftest import PG_ADMIN_URL
from tests.faults.chaos import FaultLog, FaultRunner, OutageSpec, make_plan
from tests.faults.checks import CallRow, Check, CrmCounts, read_calls, run_checks, wait_until_settled
from tests.faults.service import QUICK_TIMERS, Service, known_settings, pg_schema, redis_database
from tests.faults.stubs import StubProcess
from tests.faults.traffic import DeliveryStats, Poster, deliver, delivery_plan, missed_calls

#: The PostgreSQL test database (``TEXTBACK_TEST_PG_URL``), as the test suite uses it.
PG_URL = PG_ADMIN_URL


@dataclass(frozen=True)
class FaultConfig:
    """One run's size, faults and limits."""

    calls: int = 50
    copies: int = 3
    rate: float = 10.0  # webhook deliveries per second
    cycles: int = 4  # kill -9 cycles of the workers
    workers: int = 2
    drop_before: float = 0.08  # share of text sends dropped before the carrier accepts them
    drop_after: float = 0.08  # ... and after it accepted them
    carrier_outage: OutageSpec = OutageSpec(1, 6.0)
    crm_outage: OutageSpec = OutageSpec(1, 6.0)
    crm_hang: OutageSpec = OutageSpec(1, 2.0, hang=16.0)  # > HubSpot's 15 s read timeout
    settle_timeout: float = 300.0
    #: The callbacks' ``StirVerstat``: what Twilio sends for a verified caller (22 characters,
    #: once too long for ``calls.attestation`` on PostgreSQL).
    stir_verstat: str | None = "TN-Validation-Passed-A"
    seed: int = 20260615
    pg_url: str = PG_URL
    redis_url: str = "redis://127.0.0.1:6379/9"
    redis_fallbacks: tuple[int, ...] = (10, 11, 12)  # databases to use when that one is taken
    keep_dir: Path | None = None  # keep the logs here (default: a temporary directory)
    keep_schema: bool = False  # leave the run's schema in place (for textback explain)

    @property
    def fault_window(self) -> float:
        """Seconds over which the faults are spread: the deliveries, and a fifth more."""
        return max(self.calls * self.copies / self.rate * 1.2, self.cycles * 1.5)


def short_config(**overrides: object) -> FaultConfig:
    """The short form (part of the normal test run): 50 calls, 4 kill cycles, one of each outage."""
    return replace(FaultConfig(), **overrides)  # type: ignore[arg-type]


def long_config(**overrides: object) -> FaultConfig:
    """The long form: 300 calls, 50 kill cycles, three carrier and CRM outages, two CRM hangs."""
    base = FaultConfig(
        calls=300, rate=8.0, cycles=50, carrier_outage=OutageSpec(3, 10.0),
        crm_outage=OutageSpec(3, 10.0), crm_hang=OutageSpec(2, 3.0, hang=16.0),
        settle_timeout=600.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass
class Report:
    """Everything a run found: the checks and the figures behind them."""

    config: FaultConfig
    checks: list[Check] = field(default_factory=list)
    deliveries: DeliveryStats = field(default_factory=DeliveryStats)
    faults: FaultLog = field(default_factory=FaultLog)
    rows: list[CallRow] = field(default_factory=list)
    sends: list[str] = field(default_factory=list)
    carrier_tally: dict[str, int] = field(default_factory=dict)
    crm: CrmCounts = field(default_factory=CrmCounts)
    crm_requests: int = 0
    settled: bool = False
    settle_seconds: float = 0.0
    total_seconds: float = 0.0
    quick_timers: list[str] = field(default_factory=list)
    log_dir: str = ""
    schema: str = ""

    @property
    def failures(self) -> list[Check]:
        """The checks that did not pass."""
        return [c for c in self.checks if not c.passed]

    def state_counts(self) -> Counter[str]:
        """Calls per final text state."""
        return Counter(r.state for r in self.rows)

    def crm_state_counts(self) -> Counter[str]:
        """Calls per CRM state."""
        return Counter(r.crm_state for r in self.rows)


def run(config: FaultConfig, progress: Callable[[str], None] = print) -> Report:
    """One run of the suite (see the module docstring); the report says what passed."""
    report = Report(config, quick_timers=sorted(set(QUICK_TIMERS) & known_settings()))
    started = time.monotonic()
    rng = random.Random(config.seed)
    calls = missed_calls(config.calls, rng, config.stir_verstat)
    plan = delivery_plan(calls, config.copies, rng)
    faults = make_plan(rng, config.fault_window, config.cycles, config.workers,
                       config.carrier_outage, config.crm_outage, config.crm_hang)
    with _run_dir(config.keep_dir) as tmp, Processes(grace=5.0) as procs, \
            pg_schema(config.pg_url, keep=config.keep_schema) as (schema, db_url), \
            redis_database(config.redis_url, config.redis_fallbacks) as redis_url:
        report.log_dir, report.schema = str(tmp), schema
        service = Service(procs, tmp, db_url, redis_url, config.workers)
        atexit.register(service.close)
        try:
            stubs = StubProcess(procs, tmp / "stubs.log")
            service.prepare(stubs.carrier_url, stubs.hubspot_url)
            service.start()
            progress(f"service up: serve + {config.workers} workers on schema {schema}, "
                     f"Redis database {redis_url.rsplit('/', 1)[-1]}; "
                     f"{len(calls)} calls x {config.copies} deliveries at {config.rate:g}/s, "
                     f"{config.cycles} kill cycles over {faults.window:.0f} s")
            stubs.command("drops", before=config.drop_before, after=config.drop_after,
                          seed=config.seed)
            runner = FaultRunner(faults, service, stubs)
            runner.start()
            try:
                report.deliveries = deliver(Poster(service.port, service.public_url), plan,
                                            config.rate)
                runner.join()
            finally:
                runner.stop()
                runner.join()
            report.faults = runner.log
            (tmp / "faults.log").write_text("".join(
                f"{at:7.1f} s  {what}\n" for at, what in runner.log.events))
            stubs.command("calm")
            service.ensure_workers()
            progress(f"faults over after {time.monotonic() - started:.0f} s "
                     f"({runner.log.kill_cycles} kill cycles); waiting for the calls to settle")
            settling = wait_until_settled(lambda: read_calls(config.pg_url, schema),
                                          config.settle_timeout, progress)
            report.settled, report.settle_seconds, report.rows = (
                settling.settled, settling.seconds, settling.rows)
            snapshot = stubs.command("snapshot")
            report.sends = list(snapshot["sends"])
            report.carrier_tally = dict(snapshot["carrier_tally"])
            report.crm_requests = int(snapshot["crm_requests"])
            from connector.kernel.phone import mask

            report.checks, report.crm = run_checks(
                [c.caller for c in calls], report.rows, report.sends, snapshot["crm"], mask)
        finally:
            service.close()
            atexit.unregister(service.close)
    report.total_seconds = time.monotonic() - started
    return report


@contextmanager
def _run_dir(keep: Path | None) -> Iterator[Path]:
    """The run's directory for logs and the account file: ``keep`` (kept), else a temporary one."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="textback-faults-") as tmp:
        yield Path(tmp)
