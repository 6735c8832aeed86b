"""The faults: a seeded plan of worker kills (kill -9, then a restart) and of carrier and CRM
outages over the fault window, and the thread that carries it out."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from tests.faults.service import Service
from tests.faults.stubs import StubProcess


@dataclass(frozen=True)
class Kill:
    """kill -9 of ``workers`` at ``at`` s into the window, restarted ``down`` s later."""

    at: float
    workers: tuple[int, ...]
    down: float


@dataclass(frozen=True)
class Outage:
    """An outage of the ``carrier`` or the ``crm`` from ``at`` s, ``seconds`` long.

    ``hang`` > 0 (CRM only): requests are held that long before the 503, past the client's
    read timeout.
    """

    at: float
    target: str
    seconds: float
    hang: float = 0.0


@dataclass(frozen=True)
class FaultPlan:
    """Everything that goes wrong, in seconds from the start of the fault window."""

    window: float
    kills: tuple[Kill, ...]
    outages: tuple[Outage, ...]


@dataclass(frozen=True)
class OutageSpec:
    """How many outages of one kind, and how long each."""

    count: int
    seconds: float
    hang: float = 0.0


def make_plan(rng: random.Random, window: float, cycles: int, workers: int,
              carrier: OutageSpec, crm: OutageSpec, crm_hang: OutageSpec) -> FaultPlan:
    """Kill cycles spread evenly (with jitter) over ``window``; outages at random moments.

    One kill in four takes every worker down at once; a killed worker is back before the next
    kill, so every cycle kills a running process.
    """
    times = [window * (i + rng.uniform(0.15, 0.85)) / cycles for i in range(cycles)]
    kills = []
    for i, at in enumerate(times):
        gap = (times[i + 1] if i + 1 < len(times) else window + 5.0) - at
        victims = tuple(range(workers)) if rng.random() < 0.25 else (rng.randrange(workers),)
        kills.append(Kill(at, victims, rng.uniform(0.1, max(0.15, min(1.5, 0.6 * gap)))))
    outages = [
        Outage(rng.uniform(0.05, 0.75) * window, target, spec.seconds, spec.hang)
        for target, spec in (("carrier", carrier), ("crm", crm), ("crm", crm_hang))
        for _ in range(spec.count)
    ]
    return FaultPlan(window, tuple(kills), tuple(sorted(outages, key=lambda o: o.at)))


@dataclass
class FaultLog:
    """What the fault thread did."""

    kill_cycles: int = 0
    processes_killed: int = 0
    carrier_outages: int = 0
    crm_outages: int = 0
    crm_hangs: int = 0
    errors: list[str] = field(default_factory=list)
    #: (seconds into the window, what happened), for the run's ``faults.log``.
    events: list[tuple[float, str]] = field(default_factory=list)


class FaultRunner(threading.Thread):
    """Carries out a :class:`FaultPlan` against the service and the stubs; ``stop`` ends it early.

    At the end (or when stopped) every worker is running again.
    """

    def __init__(self, plan: FaultPlan, service: Service, stubs: StubProcess) -> None:
        super().__init__(name="faults", daemon=True)
        self.plan = plan
        self.service = service
        self.stubs = stubs
        self.log = FaultLog()
        self.stop_event = threading.Event()
        self._start = time.monotonic()

    def stop(self) -> None:
        """Ask the thread to finish now (workers are still restarted)."""
        self.stop_event.set()

    def _events(self) -> list[tuple[float, Callable[[], None]]]:
        events: list[tuple[float, Callable[[], None]]] = []
        for kill in self.plan.kills:
            events.append((kill.at, partial(self._kill, kill)))
            for index in kill.workers:
                events.append((kill.at + kill.down, partial(self.service.restart_worker, index)))
        for outage in self.plan.outages:
            events.append((outage.at, partial(self._outage, outage)))
        return sorted(events, key=lambda e: e[0])

    def _kill(self, kill: Kill) -> None:
        before = self.service.kills
        for index in kill.workers:
            self.service.kill_worker(index)
        self.log.processes_killed += self.service.kills - before
        self.log.kill_cycles += 1
        self._note(f"kill -9 worker {', '.join(str(i + 1) for i in kill.workers)}, "
                   f"back in {kill.down:.1f} s")

    def _note(self, what: str) -> None:
        # The machine's real clock (a test's frozen clock does not reach it), as the services'
        # logs print it.
        wall = datetime.fromtimestamp(time.clock_gettime(time.CLOCK_REALTIME))
        self.log.events.append((time.monotonic() - self._start,
                                f"{wall:%Y-%m-%d %H:%M:%S,%f}"[:-3] + f" {what}"))

    def _outage(self, outage: Outage) -> None:
        if outage.target == "carrier":
            self.stubs.command("carrier_outage", seconds=outage.seconds)
            self.log.carrier_outages += 1
            self._note(f"carrier outage {outage.seconds:g} s")
        else:
            self.stubs.command("crm_outage", seconds=outage.seconds, hang=outage.hang)
            if outage.hang > 0:
                self.log.crm_hangs += 1
            else:
                self.log.crm_outages += 1
            self._note(f"CRM outage {outage.seconds:g} s" + (f", held {outage.hang:g} s"
                                                               if outage.hang else ""))

    def run(self) -> None:
        self._start = start = time.monotonic()
        try:
            for at, action in self._events():
                if self.stop_event.wait(max(0.0, start + at - time.monotonic())):
                    break
                try:
                    action()
                except Exception as exc:  # noqa: BLE001 - recorded, reported, never silent
                    self.log.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.service.ensure_workers()
