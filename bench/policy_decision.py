"""Policy decision time per call, with a full store: facts read + rules run, p50 and p99.

Fills a fresh database with one account, 10,000 opt-outs and 100,000 earlier calls (spread over
2,000 callers and 30 days), then times ``connector.jobs.text_back.decide_call`` minus the carrier
lookup (the line type is cached, as it is for any number seen within the TTL) for calls from
callers who are and are not in the store. Run on SQLite, and on PostgreSQL when it answers::

    .venv/bin/python bench/policy_decision.py [--decisions 2000] [--calls 100000]

Target: p99 under 2 ms per decision, on both databases.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from connector.jobs.text_back import decide_call  # noqa: E402
from connector.kernel import clock  # noqa: E402
from connector.runtime import Runtime  # noqa: E402
from connector.settings.config import load_settings  # noqa: E402
from connector.storage.accounts import import_account  # noqa: E402
from connector.storage.db import upgrade  # noqa: E402
from connector.storage.models import Call, LineType, OptOut  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def number(n: int) -> str:
    """A valid US number for index ``n``."""
    area = ("415", "212", "312", "617", "206", "303", "512", "646", "702", "305")[n // 10000 % 10]
    return f"+1{area}555{n % 10000:04d}"


def fill(rt: Runtime, opt_outs: int, calls: int, callers: int) -> None:
    """One account, its opt-outs, its earlier calls and cached line types."""
    doc = {
        "id": "bench", "name": "Bench Plumbing", "timezone": "America/Chicago",
        "carrier": {"kind": "sandbox", "credentials": {"webhook_secret": "x" * 16},
                    "numbers": ["+14155550100"]},
        "crm": {"kind": "sandbox", "credentials": {}},
        "hours": {"weekly": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu",
                                                                "fri")}},
    }
    with rt.db.session() as s:
        import_account(s, rt.box, doc)
    now = clock.now()
    rng = random.Random(7)
    with rt.db.engine.begin() as conn:
        conn.execute(insert(OptOut), [
            {"account_id": "bench", "number": number(100_000 + i), "source": "keyword",
             "opted_out_at": now} for i in range(opt_outs)])
        conn.execute(insert(LineType), [
            {"account_id": "bench", "number": number(i), "line_type": "mobile",
             "looked_up_at": now} for i in range(callers + 1000)])
        batch = []
        for i in range(calls):
            at = now - timedelta(minutes=rng.randrange(30 * 24 * 60))
            batch.append({
                "id": uuid.uuid4().hex, "account_id": "bench", "carrier": "sandbox",
                "event_id": f"old{i}", "caller": number(rng.randrange(callers)),
                "caller_raw": "", "called": "+14155550100", "outcome": "no-answer",
                "occurred_at": at, "ring_seconds": 12.0, "voicemail": False, "state": "texted",
                "decision": "text", "reason": "missed", "crm_state": "done", "attempts": 0,
                "created_at": at, "updated_at": at,
            })
            if len(batch) == 10_000:
                conn.execute(insert(Call), batch)
                batch = []
        if batch:
            conn.execute(insert(Call), batch)


def measure(rt: Runtime, decisions: int, callers: int) -> list[float]:
    """Milliseconds per decision for new calls from known and unknown callers."""
    rng = random.Random(11)
    timings: list[float] = []
    with rt.db.session() as s:
        from connector.storage.models import Account

        account = s.get(Account, "bench")
        assert account is not None
        for i in range(decisions):
            caller = number(rng.randrange(callers + 1000))
            call = Call(account_id="bench", carrier="sandbox", event_id=f"new{i}", caller=caller,
                        called="+14155550100", outcome="no-answer", occurred_at=clock.now(),
                        ring_seconds=15.0)
            s.add(call)
            s.flush()
            started = time.perf_counter()
            decide_call(rt, s, account, call)
            timings.append((time.perf_counter() - started) * 1000)
            s.rollback()  # leave the store as it was: every decision sees the same data
    return timings


def run(label: str, url: str, args: argparse.Namespace) -> None:
    """Fill, measure, print one line of figures."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"TEXTBACK_DATABASE_URL": url, "TEXTBACK_SECRET_KEY": "b" * 40,
               "TEXTBACK_QUEUE_URL": f"sqlite:///{tmp}/q.db", "TEXTBACK_DEMO": "false"}
        settings = load_settings(env)
        upgrade(settings.database_url)
        rt = Runtime(settings, immediate_queue=True)
        try:
            started = time.perf_counter()
            fill(rt, args.opt_outs, args.calls, args.callers)
            filled = time.perf_counter() - started
            measure(rt, 200, args.callers)  # warm caches and connections
            t = sorted(measure(rt, args.decisions, args.callers))
            p50, p99 = statistics.median(t), t[int(len(t) * 0.99) - 1]
            print(f"{label:<11} {args.opt_outs:>8} {args.calls:>8} {len(t):>6} "
                  f"{p50:>8.3f} {p99:>8.3f} {t[-1]:>8.3f}  (fill {filled:.1f} s)")
        finally:
            rt.close()


def main() -> None:
    """Run on SQLite and, where it answers, PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--opt-outs", type=int, default=10_000)
    parser.add_argument("--callers", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'database':<11} {'opt-outs':>8} {'calls':>8} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args)
    try:
        import psycopg

        schema = "bench_" + uuid.uuid4().hex[:8]
        plain = PG_URL.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(plain, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except Exception as exc:  # noqa: BLE001
        print(f"postgresql  skipped: not reachable ({type(exc).__name__})")
        return
    try:
        run("postgresql", f"{PG_URL}?options=-csearch_path%3D{schema}", args)
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
