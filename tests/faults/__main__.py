"""``python -m tests.faults``: the fault suite's long form (or, with ``--short``, the short form).

Prints a table of counts and of checks; exits 1 when a check failed, 2 when PostgreSQL or Redis
cannot be reached, 130 on Ctrl-C (after stopping every process it started).

Run: ``.venv/bin/python -m tests.faults [--cycles 50] [--calls 300] [--rate 8] [--seed N]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.faults.harness import long_config, run, short_config
from tests.faults.summary import print_report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--short", action="store_true", help="the short form (as in the test run)")
    parser.add_argument("--cycles", type=int, help="worker kill -9 cycles (long form: 50)")
    parser.add_argument("--calls", type=int, help="distinct missed calls (long form: 300)")
    parser.add_argument("--rate", type=float, help="webhook deliveries per second (long form: 8)")
    parser.add_argument("--copies", type=int, help="deliveries of each webhook (3)")
    parser.add_argument("--seed", type=int, help="seed of the calls, their order and the faults")
    parser.add_argument("--settle-timeout", type=float, help="seconds to wait for the calls to settle")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9",
                        help="the Redis database of the run (flushed at start and end)")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="write the processes' logs (and faults.log, the fault timeline) to DIR "
                             "and keep them")
    parser.add_argument("--keep-schema", action="store_true",
                        help="leave the run's PostgreSQL schema in place (its name is printed)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite once and print its report."""
    from tests.conftest import _pg_reachable, _redis_reachable

    args = parse_args(argv)
    unreachable = _pg_reachable() or _redis_reachable()
    if unreachable:
        print(f"cannot run the fault suite: {unreachable}", file=sys.stderr)
        return 2
    overrides = {
        name: value for name, value in {
            "cycles": args.cycles, "calls": args.calls, "rate": args.rate, "copies": args.copies,
            "seed": args.seed, "settle_timeout": args.settle_timeout,
        }.items() if value is not None
    }
    overrides.update(redis_url=args.redis_url, keep_dir=args.keep_logs,
                     keep_schema=args.keep_schema)
    config = short_config(**overrides) if args.short else long_config(**overrides)
    try:
        report = run(config)
    except KeyboardInterrupt:
        print("\ninterrupted: every process the suite started has been stopped", file=sys.stderr)
        return 130
    print_report(report)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
