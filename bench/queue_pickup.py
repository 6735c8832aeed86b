"""Queue pickup: how long an idle worker takes to start a newly enqueued job.

What it measures: the time from just before a trivial job is enqueued to the first line of that
job running, after the consumer has been idle (``--initial-idle`` seconds first, then a random
``--min-gap``..``--max-gap`` seconds before each of ``--count`` jobs), on the Huey instance
``connector.jobs.queue.build_huey`` makes and the consumer ``connector.jobs.queue.make_consumer`` makes:

- ``sqlite``: the default SQLite queue with the consumer threads running in this process, as
  ``textback serve`` runs them (``embedded=True``); timed with ``time.perf_counter()``;
- ``redis``: ``TEXTBACK_QUEUE_URL=redis://127.0.0.1:6379/14`` with the consumer in a separate
  process run as ``textback worker`` runs it (``embedded=False``, ``.run()``); the job pushes
  its start time (``time.time()``) to a Redis list. That database is flushed at start and end.

Both use ``textback``'s default worker count.

Target: within 250 ms.

Run: ``.venv/bin/python bench/queue_pickup.py [--count 50] [--queue both]``
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import Processes, percentile, print_table, run

TASK_NAME = "bench_pickup"
RESULTS_KEY = "bench:pickup:started"
TARGET = 0.25


def default_workers() -> int:
    """``textback serve``'s (and ``textback worker``'s) default ``--workers``."""
    from connector.cli import build_parser

    return int(build_parser().parse_args(["serve"]).workers)


def settings_for(tmp: Path, queue_url: str | None) -> Any:
    """Settings from an explicit ``TEXTBACK_*`` dict (the process environment is not read)."""
    from connector.settings.config import load_settings

    env = {
        "TEXTBACK_DATABASE_URL": f"sqlite:///{tmp / 'textback.db'}",
        "TEXTBACK_SECRET_KEY": secrets.token_urlsafe(48),
        "TEXTBACK_DEMO": "false",
    }
    if queue_url:
        env["TEXTBACK_QUEUE_URL"] = queue_url
    return load_settings(env)


def measure(
    enqueue: Callable[[int], float],
    wait_started: Callable[[int], float],
    args: argparse.Namespace,
) -> list[float]:
    """Warm up, stay idle, then enqueue ``args.count`` jobs after random idle gaps.

    ``enqueue(i)`` returns the time taken just before enqueueing; ``wait_started(i)`` blocks
    until job ``i`` has started and returns its start time on the same clock.
    """
    rng = random.Random(args.seed)
    enqueue(-1)  # warm-up: connections, the consumer's first polls
    wait_started(-1)
    time.sleep(args.initial_idle)
    delays = []
    for i in range(args.count):
        time.sleep(rng.uniform(args.min_gap, args.max_gap))
        before = enqueue(i)
        delays.append(wait_started(i) - before)
    return delays


def run_sqlite(args: argparse.Namespace) -> list[float]:
    """The SQLite queue, consumer threads in this process (as inside ``textback serve``)."""
    from connector.jobs.queue import build_huey, make_consumer

    started: queue.Queue[tuple[int, float]] = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="textback-bench-") as tmpdir:
        huey = build_huey(settings_for(Path(tmpdir), None))

        @huey.task(name=TASK_NAME)
        def job(i: int) -> None:
            started.put((i, time.perf_counter()))

        def enqueue(i: int) -> float:
            before = time.perf_counter()
            job(i)
            return before

        def wait_started(i: int) -> float:
            got, at = started.get(timeout=30)
            assert got == i, (got, i)
            return at

        consumer = make_consumer(huey, args.workers, embedded=True)
        consumer.start()
        try:
            return measure(enqueue, wait_started, args)
        finally:
            consumer.stop(graceful=True)


def run_redis_worker(url: str, workers: int) -> None:
    """The ``--redis-worker`` child: a Redis consumer run as ``textback worker`` runs it."""
    import redis

    from connector.jobs.queue import build_huey, make_consumer

    with tempfile.TemporaryDirectory(prefix="textback-bench-") as tmpdir:
        huey = build_huey(settings_for(Path(tmpdir), url))
        client = redis.Redis.from_url(url)

        @huey.task(name=TASK_NAME)
        def job(i: int) -> None:
            client.rpush(RESULTS_KEY, json.dumps([i, time.time()]))

        make_consumer(huey, workers, embedded=False).run()


def run_redis(args: argparse.Namespace) -> list[float]:
    """The Redis queue with a separate worker process."""
    import redis

    from connector.jobs.queue import build_huey

    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    try:
        with tempfile.TemporaryDirectory(prefix="textback-bench-") as tmpdir, Processes() as procs:
            tmp = Path(tmpdir)
            huey = build_huey(settings_for(tmp, args.redis_url))

            @huey.task(name=TASK_NAME)
            def job(i: int) -> None:  # runs in the worker process; registered here to enqueue
                raise AssertionError("not run here")

            worker = procs.start(
                "redis worker",
                [sys.executable, str(Path(__file__).resolve()), "--redis-worker", args.redis_url,
                 "--workers", str(args.workers)],
                log_path=tmp / "worker.log",
            )

            def enqueue(i: int) -> float:
                before = time.time()
                job(i)
                return before

            def wait_started(i: int) -> float:
                item = client.blpop([RESULTS_KEY], timeout=30)
                if item is None:
                    raise RuntimeError(f"job {i} did not start within 30 s (worker rc={worker.poll()})")
                got, at = json.loads(item[1])
                assert got == i, (got, i)
                return float(at)

            return measure(enqueue, wait_started, args)
    finally:
        client.flushdb()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50, help="measured jobs per queue")
    parser.add_argument("--min-gap", type=float, default=0.5, help="shortest idle gap, seconds")
    parser.add_argument("--max-gap", type=float, default=3.0, help="longest idle gap, seconds")
    parser.add_argument("--initial-idle", type=float, default=3.0, help="idle seconds before the first")
    parser.add_argument("--queue", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--workers", type=int, default=default_workers(), help="consumer threads")
    parser.add_argument("--seed", type=int, default=7, help="seed of the idle gaps")
    parser.add_argument("--redis-worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.redis_worker:
        run_redis_worker(args.redis_worker, args.workers)
        return 0

    from connector.jobs.queue import POLL_INITIAL_DELAY, POLL_MAX_DELAY

    print(f"{args.count} trivial jobs per queue after idle gaps of {args.min_gap:g}-{args.max_gap:g} s "
          f"({args.workers} consumer threads; SQLite polling {POLL_INITIAL_DELAY * 1000:.0f} ms "
          f"backing off to {POLL_MAX_DELAY * 1000:.0f} ms, Redis blocking dequeue)")
    runs = []
    if args.queue in ("sqlite", "both"):
        runs.append(("sqlite, threads in serve", run_sqlite(args)))
    if args.queue in ("redis", "both"):
        runs.append(("redis, worker process", run_redis(args)))
    print()
    print_table(
        ["queue", "n", "p50 ms", "p99 ms", "max ms", "within 250 ms"],
        [
            [
                name,
                len(d),
                f"{percentile(d, 50) * 1000:.1f}",
                f"{percentile(d, 99) * 1000:.1f}",
                f"{max(d) * 1000:.1f}",
                f"{sum(x <= TARGET for x in d)}/{len(d)}" + ("" if max(d) <= TARGET else "  MISSED"),
            ]
            for name, d in runs
        ],
    )
    return 0


if __name__ == "__main__":
    run(main)
