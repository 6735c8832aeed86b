"""Metrics on prometheus_client: the exposition parsed back, the wired views, and the metrics
directory through which ``/metrics`` on ``serve`` shows what worker processes measured."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine

from connector.kernel import metrics
from connector.kernel.errors import ConfigurationError
from connector.kernel.metrics import CRM_BUCKETS, TEXT_BUCKETS, WEBHOOK_BUCKETS, timed_crm_call
from connector.settings.config import load_settings
from tests.conftest import SECRET, make_settings
from tests.connector import metrics_child
from tests.connector.helpers import add_account, missed, post, sandbox_account

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse(text: str) -> tuple[dict[str, str], dict[str, str], Samples]:
    """HELP texts, TYPEs and samples of an exposition (label pairs sorted by name); fails on any
    line it cannot read."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: Samples = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name in helps, f"TYPE before HELP for {name}"
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"unreadable line {line!r}"
            name, label_text, value = match.groups()
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in types or family in types, f"sample before its TYPE: {line!r}"
            labels = tuple(sorted((k, _unescape(v)) for k, v in LABEL.findall(label_text or "")))
            samples[(name, labels)] = float(value)
    return helps, types, samples


def histograms_whole(samples: Samples, *names: str) -> bool:
    """Whether :func:`check_histogram` passes for every name. A process starting a new label
    set writes its buckets into its metrics file one by one (prometheus_client's multiprocess
    mode), so a scrape at that moment can see some of them; the next scrape sees them all."""
    try:
        for name in names:
            check_histogram(samples, name)
    except AssertionError:
        return False
    return True


def check_histogram(samples: Samples, name: str) -> dict[Labels, int]:
    """Buckets cumulative and ending in +Inf == _count, per label set; returns the counts."""
    buckets: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for (sample, labels), value in samples.items():
        if sample == f"{name}_bucket":
            le = dict(labels)["le"]
            rest = tuple(kv for kv in labels if kv[0] != "le")
            buckets[rest].append((math.inf if le == "+Inf" else float(le), value))
    counts = {}
    for labels, series in buckets.items():
        series.sort()
        values = [v for _, v in series]
        assert values == sorted(values), f"{name}{labels} buckets not cumulative"
        assert series[-1][0] == math.inf
        assert series[-1][1] == samples[(f"{name}_count", labels)]
        counts[labels] = int(series[-1][1])
    return counts


def bounds(samples: Samples, name: str) -> set[tuple[float, ...]]:
    """The bucket bounds of each label set of a histogram."""
    found: dict[Labels, list[float]] = defaultdict(list)
    for (sample, labels), _ in samples.items():
        if sample == f"{name}_bucket":
            le = dict(labels)["le"]
            found[tuple(kv for kv in labels if kv[0] != "le")].append(
                math.inf if le == "+Inf" else float(le))
    return {tuple(sorted(b)) for b in found.values()}


def label_names(samples: Samples, name: str) -> set[tuple[str, ...]]:
    """The label names of a sample name, per sample."""
    return {tuple(k for k, _ in labels) for (sample, labels) in samples if sample == name}


def scrape(app: Any) -> Samples:
    """``GET /metrics`` through the app, parsed."""
    response = app.test_client().get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))[2]


# -- one process -------------------------------------------------------------------------------


def test_the_metrics_keep_their_names_labels_and_buckets(app):
    metrics.count("textback_webhooks_total", provider="t-carrier", kind="voice", status="200")
    metrics.observe_webhook_latency("t-carrier", "voice", 0.02)
    metrics.observe_text_latency(1.5)
    metrics.observe_crm_call("t-crm", "log_call", 0.3, "TimeoutError")
    response = app.test_client().get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    helps, types, samples = parse(response.get_data(as_text=True))
    assert {name: types[name] for name in (
        "textback_webhooks_total", "textback_webhook_latency_seconds",
        "textback_text_latency_seconds", "textback_crm_call_latency_seconds",
        "textback_crm_call_errors_total", "textback_processes")} == {
        "textback_webhooks_total": "counter", "textback_webhook_latency_seconds": "histogram",
        "textback_text_latency_seconds": "histogram",
        "textback_crm_call_latency_seconds": "histogram",
        "textback_crm_call_errors_total": "counter", "textback_processes": "gauge"}
    assert helps["textback_text_latency_seconds"] == (
        "From the missed call to the carrier accepting the text-back.")
    assert label_names(samples, "textback_webhooks_total") == {("kind", "provider", "status")}
    assert label_names(samples, "textback_webhook_latency_seconds_count") == {("kind", "provider")}
    assert label_names(samples, "textback_text_latency_seconds_count") == {()}
    assert label_names(samples, "textback_crm_call_latency_seconds_count") == {
        ("operation", "provider")}
    assert label_names(samples, "textback_crm_call_errors_total") == {
        ("error", "operation", "provider")}
    assert bounds(samples, "textback_webhook_latency_seconds") == {(*WEBHOOK_BUCKETS, math.inf)}
    assert bounds(samples, "textback_text_latency_seconds") == {(*TEXT_BUCKETS, math.inf)}
    assert bounds(samples, "textback_crm_call_latency_seconds") == {(*CRM_BUCKETS, math.inf)}
    for name in ("textback_webhook_latency_seconds", "textback_text_latency_seconds",
                 "textback_crm_call_latency_seconds"):
        check_histogram(samples, name)
    # No _created series: the multi-process files have none, so neither does one process.
    assert not [name for name, _ in samples if name.endswith("_created")]


def test_crm_calls_are_timed_and_errors_counted_by_class():
    labels = {"provider": "t-crm", "operation": "log_call"}
    before = metrics.sample_value("textback_crm_call_latency_seconds_count", **labels)
    errors = metrics.sample_value("textback_crm_call_errors_total", error="TimeoutError", **labels)
    assert timed_crm_call("t-crm", "log_call", lambda: "id-1") == "id-1"

    def boom() -> str:
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        timed_crm_call("t-crm", "log_call", boom)
    assert metrics.sample_value("textback_crm_call_latency_seconds_count", **labels) == before + 2
    assert metrics.sample_value("textback_crm_call_errors_total", error="TimeoutError",
                                **labels) == errors + 1
    text_before = metrics.sample_value("textback_text_latency_seconds_count")
    metrics.observe_text_latency(1.5)
    assert metrics.sample_value("textback_text_latency_seconds_count") == text_before + 1
    assert metrics.sample_value("textback_text_latency_seconds_bucket", le="2.0") >= 1


def test_an_instrumented_crm_times_its_crm_calls_only():
    crm = metrics.InstrumentedCrm(metrics_child.StubCrm())
    labels = {"provider": metrics_child.PROVIDER, "operation": "log_call"}
    before = metrics.sample_value("textback_crm_call_latency_seconds_count", **labels)
    assert crm.log_call("note") == "call-4"
    assert crm.name == metrics_child.PROVIDER  # not a CRM call: passed through, not timed
    assert metrics.sample_value("textback_crm_call_latency_seconds_count", **labels) == before + 1
    assert "StubCrm" in repr(crm)


def test_count_declares_another_counter_on_first_use():
    metrics.count("t_other_total", route="a")
    metrics.count("t_other_total", route="a")
    assert metrics.sample_value("t_other_total", route="a") == 2
    with pytest.raises(ValueError):
        metrics.count("textback_webhooks_total", provider="x")  # the labels are fixed


def test_concurrent_recording_is_all_counted():
    threads, rounds = 8, 2000
    labels = {"provider": "t-threads", "kind": "voice"}
    count_before = metrics.sample_value("textback_webhooks_total", status="200", **labels)
    seen_before = metrics.sample_value("textback_webhook_latency_seconds_count", **labels)
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for i in range(rounds):
            metrics.count("textback_webhooks_total", status="200", **labels)
            metrics.observe_webhook_latency("t-threads", "voice", 0.001 if i % 2 else 0.2)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = threads * rounds
    assert metrics.sample_value("textback_webhooks_total", status="200", **labels) == \
        count_before + total
    assert metrics.sample_value("textback_webhook_latency_seconds_count", **labels) == \
        seen_before + total
    assert metrics.sample_value("textback_webhook_latency_seconds_bucket", le="0.005",
                                **labels) == seen_before / 2 + total / 2


def test_metrics_view_renders_webhook_counts_and_latency(app, runtime, webhook_secret):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    client = app.test_client()
    voice = {"kind": "voice", "provider": "sandbox"}
    before = metrics.sample_value("textback_webhook_latency_seconds_count", **voice)
    refused = metrics.sample_value("textback_webhooks_total", status="403", **voice)
    assert post(client, "acme", "voice", missed(), webhook_secret).status_code == 200
    assert post(client, "acme", "voice", missed(), "bad-secret").status_code == 403
    assert client.post("/webhooks/nosuch/acme/voice").status_code == 404  # not observed
    samples = scrape(app)
    counts = check_histogram(samples, "textback_webhook_latency_seconds")
    assert counts[(("kind", "voice"), ("provider", "sandbox"))] == before + 2
    assert not [labels for labels in counts if ("provider", "nosuch") in labels]
    assert samples[("textback_webhooks_total", (("kind", "voice"), ("provider", "sandbox"),
                                                ("status", "403")))] == refused + 1
    check_histogram(samples, "textback_crm_call_latency_seconds")
    check_histogram(samples, "textback_text_latency_seconds")


# -- the setting -------------------------------------------------------------------------------


def test_the_metrics_directory_defaults_beside_the_sqlite_database(tmp_path):
    env = {"TEXTBACK_SECRET_KEY": "k" * 40}
    db = tmp_path / "data" / "textback.db"
    assert load_settings({**env, "TEXTBACK_DATABASE_URL": f"sqlite:///{db}"}).metrics_dir == \
        tmp_path / "data" / "metrics"
    assert load_settings({**env, "TEXTBACK_DATABASE_URL": "postgresql+psycopg://u@db/t"}
                         ).metrics_dir == Path("var/metrics")
    chosen = tmp_path / "shared" / "metrics"
    settings = load_settings({**env, "TEXTBACK_METRICS_DIR": str(chosen)})
    assert settings.metrics_dir == chosen and not chosen.exists()  # made by serve and worker


def test_a_metrics_directory_that_cannot_be_one_is_refused(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for value, message in ((str(a_file), "names a file"),
                           (str(a_file / "metrics"), "cannot be created")):
        with pytest.raises(ConfigurationError) as info:
            load_settings({"TEXTBACK_SECRET_KEY": "k" * 40, "TEXTBACK_METRICS_DIR": value})
        assert "TEXTBACK_METRICS_DIR" in str(info.value) and message in str(info.value)


def test_serve_records_into_the_metrics_directory_while_it_runs(tmp_path, monkeypatch):
    from connector.cli import main

    chosen = tmp_path / "metrics-here"
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", "c" * 40)
    monkeypatch.setenv("TEXTBACK_DEMO", "false")
    monkeypatch.setenv("TEXTBACK_METRICS_DIR", str(chosen))
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    assert main(["db", "upgrade"]) == 0
    seen: dict[str, Any] = {}

    class Server:
        def __init__(self, app: Any, **_: Any) -> None:
            pass

        def run(self) -> None:
            seen["directory"] = metrics.directory()
            seen["env"] = os.environ.get(metrics.MULTIPROC_ENV)
            seen["processes"] = metrics.sample_value("textback_processes", command="serve")

        def close(self) -> None:
            pass

    monkeypatch.setattr("waitress.server.create_server", Server)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["serve", "--workers", "0", "--processes", "1", "--port", "0"]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == {"directory": chosen.absolute(), "env": str(chosen.absolute()),
                    "processes": 1.0}
    # Stopped cleanly: this process records alone again and is no longer counted there.
    assert metrics.directory() is None and metrics.MULTIPROC_ENV not in os.environ
    assert not list(chosen.glob("gauge_live*"))


# -- several processes, one directory ----------------------------------------------------------


class Children:
    """``tests.connector.metrics_child`` processes recording into one metrics directory."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[str]] = []

    def start(self) -> subprocess.Popen[str]:
        """A child that has recorded its text latency and CRM calls."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.connector.metrics_child"], cwd=ROOT, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == f"recorded {proc.pid}\n", f"the child said {line!r}"
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[str]) -> None:
        """Let a child stop cleanly, as ``textback worker`` does on SIGTERM."""
        assert proc.stdin is not None
        proc.stdin.write("stop\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0

    @staticmethod
    def kill(proc: subprocess.Popen[str]) -> None:
        """kill -9: no clean-up at all."""
        proc.kill()
        proc.wait(timeout=30)

    def close(self) -> None:
        """Kill whatever still runs."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None and not stream.closed:
                    stream.close()


@pytest.fixture
def metrics_dir(settings) -> Path:  # type: ignore[no-untyped-def]
    """``TEXTBACK_METRICS_DIR`` of the test's settings (not made yet)."""
    return Path(settings.metrics_dir)


@pytest.fixture
def children(settings) -> Iterator[Children]:  # type: ignore[no-untyped-def]
    """Start worker-like processes on the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBACK_")}
    env.pop(metrics.MULTIPROC_ENV, None)
    env.update(TEXTBACK_DATABASE_URL=settings.database_url, TEXTBACK_SECRET_KEY=SECRET,
               TEXTBACK_DEMO="false", TEXTBACK_METRICS_DIR=str(settings.metrics_dir))
    kids = Children(env)
    yield kids
    kids.close()


@pytest.fixture
def serving(metrics_dir: Path) -> Iterator[Path]:
    """This process records into the metrics directory, as ``textback serve`` does."""
    metrics.record_in_directory(metrics_dir, "serve")
    yield metrics_dir
    metrics.stop_recording_in_directory()


def text_latency(samples: Samples) -> tuple[float, float]:
    """The text latency histogram's count and sum."""
    return (samples.get(("textback_text_latency_seconds_count", ()), 0.0),
            samples.get(("textback_text_latency_seconds_sum", ()), 0.0))


def child_crm(samples: Samples, operation: str) -> float:
    """How many ``operation`` calls the children's CRM made."""
    return samples.get(("textback_crm_call_latency_seconds_count",
                        (("operation", operation), ("provider", metrics_child.PROVIDER))), 0.0)


def child_timeouts(samples: Samples) -> float:
    """How many of the children's ``create_task`` calls timed out."""
    return samples.get(("textback_crm_call_errors_total",
                        (("error", "TimeoutError"), ("operation", "create_task"),
                         ("provider", metrics_child.PROVIDER))), 0.0)


def processes(samples: Samples, command: str) -> float:
    """``textback_processes{command}``."""
    return samples.get(("textback_processes", (("command", command),)), 0.0)


def test_what_a_worker_process_measured_shows_on_serve(app, runtime, serving, children,
                                                       webhook_secret):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    # This process (serve; its jobs run inline here) texts back one missed call...
    assert post(app.test_client(), "acme", "voice", missed(), webhook_secret).status_code == 200
    here = text_latency(scrape(app))
    assert here[0] == 1
    # ... and a worker process records a text latency and two CRM calls.
    worker = children.start()
    samples = scrape(app)
    count, total = text_latency(samples)
    assert (count, total) == (2, pytest.approx(here[1] + metrics_child.TEXT_LATENCY))
    assert samples[("textback_text_latency_seconds_bucket", (("le", "60.0"),))] - \
        samples[("textback_text_latency_seconds_bucket", (("le", "30.0"),))] == 1
    assert child_crm(samples, "log_call") == 1 and child_crm(samples, "create_task") == 1
    assert child_timeouts(samples) == 1
    # This process's own measurements are in the same sums.
    assert samples[("textback_webhook_latency_seconds_count",
                    (("kind", "voice"), ("provider", "sandbox")))] == 1
    assert [labels for name, labels in samples if name == "textback_crm_call_latency_seconds_count"
            and ("provider", "sandbox") in labels]
    assert (processes(samples, "serve"), processes(samples, "worker")) == (1, 1)
    for name in ("textback_text_latency_seconds", "textback_crm_call_latency_seconds",
                 "textback_webhook_latency_seconds"):
        check_histogram(samples, name)

    # The worker stops: it is no longer counted, and what it measured stays in the sums.
    children.stop(worker)
    after = scrape(app)
    assert (processes(after, "serve"), processes(after, "worker")) == (1, 0)
    assert text_latency(after)[0] == 2 and child_crm(after, "log_call") == 1


def test_a_killed_worker_is_marked_dead_at_the_next_start_and_its_counts_kept(app, serving,
                                                                              children):
    first = children.start()
    children.kill(first)
    samples = scrape(app)
    # Nobody has cleaned up after it yet: its files, its process gauge too, are still there.
    assert processes(samples, "worker") == 1 and text_latency(samples)[0] == 1
    assert (serving / f"counter_{first.pid}.db").exists()

    # The next process to start marks it dead and folds its counts into the archive.
    second = children.start()
    samples = scrape(app)
    assert processes(samples, "worker") == 1 and processes(samples, "serve") == 1
    assert text_latency(samples) == (2, 2 * metrics_child.TEXT_LATENCY)
    assert child_crm(samples, "log_call") == 2 and child_timeouts(samples) == 2
    assert not list(serving.glob(f"*_{first.pid}.db"))
    assert (serving / "counter_archive.db").exists()
    assert (serving / "histogram_archive.db").exists()

    # Folding again adds to the archive: the sums never go backwards.
    children.stop(second)
    third = children.start()
    samples = scrape(app)
    assert text_latency(samples) == (3, 3 * metrics_child.TEXT_LATENCY)
    assert child_crm(samples, "create_task") == 3 and child_timeouts(samples) == 3
    assert processes(samples, "worker") == 1
    assert not list(serving.glob(f"*_{second.pid}.db"))
    check_histogram(samples, "textback_text_latency_seconds")
    children.stop(third)


def test_a_directory_nobody_records_in_starts_afresh(app, metrics_dir, children):
    # Two workers recorded here: one was killed, the other stopped cleanly.
    killed, stopped = children.start(), children.start()
    children.kill(killed)
    children.stop(stopped)
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2
    assert (metrics_dir / f"gauge_livesum_{killed.pid}.db").exists()
    metrics.record_in_directory(metrics_dir, "serve")
    try:
        samples = scrape(app)
        assert text_latency(samples) == (0, 0)
        assert child_crm(samples, "log_call") == 0 and processes(samples, "worker") == 0
        assert processes(samples, "serve") == 1
        assert {p.name for p in metrics_dir.glob("*.db")} <= {
            f"counter_{os.getpid()}.db", f"histogram_{os.getpid()}.db",
            f"gauge_livesum_{os.getpid()}.db"}
    finally:
        metrics.stop_recording_in_directory()


def test_texts_and_crm_calls_of_a_textback_worker_show_on_serve(tmp_path, redis_url, frozen_clock,
                                                                webhook_secret):
    """The Redis deployment: the web app here, a real ``textback worker`` process doing the jobs."""
    from connector.runtime import Runtime
    from connector.storage.db import upgrade
    from connector.web import create_app

    # The worker reads the real clock: this process's clock goes to the same time.
    frozen_clock.move_to(datetime.fromtimestamp(time_machine.escape_hatch.time.time(), UTC))
    settings = make_settings(tmp_path, queue_url=redis_url,
                             metrics_dir=str(tmp_path / "metrics"))
    upgrade(settings.database_url)
    runtime = Runtime(settings)  # the worker's queue name: jobs go to it through Redis
    add_account(runtime, sandbox_account("acme", webhook_secret))
    app = create_app(runtime)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBACK_")}
    env.pop(metrics.MULTIPROC_ENV, None)
    env.update(TEXTBACK_DATABASE_URL=settings.database_url, TEXTBACK_QUEUE_URL=redis_url,
               TEXTBACK_SECRET_KEY=SECRET, TEXTBACK_DEMO="false",
               TEXTBACK_PUBLIC_URL=settings.public_url, TEXTBACK_ALLOW_HTTP_LOOPBACK="true",
               TEXTBACK_METRICS_DIR=str(settings.metrics_dir))
    log_path = tmp_path / "worker.log"
    metrics.record_in_directory(settings.metrics_dir, "serve")
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "worker", "--workers", "1",
             "--text-workers", "1"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        assert post(app.test_client(), "acme", "voice", missed(),
                    webhook_secret).status_code == 200
        deadline = time.monotonic() + 60
        samples: Samples = {}
        while time.monotonic() < deadline:
            samples = scrape(app)
            sandbox_calls = [v for (name, labels), v in samples.items()
                             if name == "textback_crm_call_latency_seconds_count"
                             and ("provider", "sandbox") in labels]
            if (text_latency(samples)[0] >= 1 and sum(sandbox_calls) >= 3
                    and histograms_whole(samples, "textback_crm_call_latency_seconds")):
                break
            assert worker.poll() is None, log_path.read_text()
            time.sleep(0.2)
        else:
            pytest.fail(f"the worker's metrics never showed: {log_path.read_text()}")
        # Only the worker ran jobs: this process recorded the webhook, the worker the rest.
        assert text_latency(samples)[0] == 1, log_path.read_text()
        assert processes(samples, "worker") == 1 and processes(samples, "serve") == 1
        check_histogram(samples, "textback_crm_call_latency_seconds")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log_path.read_text()
        after = scrape(app)
        assert processes(after, "worker") == 0 and text_latency(after)[0] == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
        metrics.stop_recording_in_directory()
        runtime.close()
