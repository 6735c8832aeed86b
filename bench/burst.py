"""A burst: 1,000 missed calls in 60 s against a HubSpot that enforces its rate limit.

What it does: posts ``--calls`` signed Twilio missed-call callbacks from distinct callers, evenly
over ``--seconds``, to one account whose HubSpot stub answers each request after
``--hubspot-latency`` seconds and enforces HubSpot's limits (100 requests per rolling 10 s, 5
searches per second; 429 beyond them). Then it waits for every call's CRM records.

What it prints, per setup (``--setup``: ``sqlite``, the default, where ``textback serve`` starts
its job process; ``postgres``, PostgreSQL + Redis with ``--workers`` worker processes):

- texts: callers texted, and texted more than once (must be all, and none);
- text-back latency p50 / p90 / p99 / max, from just before the webhook POST to the text's
  arrival at the stub carrier (target: p99 < 1 s);
- HubSpot records made (contacts, calls, SMS, tasks, deals: each must be ``--calls``), the 429s
  HubSpot answered (must be 0), and the CRM drain: from the first call to the last CRM request,
  against the minimum the limits allow (the requests it needed / 10 per second, or the searches
  / 5 per second, whichever is longer; target: at most 1.2 times that);
- resident memory of each textback process, idle before the burst and at its end.

Run: ``.venv/bin/python bench/burst.py [--calls 1000] [--seconds 60] [--setup both]``
(``--calls 100 --seconds 6`` is the quick form ``make bench`` runs).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from _common import (
    BIN,
    HUBSPOT_RATE_LIMIT,
    HUBSPOT_SEARCH_LIMIT,
    Stubs,
    account_document,
    callers,
    command_name,
    enter_setup,
    free_port,
    percentile,
    prepare_textback,
    print_table,
    process_tree,
    rss_mib,
    run,
    start_serve,
    start_stubs,
    take_callers,
    textback_env,
)
from text_latency import TASK_ROUTE, Poster, send_at_rate

SETUPS = {"sqlite": "SQLite (default)", "postgres": "PostgreSQL + Redis"}
#: What each missed call makes in HubSpot, by the stub's object type.
RECORDS = {"contacts": "contacts", "calls": "calls", "communications": "SMS", "tasks": "tasks",
           "deals": "deals"}


@dataclass
class Outcome:
    """What one setup produced."""

    setup: str
    calls: int
    non_2xx: int = 0
    texted: int = 0
    texted_twice: int = 0
    latencies: list[float] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    distinct_contacts: int = 0
    throttled: int = 0
    requests: int = 0
    searches: int = 0
    drain: float = 0.0
    synced: int = 0
    memory: list[tuple[str, float | None, float | None]] = field(default_factory=list)

    @property
    def minimum(self) -> float:
        """The shortest drain HubSpot's limits allow for the requests this burst needed."""
        most, window = HUBSPOT_RATE_LIMIT
        searches, search_window = HUBSPOT_SEARCH_LIMIT
        return max((self.requests - self.searches) * window / most,
                   self.searches * search_window / searches)


def synced(stubs: Stubs) -> int:
    """Calls whose CRM sync finished (the task is its last step)."""
    return sum(1 for c in stubs.hubspot() if c.route == TASK_ROUTE)


def memory(pids: Sequence[int]) -> dict[int, tuple[str, float | None]]:
    """Each process's name and resident MiB."""
    return {pid: (command_name(pid), rss_mib(pid)) for pid in pids}


def run_setup(setup: str, args: argparse.Namespace, numbers: Iterator[str]) -> Outcome:
    """Start everything for one setup, send the burst, wait for the CRM, collect the figures."""
    outcome = Outcome(SETUPS[setup], args.calls)
    with ExitStack() as stack:
        database_url, queue_url, tmp, procs = enter_setup(stack, setup)
        stubs = start_stubs(procs, hubspot_latency=args.hubspot_latency, hubspot_limits=True,
                            log_path=tmp / "stubs.log")
        port = free_port()
        env = textback_env(tmp, port, queue_url=queue_url, database_url=database_url)
        prepare_textback(tmp, env, [account_document(stubs.carrier_url, stubs.hubspot_url)])
        serve = start_serve(procs, tmp, env, port)
        roots = [serve.pid]
        if queue_url:
            for n in range(1, args.workers + 1):
                roots.append(procs.start(f"textback worker {n}", [str(BIN / "textback"), "worker"],
                                         env=env, log_path=tmp / f"worker-{n}.log").pid)
        poster = Poster(port)

        warm = take_callers(numbers, args.warmup)
        send_at_rate(poster, warm, 5.0)
        deadline = time.monotonic() + 120
        while synced(stubs) < len(warm) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # idle
        pids = [pid for root in roots for pid in process_tree(root)]
        idle = memory(pids)
        before = stubs.hubspot_summary()
        requests_before = len(stubs.hubspot())

        measured = take_callers(numbers, args.calls)
        sent_at, outcome.non_2xx = send_at_rate(poster, measured, args.calls / args.seconds)
        first = min(sent_at.values())
        wanted = set(measured)
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            if synced(stubs) >= len(warm) + args.calls:
                break
            time.sleep(1.0)
        time.sleep(2)  # anything still on its way
        end = memory(pids)

        texts = Counter(s.to for s in stubs.sms() if s.to in wanted)
        arrivals: dict[str, float] = {}
        for sms in stubs.sms():
            if sms.to in wanted and sms.to not in arrivals:
                arrivals[sms.to] = sms.at
        outcome.texted = len(texts)
        outcome.texted_twice = sum(1 for n in texts.values() if n > 1)
        outcome.latencies = [arrivals[n] - sent_at[n] for n in measured if n in arrivals]
        after = stubs.hubspot_summary()
        outcome.records = {t: after["records"][t] - before["records"][t] for t in RECORDS}
        outcome.distinct_contacts = (after["distinct_contact_phones"]
                                     - before["distinct_contact_phones"])
        outcome.throttled = after["throttled"] - before["throttled"]
        log = stubs.hubspot()[requests_before:]
        outcome.requests = len(log) - outcome.throttled
        outcome.searches = sum(1 for c in log if c.route.endswith("/search"))
        outcome.drain = max((c.at for c in log), default=first) - first
        outcome.synced = synced(stubs) - len(warm)
        outcome.memory = [(name, rss, end.get(pid, ("", None))[1])
                          for pid, (name, rss) in idle.items()]
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    """Run the burst on each setup and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="missed calls in the burst")
    parser.add_argument("--seconds", type=float, default=60.0, help="over this many seconds")
    parser.add_argument("--hubspot-latency", type=float, default=0.3,
                        help="seconds before each HubSpot answer")
    parser.add_argument("--setup", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2,
                        help="textback worker processes on PostgreSQL + Redis")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured calls first")
    parser.add_argument("--drain-timeout", type=float, default=1800.0,
                        help="seconds to wait for the CRM after the burst")
    args = parser.parse_args(argv)

    numbers = callers()
    setups = ("sqlite", "postgres") if args.setup == "both" else (args.setup,)
    print(f"{args.calls} missed calls from distinct callers over {args.seconds:g} s; HubSpot stub "
          f"answers after {args.hubspot_latency:g} s and allows {HUBSPOT_RATE_LIMIT[0]} requests "
          f"per {HUBSPOT_RATE_LIMIT[1]:g} s, {HUBSPOT_SEARCH_LIMIT[0]} searches per second")
    outcomes = [run_setup(setup, args, numbers) for setup in setups]

    print()
    print_table(
        ["setup", "texted", "twice", "non-2xx", "p50 ms", "p90 ms", "p99 ms", "max ms",
         "p99 < 1 s"],
        [[o.setup, f"{o.texted}/{o.calls}", o.texted_twice, o.non_2xx,
          *(f"{percentile(o.latencies, q) * 1000:.0f}" for q in (50, 90, 99)),
          f"{max(o.latencies, default=float('nan')) * 1000:.0f}",
          "met" if o.texted == o.calls and percentile(o.latencies, 99) < 1 else "MISSED"]
         for o in outcomes])
    print()
    print_table(
        ["setup", *RECORDS.values(), "distinct contacts", "429s", "requests", "searches",
         "drain s", "minimum s", "drain / minimum"],
        [[o.setup, *(o.records[t] for t in RECORDS), o.distinct_contacts, o.throttled,
          o.requests, o.searches, f"{o.drain:.0f}", f"{o.minimum:.0f}",
          f"{o.drain / o.minimum:.2f}" if o.minimum else "-"]
         for o in outcomes])
    for o in outcomes:
        once = all(n == o.calls for n in o.records.values()) and o.distinct_contacts == o.calls
        ratio = o.drain / o.minimum if o.minimum else float("inf")
        print(f"{o.setup}: records made once {'met' if once else 'MISSED'}; 0 429s "
              f"{'met' if o.throttled == 0 else 'MISSED'}; drain <= 1.2 x minimum "
              f"{'met' if ratio <= 1.2 else 'MISSED'} ({o.synced}/{o.calls} calls synced)")
    print()
    print_table(["setup", "process", "idle MiB", "end MiB"],
                [[o.setup, name, f"{idle:.0f}" if idle else "-", f"{end:.0f}" if end else "-"]
                 for o in outcomes for name, idle, end in o.memory])
    return 0


if __name__ == "__main__":
    run(main)
