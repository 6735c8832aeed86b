"""Webhook acknowledgement latency: ``textback serve`` against a bare signature-checking Flask app.

What it measures: the time from sending a signed Twilio ``<Dial action>`` callback for a missed
call (``DialCallStatus=no-answer``, a new caller and a new CallSid every time) to reading the
whole TwiML answer, for ``--requests`` callbacks at ``--concurrency`` (a closed loop: 20 threads,
one keep-alive connection each). The same load goes, in the same run, to a bare Flask app that
only verifies ``X-Twilio-Signature`` with twilio's ``RequestValidator`` and returns TwiML, served
by waitress with the same thread count as ``textback serve`` (its ``--threads`` default) in its
own process. Both are warmed up first; the bare app is measured first, then textback once the job
threads have finished the warm-up's texts and CRM writes.

While textback is measured its in-process job threads look up and text every caller (stub Twilio
API) and write each call to HubSpot (the HubSpot stub, no added latency): that background work
is part of the figure. Stubs and load generator share the machine with the servers.

Target: textback/bare at most 2 at p50 and at p99; no non-2xx answers.

Run: ``.venv/bin/python bench/webhook_latency.py [--requests 2000] [--concurrency 20]``
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from _common import (
    AUTH_TOKEN,
    BIN,
    VOICE_PATH,
    Processes,
    Signer,
    Stubs,
    account_document,
    callers,
    free_port,
    missed_call_form,
    percentile,
    prepare_textback,
    print_table,
    run,
    start_serve,
    start_stubs,
    textback_env,
    wait_for_http,
)

Request = tuple[bytes, dict[str, str]]


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
    for caller in itertools.islice(numbers, count):
        form = missed_call_form(caller)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signer.sign(VOICE_PATH, form),
        }
        out.append((urlencode(form).encode(), headers))
    return out


@dataclass
class LoadResult:
    """Latencies (seconds) and HTTP statuses of one load run, and its wall time."""

    latencies: list[float]
    statuses: list[int]
    elapsed: float

    @property
    def non_2xx(self) -> int:
        """Answers outside 200-299 (connection errors count as status 0)."""
        return sum(1 for s in self.statuses if not 200 <= s < 300)


def run_load(port: int, requests: Sequence[Request], concurrency: int) -> LoadResult:
    """Send ``requests`` from ``concurrency`` threads, one keep-alive connection per thread."""
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
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadResult(latencies, statuses, time.perf_counter() - began)


def crm_syncs(stubs: Stubs) -> int:
    """Calls fully written to HubSpot: the follow-up task is the last step of a call's sync."""
    return sum(1 for c in stubs.hubspot() if c.route == "POST /crm/v3/objects/tasks")


def wait_for_jobs(stubs: Stubs, calls: int, timeout: float) -> tuple[int, int, float]:
    """Wait until ``calls`` texts and CRM syncs are done; return (texts, syncs, seconds waited)."""
    began = time.monotonic()
    while True:
        texts, syncs = len(stubs.sms()), crm_syncs(stubs)
        waited = time.monotonic() - began
        if (texts >= calls and syncs >= calls) or waited > timeout:
            return texts, syncs, waited
        time.sleep(0.25)


def row(name: str, result: LoadResult) -> list[object]:
    """One line of the results table (milliseconds)."""
    ms = [t * 1000 for t in result.latencies]
    return [
        name,
        len(ms),
        result.non_2xx,
        f"{percentile(ms, 50):.2f}",
        f"{percentile(ms, 99):.2f}",
        f"{statistics.fmean(ms):.2f}",
        f"{max(ms):.2f}",
        f"{len(ms) / result.elapsed:.0f}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured callbacks per server")
    parser.add_argument("--concurrency", type=int, default=20, help="client threads")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up callbacks per server")
    parser.add_argument("--queue", choices=("sqlite", "redis"), default="sqlite",
                        help="sqlite: jobs run as threads inside textback serve (the default); "
                        "redis: TEXTBACK_QUEUE_URL=--redis-url and a textback worker process")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--textback-workers", type=int, default=None,
                        help="textback serve --workers (job threads; default: its own default). "
                        "0 shows the acknowledgement cost without any background jobs")
    parser.add_argument("--drain-timeout", type=float, default=300.0,
                        help="seconds to wait for textback's jobs to finish after a run")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = serve_threads()
    if args.serve_bare:
        serve_bare(args.serve_bare, threads)
        return 0

    numbers = callers()
    with tempfile.TemporaryDirectory(prefix="textback-bench-") as tmpdir, Processes() as procs:
        tmp = Path(tmpdir)
        stubs = start_stubs(procs, log_path=tmp / "stubs.log")
        tb_port, bare_port = free_port(), free_port()
        queue_url = args.redis_url if args.queue == "redis" else None
        if queue_url:
            import redis

            redis.Redis.from_url(queue_url).flushdb()
        env = textback_env(tmp, tb_port, queue_url=queue_url)
        prepare_textback(tmp, env, [account_document(stubs.carrier_url, stubs.hubspot_url)])
        serve_args = [] if args.textback_workers is None else ["--workers", str(args.textback_workers)]
        start_serve(procs, tmp, env, tb_port, *serve_args)
        if queue_url and args.textback_workers != 0:
            # The jobs run in their own process, as a multi-machine deployment runs them.
            procs.start("textback worker", [str(BIN / "textback"), "worker"], env=env,
                        log_path=tmp / "worker.log")
        jobs_run = args.textback_workers != 0
        bare = procs.start(
            "bare flask",
            [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(bare_port)],
            log_path=tmp / "bare.log",
            stdin_pipe=True,
        )
        wait_for_http(f"http://127.0.0.1:{bare_port}/healthz", bare)

        print(f"{args.requests} signed missed-call callbacks per server at concurrency "
              f"{args.concurrency}; waitress threads={threads} for both; warm-up {args.warmup} each")
        for port in (bare_port, tb_port):
            warm = run_load(port, build_requests(port, numbers, args.warmup), args.concurrency)
            if warm.non_2xx:
                print(f"warning: {warm.non_2xx} non-2xx answers during warm-up on port {port}")
        if jobs_run:
            texts, syncs, _ = wait_for_jobs(stubs, args.warmup, args.drain_timeout)
            print(f"warm-up done: textback texted {texts} and synced {syncs} of {args.warmup} calls")
        else:
            print("textback runs no job threads (--textback-workers 0): no texts, no CRM writes")

        bare_result = run_load(bare_port, build_requests(bare_port, numbers, args.requests),
                               args.concurrency)
        before_texts, before_syncs = len(stubs.sms()), crm_syncs(stubs)
        tb_result = run_load(tb_port, build_requests(tb_port, numbers, args.requests),
                             args.concurrency)
        during_texts = len(stubs.sms()) - before_texts
        during_syncs = crm_syncs(stubs) - before_syncs
        total = args.warmup + args.requests
        if jobs_run:
            texts, syncs, drained = wait_for_jobs(stubs, total, args.drain_timeout)

        print()
        print_table(
            ["server", "n", "non-2xx", "p50 ms", "p99 ms", "mean ms", "max ms", "req/s"],
            [row("bare flask", bare_result), row("textback serve", tb_result)],
        )
        bare_ms = [t * 1000 for t in bare_result.latencies]
        tb_ms = [t * 1000 for t in tb_result.latencies]
        p50 = percentile(tb_ms, 50) / percentile(bare_ms, 50)
        p99 = percentile(tb_ms, 99) / percentile(bare_ms, 99)
        print()
        print(f"ratio textback/bare  p50 {p50:.2f}  p99 {p99:.2f}  (target <= 2: "
              f"p50 {'met' if p50 <= 2 else 'MISSED'}, p99 {'met' if p99 <= 2 else 'MISSED'})")
        print(f"non-2xx answers: bare {bare_result.non_2xx}, textback {tb_result.non_2xx} (must be 0)")
        if jobs_run:
            print(f"textback background work during its run: {during_texts} texts sent, "
                  f"{during_syncs} calls synced to HubSpot")
            print(f"all {total} calls: {texts} texted, {syncs} synced, "
                  f"{drained:.1f} s after the last acknowledgement")
    return 0


if __name__ == "__main__":
    run(main)
