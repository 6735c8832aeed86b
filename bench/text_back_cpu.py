"""CPU time and database work per text-back job: what one text costs the worker that sends it.

What it measures: ``--calls`` missed calls from distinct new callers are stored as the webhook
stores them, then one thread runs the text-back job (``connector.jobs.text_back.send_text_back``)
for each in turn, in this process, against the stub Twilio API (line-type lookup and the text)
in a process of its own. Printed per text-back: the CPU time this process used (user + system,
all threads), the wall time (most of it the wait for the stub's two answers), the SQL statements
it sent and the transactions it committed. Jobs the text-back enqueues (the CRM sync, the owner's
alert) go to a queue nobody reads here. The first ``--warmup`` calls warm the caches and
connections and are not counted.

The CPU per text-back is what decides how many texts a worker sends a second and how much of the
machine they leave to the web processes. The statements and commits per text-back are exact; the
CPU time still moves between runs on a shared machine (by a tenth or more), so compare the
medians of several runs (``--repeat``), before and after a change, on the same machine.

Setups (``--setup``): ``sqlite``, the default database; ``postgres``, PostgreSQL (a schema of its
own, dropped after); ``both``.

Run: ``.venv/bin/python bench/text_back_cpu.py [--calls 500] [--setup both] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import (
    BUSINESS_NUMBER,
    PgSchema,
    Processes,
    account_document,
    callers,
    print_table,
    run,
    start_stubs,
    take_callers,
    textback_env,
)
from sqlalchemy import event, func, select

from connector.jobs.intake import record_missed_calls
from connector.jobs.text_back import send_text_back
from connector.kernel import clock
from connector.kernel.events import CallOutcome, MissedCall
from connector.runtime import Runtime
from connector.settings.config import load_settings
from connector.storage.accounts import import_account
from connector.storage.db import upgrade
from connector.storage.models import Account, Call
from connector.storage.states import CallState


@dataclass
class Figures:
    """One run's figures per text-back."""

    setup: str
    texted: int
    cpu_ms: float
    wall_ms: float
    statements: float
    commits: float


class Counter:
    """SQL statements and commits sent through an engine."""

    def __init__(self, engine: Any) -> None:
        self.statements = self.commits = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _commit(self, *_: Any) -> None:
        self.commits += 1


def store_calls(rt: Runtime, account_id: str, numbers: list[str], tag: str) -> list[str]:
    """The calls as the webhook stores them: state ``received``, one per caller."""
    now = clock.now()
    with rt.db.session() as session:
        account = session.get(Account, account_id)
        assert account is not None
        events = [(account, MissedCall(
            carrier="twilio", event_id=f"CA{tag}{i:08d}", caller=number, called=BUSINESS_NUMBER,
            outcome=CallOutcome.NO_ANSWER, occurred_at=now - timedelta(seconds=2),
            ring_seconds=20.0)) for i, number in enumerate(numbers)]
        return [call_id for call_id, _ in record_missed_calls(session, events)]


def measure(setup: str, database_url: str, carrier_url: str, hubspot_url: str, tmp: Path,
            calls: int, warmup: int) -> Figures:
    """Store the calls, text them one after another, return the figures per text-back."""
    settings = load_settings(textback_env(tmp, 8080, queue_url=f"sqlite:///{tmp}/queue.db",
                                          database_url=database_url))
    upgrade(settings.database_url)
    rt = Runtime(settings)
    try:
        doc = account_document(carrier_url, hubspot_url)
        with rt.db.session() as session:
            import_account(session, rt.box, doc)
        numbers = take_callers(callers(), warmup + calls)
        warm = store_calls(rt, doc["id"], numbers[:warmup], "w")
        timed = store_calls(rt, doc["id"], numbers[warmup:], "m")
        for call_id in warm:
            send_text_back(rt, call_id)
        counter = Counter(rt.db.engine)
        cpu, wall = time.process_time(), time.perf_counter()
        for call_id in timed:
            send_text_back(rt, call_id)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        with rt.db.session() as session:
            texted = session.scalar(select(func.count()).select_from(Call).where(
                Call.id.in_(timed), Call.state == CallState.TEXTED)) or 0
        return Figures(setup, texted, cpu * 1000 / calls, wall * 1000 / calls,
                       counter.statements / calls, counter.commits / calls)
    finally:
        rt.close()


def main() -> int:
    """Run each setup ``--repeat`` times and print a line per run and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="text-backs measured per run")
    parser.add_argument("--warmup", type=int, default=100, help="text-backs before measuring")
    parser.add_argument("--setup", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setup")
    args = parser.parse_args()
    setups = ("sqlite", "postgres") if args.setup == "both" else (args.setup,)
    results: list[Figures] = []
    with ExitStack() as stack:
        procs = stack.enter_context(Processes())
        stubs = start_stubs(procs)
        for setup in setups:
            for _ in range(args.repeat):
                with ExitStack() as run:
                    tmp = Path(run.enter_context(tempfile.TemporaryDirectory()))
                    url = (run.enter_context(PgSchema()) if setup == "postgres"
                           else f"sqlite:///{tmp / 'textback.db'}")
                    results.append(measure(setup, url, stubs.carrier_url, stubs.hubspot_url,
                                           tmp, args.calls, args.warmup))
    print(f"{args.calls} text-backs per run, one thread, after {args.warmup} to warm up\n")
    rows = [[r.setup, f"{r.texted}/{args.calls}", f"{r.cpu_ms:.2f}", f"{r.wall_ms:.2f}",
             f"{r.statements:.1f}", f"{r.commits:.1f}"] for r in results]
    print_table(["setup", "texted", "CPU ms", "wall ms", "statements", "commits"], rows)
    print()
    for setup in setups:
        mine = [r for r in results if r.setup == setup]
        print(f"{setup}: median CPU per text-back {statistics.median(r.cpu_ms for r in mine):.2f} ms"
              f" over {len(mine)} runs")
    return 0


if __name__ == "__main__":
    run(main)
