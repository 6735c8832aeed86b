"""Missed call to text-back latency while the CRM is slow.

What it measures: for ``--calls`` missed calls (signed Twilio ``<Dial action>`` callbacks with
``DialCallStatus=no-answer``, each from a new caller) posted to ``textback serve`` at ``--rate``
per second, the time from just before each webhook POST is sent to the arrival of the SMS request
for that caller at a stub Twilio Messages API (same machine clock, ``time.time()`` on both
sides); the text path includes textback's Twilio Lookup v2 request to the same stub. Meanwhile
the HubSpot stub answers every request after ``--hubspot-latency`` seconds, so each call's CRM
sync (about six HubSpot requests) takes seconds; the figure shows whether that delays the texts.
The CRM syncs completed by the last text and by the end are printed too.

Queue modes (``--queue``): ``sqlite``, the default SQLite queue consumed by the job threads inside
``textback serve``; ``redis``, ``TEXTBACK_QUEUE_URL=redis://127.0.0.1:6379/14`` with the web
process plus a separate ``textback worker`` process (that Redis database is flushed at start and
end); ``both`` (default) runs one after the other.

Target: p99 under 1 s; CRM latency must not delay the text.

Run: ``.venv/bin/python bench/text_latency.py [--calls 200] [--rate 10] [--queue both]``
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from _common import (
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
    take_callers,
    textback_env,
)

TASK_ROUTE = "POST /crm/v3/objects/tasks"  # the last step of a call's CRM sync


@dataclass
class ModeResult:
    """What one queue mode produced."""

    mode: str
    sent: int
    non_2xx: int
    latencies: list[float]
    syncs_by_last_text: int
    hubspot_requests_by_last_text: int
    syncs_at_end: int
    crm_seconds: float


class Poster:
    """POSTs signed callbacks to textback, one keep-alive connection per sending thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.signer = Signer(f"http://127.0.0.1:{port}")
        self._local = threading.local()

    def post(self, caller: str) -> tuple[float, int]:
        """Send one missed call from ``caller``; return (time.time() just before sending, status)."""
        form = missed_call_form(caller)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.signer.sign(VOICE_PATH, form),
        }
        body = urlencode(form).encode()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent_at = time.time()
        try:
            conn.request("POST", VOICE_PATH, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return sent_at, response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            return sent_at, 0


def send_at_rate(poster: Poster, numbers: Sequence[str], rate: float) -> tuple[dict[str, float], int]:
    """Post one call per number at ``rate`` per second (open loop); return send times and non-2xx."""
    sent_at: dict[str, float] = {}
    failures = 0
    lock = threading.Lock()

    def one(caller: str) -> None:
        nonlocal failures
        at, status = poster.post(caller)
        with lock:
            sent_at[caller] = at
            failures += not 200 <= status < 300

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i, caller in enumerate(numbers):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, caller)
    return sent_at, failures


def wait_for_texts(stubs: Stubs, wanted: set[str], timeout: float) -> dict[str, float]:
    """Arrival time of the first text to each wanted number, waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        arrivals: dict[str, float] = {}
        for sms in stubs.sms():
            if sms.to in wanted and sms.to not in arrivals:
                arrivals[sms.to] = sms.at
        if len(arrivals) == len(wanted) or time.monotonic() > deadline:
            return arrivals
        time.sleep(0.2)


def wait_for_syncs(stubs: Stubs, wanted: int, timeout: float) -> int:
    """Wait until ``wanted`` calls are synced to HubSpot or ``timeout`` passes; return the count."""
    deadline = time.monotonic() + timeout
    while True:
        done = sum(1 for c in stubs.hubspot() if c.route == TASK_ROUTE)
        if done >= wanted or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def flush_redis(url: str) -> None:
    """Empty the benchmark's Redis database."""
    import redis

    redis.Redis.from_url(url).flushdb()


def run_mode(mode: str, args: argparse.Namespace, numbers: Iterator[str]) -> ModeResult:
    """Start everything for one queue mode, send the calls, collect the figures, stop everything."""
    queue_url = args.redis_url if mode == "redis" else None
    if queue_url:
        flush_redis(queue_url)
    try:
        with tempfile.TemporaryDirectory(prefix="textback-bench-") as tmpdir, Processes() as procs:
            tmp = Path(tmpdir)
            stubs = start_stubs(procs, hubspot_latency=args.hubspot_latency, log_path=tmp / "stubs.log")
            port = free_port()
            env = textback_env(tmp, port, queue_url=queue_url)
            prepare_textback(tmp, env, [account_document(stubs.carrier_url, stubs.hubspot_url)])
            start_serve(procs, tmp, env, port)
            if queue_url:
                procs.start("textback worker", [str(BIN / "textback"), "worker"], env=env,
                            log_path=tmp / "worker.log")
            poster = Poster(port)

            # Warm-up: first requests, adapter construction, HubSpot's one-off property create.
            warm = take_callers(numbers, args.warmup)
            send_at_rate(poster, warm, args.rate)
            wait_for_texts(stubs, set(warm), args.text_timeout)
            wait_for_syncs(stubs, len(warm), args.crm_wait)
            synced_before = sum(1 for c in stubs.hubspot() if c.route == TASK_ROUTE)
            requests_before = len(stubs.hubspot())

            measured = take_callers(numbers, args.calls)
            sent_at, failures = send_at_rate(poster, measured, args.rate)
            arrivals = wait_for_texts(stubs, set(measured), args.text_timeout)
            last_text = max(arrivals.values(), default=time.time())
            log = stubs.hubspot()
            by_last_text = [c for c in log[requests_before:] if c.at <= last_text]
            syncs_by_last = sum(1 for c in by_last_text if c.route == TASK_ROUTE)
            began = time.monotonic()
            syncs_end = wait_for_syncs(stubs, synced_before + args.calls, args.crm_wait)
            crm_seconds = time.monotonic() - began
            return ModeResult(
                mode=mode,
                sent=len(sent_at),
                non_2xx=failures,
                latencies=[arrivals[n] - sent_at[n] for n in measured if n in arrivals],
                syncs_by_last_text=syncs_by_last,
                hubspot_requests_by_last_text=len(by_last_text),
                syncs_at_end=syncs_end - synced_before,
                crm_seconds=crm_seconds,
            )
    finally:
        if queue_url:
            flush_redis(queue_url)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="measured missed calls per mode")
    parser.add_argument("--rate", type=float, default=10.0, help="missed calls per second")
    parser.add_argument("--hubspot-latency", type=float, default=0.3, help="seconds per HubSpot answer")
    parser.add_argument("--queue", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured calls first")
    parser.add_argument("--text-timeout", type=float, default=60.0,
                        help="seconds to wait for the texts after the last call")
    parser.add_argument("--crm-wait", type=float, default=180.0,
                        help="seconds to wait for the CRM syncs after the last text")
    args = parser.parse_args(argv)

    numbers = callers()
    modes = ("sqlite", "redis") if args.queue == "both" else (args.queue,)
    print(f"{args.calls} missed calls at {args.rate:g}/s per mode, new caller each; HubSpot stub "
          f"answers after {args.hubspot_latency:g} s; textback serve/worker defaults")
    results = [run_mode(mode, args, numbers) for mode in modes]

    print()
    print_table(
        ["queue", "texts", "non-2xx", "p50 ms", "p90 ms", "p99 ms", "max ms", "p99 < 1 s"],
        [
            [
                r.mode if r.mode == "sqlite" else "redis + worker",
                f"{len(r.latencies)}/{r.sent}",
                r.non_2xx,
                f"{percentile(r.latencies, 50) * 1000:.0f}",
                f"{percentile(r.latencies, 90) * 1000:.0f}",
                f"{percentile(r.latencies, 99) * 1000:.0f}",
                f"{max(r.latencies, default=float('nan')) * 1000:.0f}",
                "met" if len(r.latencies) == r.sent and percentile(r.latencies, 99) < 1 else "MISSED",
            ]
            for r in results
        ],
    )
    print()
    print_table(
        ["queue", "CRM syncs by last text", "HubSpot requests by then", "CRM syncs at end",
         "CRM done after last text"],
        [
            [
                r.mode if r.mode == "sqlite" else "redis + worker",
                f"{r.syncs_by_last_text}/{r.sent}",
                r.hubspot_requests_by_last_text,
                f"{r.syncs_at_end}/{r.sent}",
                f"{r.crm_seconds:.1f} s" if r.syncs_at_end >= r.sent else f"not within {args.crm_wait:.0f} s",
            ]
            for r in results
        ],
    )
    return 0


if __name__ == "__main__":
    run(main)
