"""The metrics registry: the Prometheus text format parsed back, thread safety, the wired views."""

from __future__ import annotations

import math
import re
import threading
from collections import defaultdict

import pytest

from connector.core import metrics
from connector.core.metrics import Registry, timed_crm_call
from tests.connector.helpers import add_account, missed, post, sandbox_account

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')

Labels = tuple[tuple[str, str], ...]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse(text: str) -> tuple[dict[str, str], dict[str, str], dict[tuple[str, Labels], float]]:
    """HELP texts, TYPEs and samples of an exposition; fails on any line it cannot read."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: dict[tuple[str, Labels], float] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
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
            labels = tuple((k, _unescape(v)) for k, v in LABEL.findall(label_text or ""))
            samples[(name, labels)] = float(value)
    return helps, types, samples


def check_histogram(samples: dict[tuple[str, Labels], float], name: str) -> dict[Labels, int]:
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


def test_counters_and_histograms_parse_back():
    reg = Registry()
    hits = reg.counter("t_hits_total", "Hits.\nSecond line \\ here.", ("path", "code"))
    hits.inc(path="/a", code="200")
    hits.inc(2, path="/a", code="200")
    hits.inc(path='/b "quoted"\nnext\\', code="500")
    latency = reg.histogram("t_latency_seconds", "Latency.", ("path",), (0.1, 1.0, 10.0))
    for value in (0.05, 0.1, 0.5, 2.0, 50.0):
        latency.observe(value, path="/a")
    reg.histogram("t_plain_seconds", "No labels.", (), (1.0,)).observe(0.5)

    helps, types, samples = parse(reg.render())
    assert helps["t_hits_total"] == "Hits.\\nSecond line \\\\ here."
    assert types == {"t_hits_total": "counter", "t_latency_seconds": "histogram",
                     "t_plain_seconds": "histogram"}
    assert samples[("t_hits_total", (("code", "200"), ("path", "/a")))] == 3
    assert samples[("t_hits_total", (("code", "500"), ("path", '/b "quoted"\nnext\\')))] == 1
    a = (("path", "/a"),)
    assert [samples[("t_latency_seconds_bucket", (*a, ("le", le)))]
            for le in ("0.1", "1.0", "10.0", "+Inf")] == [2, 3, 4, 5]
    assert samples[("t_latency_seconds_sum", a)] == pytest.approx(52.65)
    assert check_histogram(samples, "t_latency_seconds") == {a: 5}
    assert check_histogram(samples, "t_plain_seconds") == {(): 1}


def test_declared_metrics_without_observations_render_cleanly():
    reg = Registry()
    reg.counter("t_errors_total", "Errors.", ("kind",))
    reg.histogram("t_wait_seconds", "Waits.", (), (1.0, 2.0))
    _, types, samples = parse(reg.render())
    assert types == {"t_errors_total": "counter", "t_wait_seconds": "histogram"}
    assert samples[("t_wait_seconds_count", ())] == 0
    assert samples[("t_wait_seconds_bucket", (("le", "+Inf"),))] == 0
    assert not [k for k in samples if k[0] == "t_errors_total"]


def test_misuse_is_refused():
    reg = Registry()
    counter = reg.counter("t_total", "T.", ("a",))
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc(b="x")
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(-1, a="x")
    with pytest.raises(ValueError, match="is a counter"):
        reg.histogram("t_total", "T.")
    with pytest.raises(ValueError, match="reserved"):
        reg.histogram("t_h", "H.", ("le",))
    with pytest.raises(ValueError, match="NaN"):
        reg.histogram("t_h2", "H.").observe(math.nan)
    assert reg.counter("t_total", "ignored", ("a",)) is counter


def test_concurrent_increments_and_observations_are_all_counted():
    reg = Registry()
    counter = reg.counter("t_total", "T.", ("worker",))
    histogram = reg.histogram("t_seconds", "S.", (), (0.5, 1.0))
    threads, rounds = 8, 5000
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        start.wait()
        for i in range(rounds):
            counter.inc(worker=str(n % 2))
            histogram.observe(0.25 if i % 2 else 0.75)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert counter.value(worker="0") + counter.value(worker="1") == threads * rounds
    cumulative, total, count = histogram.snapshot()
    assert count == threads * rounds and cumulative == [count // 2, count, count]
    assert total == pytest.approx(threads * rounds * 0.5)
    _, _, samples = parse(reg.render())
    assert check_histogram(samples, "t_seconds") == {(): threads * rounds}


def test_crm_calls_are_timed_and_errors_counted_by_class():
    before = metrics.CRM_CALL_LATENCY.snapshot(provider="t-crm", operation="log_call")[2]
    assert timed_crm_call("t-crm", "log_call", lambda: "id-1") == "id-1"

    def boom() -> str:
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        timed_crm_call("t-crm", "log_call", boom)
    assert metrics.CRM_CALL_LATENCY.snapshot(provider="t-crm", operation="log_call")[2] == \
        before + 2
    assert metrics.CRM_CALL_ERRORS.value(provider="t-crm", operation="log_call",
                                         error="TimeoutError") >= 1
    metrics.observe_text_latency(1.5)
    assert metrics.TEXT_LATENCY.snapshot()[2] >= 1


def test_metrics_view_renders_the_registry_with_webhook_latency(app, runtime, webhook_secret):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    client = app.test_client()
    latency = metrics.WEBHOOK_LATENCY
    before = latency.snapshot(provider="sandbox", kind="voice")[2]
    assert post(client, "acme", "voice", missed(), webhook_secret).status_code == 200
    assert post(client, "acme", "voice", missed(), "bad-secret").status_code == 403
    assert client.post("/webhooks/nosuch/acme/voice").status_code == 404  # not observed
    response = client.get("/metrics")
    assert response.mimetype == "text/plain"
    _, types, samples = parse(response.get_data(as_text=True))
    assert types["textback_webhook_latency_seconds"] == "histogram"
    assert types["textback_webhooks_total"] == "counter"
    counts = check_histogram(samples, "textback_webhook_latency_seconds")
    assert counts[(("kind", "voice"), ("provider", "sandbox"))] == before + 2
    assert not [labels for labels in counts if ("provider", "nosuch") in labels]
    check_histogram(samples, "textback_crm_call_latency_seconds")
    check_histogram(samples, "textback_text_latency_seconds")
