"""Webhook acknowledgement latency: ``textback serve`` against a bare signature-checking Flask app.

What it measures: the time from sending a signed Twilio ``<Dial action>`` callback for a missed
call (``DialCallStatus=no-answer``, a new caller and a new CallSid every time) to reading the
whole TwiML answer, for ``--requests`` callbacks at each ``--concurrency`` (a closed loop: that
many threads, one keep-alive connection each). The same load goes, in the same run, to a bare
Flask app that only verifies ``X-Twilio-Signature`` with twilio's ``RequestValidator`` and returns
TwiML, served by waitress with the same thread count as ``textback serve`` (its ``--threads``
default) in its own process. The bare app is warmed up and measured at every concurrency first,
once textback's processes have finished starting and while textback has taken no load, so none of
textback's work shares its machine.
Textback is then warmed up and measured at each concurrency in turn; each run starts once the
last run's callers have been texted.

Setups (``--setup``): ``sqlite``, the default (``textback serve`` starts its own job process on
the SQLite queue); ``postgres``, PostgreSQL (a schema of its own) with the Redis queue and
``--workers`` ``textback worker`` processes. While textback is measured its jobs look up and text
every caller (stub Twilio API) and write each call to HubSpot (stub, no added latency, at the
rate limiter's pace): that background work shares the machine, as do the stubs and the load
generator.

The load generator is one Python process on the same machine. During each measured run its garbage
collector is off (it collects before the run): a collection pauses all of its threads at once, and
every request then in flight would be timed with the pause. In a bare run of 2,000 requests at
concurrency 20 that slowed about 20 requests together, as many as decide the p99, at the same
moment of every run. A watcher thread in it times its own stalls, the moments it could not run for
more than 10 ms; the table's ``client stall ms`` column sums them. They are time the machine gave
to other work (at concurrency 20 on two cores, the servers' work), and the answers that arrive
meanwhile are timed with them: a carrier's client on another machine would not wait so.

Two more columns show where the machine's CPU went during each run: ``web CPU ms/req``, the CPU
the server's web processes used per answer (the bare app's process; textback's web processes, the
first of which starts the others), and ``job cores``, the CPU textback's job processes (its own
on SQLite, the workers on PostgreSQL + Redis) used meanwhile, in cores: work that shares the two
cores with the answers and the load generator.

Target: textback/bare at most 2 at p50 and at p99 at concurrency 20; no non-2xx answers. With
``--repeat N`` each setup is run N times from a fresh start (the table shows every run) and the
verdict takes the median of the runs' ratios: on a shared machine one run's ratio can move by a
third from the next's.

Each run is 10,000 callbacks by default: a p99 needs that many. Textback's slow answers come in
groups: when one commit waits for a core, the twenty or so requests queued behind it all answer
late together. Of 2,000 answers the slowest 1% is 20, so one such moment in a run of two or three
seconds decided that run's p99: at concurrency 20 on PostgreSQL + Redis, runs of 2,000 gave p99
ratios from 1.4 to 2.7 on one machine, and runs of 10,000 stayed within a few tenths of each
other. ``--requests 2000`` still gives a quicker look.

Run: ``.venv/bin/python bench/webhook_latency.py [--requests 10000] [--concurrency 1 20]
[--setup both] [--processes 1] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import gc
import http.client
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from _common import (
    AUTH_TOKEN,
    BIN,
    VOICE_PATH,
    Signer,
    Stubs,
    account_document,
    callers,
    command_name,
    cpu_seconds,
    enter_setup,
    free_port,
    missed_call_form,
    percentile,
    prepare_textback,
    print_table,
    process_tree,
    run,
    start_serve,
    start_stubs,
    take_callers,
    textback_env,
    wait_for_http,
    wait_until_idle,
)

Request = tuple[bytes, dict[str, str]]


def default_processes() -> int:
    """``textback serve``'s default ``--processes`` on this machine."""
    from connector.cli import default_processes as serve_default

    return serve_default()


def serve_threads() -> int:
    """``textback serve``'s default ``--threads``."""
    from connector.cli import build_parser

    return int(build_parser().parse_args(["serve"]).threads)


def serve_bare(port: int, threads: int) -> None:
    """The bare app: verify X-Twilio-Signature, answer ``<Hangup/>`` TwiML; nothing else."""
    import waitress
    from flask import Flask, Response, request
    from twilio.request_validator import RequestValidator

    public_url = f"http://127.0.0.1:{port}"
    validator = RequestValidator(AUTH_TOKEN)
    twiml = b'<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'
    app = Flask("bare")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", content_type="text/plain")

    @app.post("/webhooks/twilio/<account_id>/voice")
    def voice(account_id: str) -> Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        url = public_url + request.environ.get("REQUEST_URI", request.path)
        if not validator.validate(url, request.form, signature):
            return Response("forbidden\n", status=403, content_type="text/plain")
        return Response(twiml, content_type="text/xml")

    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)


def _exit_when_stdin_closes() -> None:
    """Leave at once when the benchmark closes our stdin (it is done, or died)."""
    sys.stdin.read()
    os._exit(0)


def build_requests(port: int, numbers: Iterator[str], count: int) -> list[Request]:
    """``count`` signed missed-call callbacks for the server on ``port``, each a new caller."""
    signer = Signer(f"http://127.0.0.1:{port}")
    out = []
    for caller in take_callers(numbers, count):
        form = missed_call_form(caller)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signer.sign(VOICE_PATH, form),
        }
        out.append((urlencode(form).encode(), headers))
    return out


@dataclass
class LoadResult:
    """Latencies (seconds) and HTTP statuses of one load run, its wall time, how long the load
    generator itself was stalled during it, and the CPU the server's web processes and its job
    processes used meanwhile (seconds)."""

    latencies: list[float]
    statuses: list[int]
    elapsed: float
    stalled: float = 0.0
    web_cpu: float = 0.0
    jobs_cpu: float = 0.0

    @property
    def non_2xx(self) -> int:
        """Answers outside 200-299 (connection errors count as status 0)."""
        return sum(1 for s in self.statuses if not 200 <= s < 300)


def run_load(port: int, requests: Sequence[Request], concurrency: int,
             web: Sequence[int] = (), jobs: Sequence[int] = ()) -> LoadResult:
    """Send ``requests`` from ``concurrency`` threads, one keep-alive connection per thread;
    ``web`` and ``jobs`` are the server's processes whose CPU use during the run is kept."""
    pending = iter(requests)
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: list[int] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[tuple[float, int]] = []
        while True:
            with lock:
                item = next(pending, None)
            if item is None:
                break
            body, headers = item
            start = time.perf_counter()
            try:
                conn.request("POST", VOICE_PATH, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
            mine.append((time.perf_counter() - start, status))
        conn.close()
        with lock:
            latencies.extend(t for t, _ in mine)
            statuses.extend(s for _, s in mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    watch = StallWatch()
    gc.collect()
    gc.disable()  # a collection would pause every thread, and be timed with the requests
    try:
        web_cpu, jobs_cpu = cpu_seconds(web, below=False), cpu_seconds(jobs, below=False)
        began = time.perf_counter()
        watch.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        web_cpu = cpu_seconds(web, below=False) - web_cpu
        jobs_cpu = cpu_seconds(jobs, below=False) - jobs_cpu
    finally:
        watch.stop()
        gc.enable()
    return LoadResult(latencies, statuses, elapsed, watch.stalled, web_cpu, jobs_cpu)


class StallWatch:
    """Sums the moments this process could not run for longer than :attr:`THRESHOLD`: a
    thread that sleeps :attr:`TICK` at a time and finds it woke late."""

    TICK = 0.002
    THRESHOLD = 0.010

    def __init__(self) -> None:
        self.stalled = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; :attr:`stalled` is then final."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        last = time.perf_counter()
        while not self._done.wait(self.TICK):
            now = time.perf_counter()
            late = now - last - self.TICK
            if late > self.THRESHOLD:
                self.stalled += late
            last = now


def warm_up(port: int, numbers: Iterator[str], args: argparse.Namespace) -> None:
    """``--warmup`` callbacks at the highest concurrency, unmeasured."""
    warm = run_load(port, build_requests(port, numbers, args.warmup), max(args.concurrency))
    if warm.non_2xx:
        print(f"warning: {warm.non_2xx} non-2xx answers during warm-up on port {port}")


def wait_for_texts(stubs: Stubs, count: int, timeout: float) -> tuple[int, float]:
    """Wait until ``count`` texts were sent; (texts, seconds waited). CRM writes are not waited
    for: they go at the CRM's rate limit, by design."""
    began = time.monotonic()
    while True:
        texts = len(stubs.sms())
        waited = time.monotonic() - began
        if texts >= count or waited > timeout:
            return texts, waited
        time.sleep(0.25)


def row(setup: str, concurrency: int, name: str, result: LoadResult,
        bare: LoadResult | None = None) -> list[object]:
    """One line of the results table (milliseconds); the ratios to ``bare`` when given."""
    ms = [t * 1000 for t in result.latencies]
    ratios = ["", ""]
    if bare is not None:
        bare_ms = [t * 1000 for t in bare.latencies]
        ratios = [f"{percentile(ms, q) / percentile(bare_ms, q):.2f}" for q in (50, 99)]
    return [
        setup, concurrency, name, len(ms), result.non_2xx,
        f"{percentile(ms, 50):.2f}", f"{percentile(ms, 99):.2f}", f"{statistics.fmean(ms):.2f}",
        f"{len(ms) / result.elapsed:.0f}", f"{result.stalled * 1000:.0f}",
        f"{result.web_cpu * 1000 / len(ms):.2f}", f"{result.jobs_cpu / result.elapsed:.2f}",
        *ratios,
    ]


SETUPS = {"sqlite": "SQLite (default)", "postgres": "PostgreSQL + Redis"}


def verdict(setup: str, concurrency: int, runs: Sequence[tuple[float, float, int]]) -> str:
    """The target's verdict on one setup and concurrency: the median of the runs' ratios (one
    run's machine may be busier than another's; every run is in the table above)."""
    p50 = statistics.median(r[0] for r in runs)
    p99 = statistics.median(r[1] for r in runs)
    errors = sum(r[2] for r in runs)
    over = f"median of {len(runs)} runs, " if len(runs) > 1 else ""
    return (f"{setup} at concurrency {concurrency}: {over}p50 ratio {p50:.2f}, p99 ratio "
            f"{p99:.2f} (target <= 2: {'met' if max(p50, p99) <= 2 else 'MISSED'}); non-2xx "
            f"{errors} (must be 0)")


def run_setup(setup: str, args: argparse.Namespace, numbers: Iterator[str],
              threads: int) -> list[tuple[int, LoadResult, LoadResult]]:
    """Start textback on one setup and the bare app; measure both at each concurrency."""
    with ExitStack() as stack:
        database_url, queue_url, tmp, procs = enter_setup(stack, setup)
        stubs = start_stubs(procs, log_path=tmp / "stubs.log")
        tb_port, bare_port = free_port(), free_port()
        env = textback_env(tmp, tb_port, queue_url=queue_url, database_url=database_url)
        prepare_textback(tmp, env, [account_document(stubs.carrier_url, stubs.hubspot_url)])
        serve_args = [] if args.processes is None else ["--processes", str(args.processes)]
        if args.textback_workers is not None:
            serve_args += ["--workers", str(args.textback_workers)]
        textback_pids = [start_serve(procs, tmp, env, tb_port, *serve_args).pid]
        worker_pids: list[int] = []
        jobs_run = args.textback_workers != 0
        if queue_url and jobs_run:
            for n in range(1, args.workers + 1):
                worker_pids.append(procs.start(
                    f"textback worker {n}", [str(BIN / "textback"), "worker"], env=env,
                    log_path=tmp / f"worker-{n}.log").pid)
        textback_pids += worker_pids
        bare = procs.start(
            "bare flask",
            [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(bare_port)],
            log_path=tmp / "bare.log",
            stdin_pipe=True,
        )
        wait_for_http(f"http://127.0.0.1:{bare_port}/healthz", bare)
        # textback's processes have started (imports, connections, the first sweep) before the
        # bare app is measured: that start-up is not load the bare app should share the machine with.
        wait_until_idle([*textback_pids, bare.pid])
        # serve's own processes: its web processes (the first starts the others), and on the
        # SQLite queue its job process; then the workers' whole trees.
        served = process_tree(textback_pids[0])
        web = [p for p in served if not command_name(p).endswith("(jobs)")]
        jobs = [p for p in served if p not in web]
        jobs += [p for root in worker_pids for p in process_tree(root)]
        # The bare app first, while textback has taken no load (so none of textback's background
        # work, texts or the CRM writes that follow them at the CRM's pace, shares its machine).
        warm_up(bare_port, numbers, args)
        bare_results = [
            run_load(bare_port, build_requests(bare_port, numbers, args.requests), concurrency,
                     web=process_tree(bare.pid))
            for concurrency in args.concurrency
        ]
        warm_up(tb_port, numbers, args)
        total = args.warmup
        if jobs_run:
            wait_for_texts(stubs, total, args.text_timeout)
        results = []
        for concurrency, bare_result in zip(args.concurrency, bare_results, strict=True):
            tb_result = run_load(tb_port, build_requests(tb_port, numbers, args.requests),
                                 concurrency, web=web, jobs=jobs)
            results.append((concurrency, bare_result, tb_result))
            if jobs_run:
                # Each run starts with the last run's callers texted.
                total += args.requests
                texts, waited = wait_for_texts(stubs, total, args.text_timeout)
                print(f"{SETUPS[setup]}, concurrency {concurrency}: {texts} of {total} callers "
                      f"texted ({waited:.1f} s after the last acknowledgement)")
        return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000,
                        help="measured callbacks per server and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20],
                        help="client threads (each value measured in turn)")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up callbacks per server")
    parser.add_argument("--setup", choices=("sqlite", "postgres", "both"), default="both",
                        help="sqlite: the default (serve starts its job process); postgres: "
                        "PostgreSQL + Redis with --workers textback worker processes")
    parser.add_argument("--processes", type=int, default=None,
                        help="textback serve --processes (default: its own default)")
    parser.add_argument("--workers", type=int, default=2,
                        help="textback worker processes on PostgreSQL + Redis")
    parser.add_argument("--textback-workers", type=int, default=None,
                        help="textback serve --workers (job threads; default: its own default). "
                        "0 shows the acknowledgement cost without any background jobs")
    parser.add_argument("--text-timeout", type=float, default=900.0,
                        help="seconds to wait for the texts after a run (10,000 callers take "
                        "four to five minutes to text on SQLite on two cores)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="whole runs per setup, each on a fresh textback and bare app; the "
                        "verdict takes the median of their ratios")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat takes a whole number of runs, 1 or more")
    threads = serve_threads()
    if args.serve_bare:
        serve_bare(args.serve_bare, threads)
        return 0

    numbers = callers()
    setups = ("sqlite", "postgres") if args.setup == "both" else (args.setup,)
    print(f"{args.requests} signed missed-call callbacks per server at concurrency "
          f"{', '.join(map(str, args.concurrency))}; waitress threads={threads} for both; "
          f"textback serve --processes {args.processes or default_processes()}; warm-up "
          f"{args.warmup} each")
    rows: list[list[object]] = []
    # (setup, concurrency) -> each run's (p50 ratio, p99 ratio, non-2xx answers)
    ratios: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
    for setup in setups:
        for run_number in range(1, args.repeat + 1):
            name = SETUPS[setup] + (f" #{run_number}" if args.repeat > 1 else "")
            for concurrency, bare, tb in run_setup(setup, args, numbers, threads):
                rows.append(row(name, concurrency, "bare flask", bare))
                rows.append(row(name, concurrency, "textback serve", tb, bare))
                ratios.setdefault((setup, concurrency), []).append((
                    percentile(tb.latencies, 50) / percentile(bare.latencies, 50),
                    percentile(tb.latencies, 99) / percentile(bare.latencies, 99),
                    bare.non_2xx + tb.non_2xx))
    print()
    print_table(["setup", "conc.", "server", "n", "non-2xx", "p50 ms", "p99 ms", "mean ms",
                 "req/s", "client stall ms", "web CPU ms/req", "job cores", "p50 x bare",
                 "p99 x bare"], rows)
    print()
    for (setup, concurrency), runs in ratios.items():
        if concurrency >= 20:
            print(verdict(SETUPS[setup], concurrency, runs))
    return 0


if __name__ == "__main__":
    run(main)
