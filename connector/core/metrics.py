"""Process-wide counters and histograms, rendered in the Prometheus text exposition format.

A deliberately small registry (no client library): labelled counters and fixed-bucket histograms,
each guarded by its own lock so job threads and request threads can record at once. ``GET
/metrics`` (``connector.web.health``) renders :data:`REGISTRY`. Format reference:
https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

What is recorded, and by whom:

- ``textback_webhooks_total{provider,kind,status}``: webhooks answered, by HTTP status
  (:func:`count`, from the webhook views).
- ``textback_webhook_latency_seconds{provider,kind}``: time spent in a carrier webhook view
  (:func:`observe_webhook_latency`).
- ``textback_text_latency_seconds``: from the missed call (``Call.occurred_at``) to the carrier
  accepting the text-back (:func:`observe_text_latency`). Deliberately delayed or held texts
  (send delay, quiet hours) land in the upper buckets.
- ``textback_crm_call_latency_seconds{provider,operation}`` and
  ``textback_crm_call_errors_total{provider,operation,error}``: one CRM API call (one attempt)
  and its failures by exception class (:func:`observe_crm_call`, :func:`timed_crm_call`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

LabelValues = tuple[str, ...]

#: Webhook views answer in milliseconds; the upper buckets catch a slow database.
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Texts go out within seconds unless a send delay or quiet hours hold them.
TEXT_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: CRM APIs answer in tens to thousands of milliseconds.
CRM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    """What counters and histograms share: a name, help text, label names, a lock."""

    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames: tuple[str, ...] = tuple(sorted(labelnames))
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {list(self.labelnames)}, not {sorted(labels)}"
            )
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        """The ``# HELP`` and ``# TYPE`` lines."""
        return [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        """The sample lines, one per label set (and bucket)."""
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelValues, float] = {} if labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, /, **labels: str) -> None:
        """Add ``amount`` (never negative) to the count of this label set."""
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The current count of one label set (0 when never incremented)."""
        key = self._key(labels)
        with self._lock:
            return self._values.get(key, 0.0)

    def samples(self) -> list[str]:
        """One line per label set, sorted."""
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]


class Histogram(_Metric):
    """Observations counted into fixed buckets per label set, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Iterable[float] = WEBHOOK_BUCKETS) -> None:
        super().__init__(name, help_text, labelnames)
        if "le" in self.labelnames:
            raise ValueError("'le' is reserved for histogram buckets")
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError("histogram buckets must be distinct and at least one")
        self.buckets: tuple[float, ...] = (*bounds, math.inf)
        # Per label set: a count per bucket (not cumulative), then the sum.
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}
        if not labelnames:
            self._series[()] = ([0] * len(self.buckets), [0.0])

    def observe(self, value: float, /, **labels: str) -> None:
        """Record one observation (seconds, for every histogram here)."""
        if math.isnan(value):
            raise ValueError(f"{self.name}: NaN observed")
        key = self._key(labels)
        index = next(i for i, bound in enumerate(self.buckets) if value <= bound)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = ([0] * len(self.buckets), [0.0])
            series[0][index] += 1
            series[1][0] += value

    def snapshot(self, **labels: str) -> tuple[list[int], float, int]:
        """Cumulative bucket counts, the sum and the count of one label set."""
        key = self._key(labels)
        with self._lock:
            counts, total = self._series.get(key, ([0] * len(self.buckets), [0.0]))
            counts = list(counts)
            sum_ = total[0]
        cumulative = [sum(counts[: i + 1]) for i in range(len(counts))]
        return cumulative, sum_, cumulative[-1]

    def samples(self) -> list[str]:
        """``_bucket`` lines (cumulative, ending in ``+Inf``), ``_sum`` and ``_count``."""
        with self._lock:
            items = sorted((k, (list(c), s[0])) for k, (c, s) in self._series.items())
        lines: list[str] = []
        for key, (counts, total) in items:
            running = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                running += n
                le = f'le="{_number(bound) if math.isinf(bound) else repr(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {running}")
            plain = _labels(self.labelnames, key)
            lines.append(f"{self.name}_sum{plain} {_number(total)}")
            lines.append(f"{self.name}_count{plain} {running}")
        return lines


class Registry:
    """The metrics of one process, by name; renders them all for ``GET /metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, _Metric] = {}

    def _get(self, cls: type[_Metric], name: str, make: Callable[[], _Metric]) -> _Metric:
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = make()
        if not isinstance(metric, cls):
            raise ValueError(f"{name} is a {metric.kind}, not a {cls.kind}")
        return metric

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        """The counter called ``name``, declared on first use."""
        metric = self._get(Counter, name, lambda: Counter(name, help_text, labelnames))
        assert isinstance(metric, Counter)  # noqa: S101 - checked by _get
        return metric

    def histogram(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                  buckets: Iterable[float] = WEBHOOK_BUCKETS) -> Histogram:
        """The histogram called ``name``, declared on first use."""
        metric = self._get(Histogram, name,
                           lambda: Histogram(name, help_text, labelnames, buckets))
        assert isinstance(metric, Histogram)  # noqa: S101 - checked by _get
        return metric

    def render(self) -> str:
        """Every metric in the text exposition format (version 0.0.4), sorted by name."""
        with self._lock:
            metrics = sorted(self._metrics.items())
        lines: list[str] = []
        for _name, metric in metrics:
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"


#: The registry ``GET /metrics`` renders.
REGISTRY = Registry()

WEBHOOKS = REGISTRY.counter(
    "textback_webhooks_total", "Webhooks received, by provider, kind and HTTP status.",
    ("provider", "kind", "status"))
WEBHOOK_LATENCY = REGISTRY.histogram(
    "textback_webhook_latency_seconds", "Time spent answering a carrier webhook.",
    ("provider", "kind"), WEBHOOK_BUCKETS)
TEXT_LATENCY = REGISTRY.histogram(
    "textback_text_latency_seconds",
    "From the missed call to the carrier accepting the text-back.", (), TEXT_BUCKETS)
CRM_CALL_LATENCY = REGISTRY.histogram(
    "textback_crm_call_latency_seconds", "One CRM API call (one attempt), by provider and "
    "operation.", ("provider", "operation"), CRM_BUCKETS)
CRM_CALL_ERRORS = REGISTRY.counter(
    "textback_crm_call_errors_total", "CRM API calls that failed, by provider, operation and "
    "error class.", ("provider", "operation", "error"))


def count(name: str, **labels: str) -> None:
    """Add one to a labelled counter, declaring it (help text = its name) on first use."""
    REGISTRY.counter(name, name, tuple(labels)).inc(**labels)


def observe_webhook_latency(provider: str, kind: str, seconds: float) -> None:
    """Record how long a carrier webhook view took."""
    WEBHOOK_LATENCY.observe(seconds, provider=provider, kind=kind)


def observe_text_latency(seconds: float) -> None:
    """Record the time from a missed call to the carrier accepting its text-back."""
    TEXT_LATENCY.observe(seconds)


def observe_crm_call(provider: str, operation: str, seconds: float, error: str | None) -> None:
    """Record one CRM API call; ``error`` is the exception class name when it failed.

    Keep ``operation`` and ``error`` to a fixed vocabulary (method and class names, never ids or
    messages): every distinct value is a new time series.
    """
    CRM_CALL_LATENCY.observe(seconds, provider=provider, operation=operation)
    if error is not None:
        CRM_CALL_ERRORS.inc(provider=provider, operation=operation, error=error)


def timed_crm_call(provider: str, operation: str, fn: Callable[[], T]) -> T:
    """Run one CRM API call and record its latency, and its error class when it raises.

    Meant inside the retry layer, so each attempt is one observation:
    ``call_with_retries(lambda: timed_crm_call(crm.name, "log_call", lambda: crm.log_call(e)))``.
    """
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:
        observe_crm_call(provider, operation, time.perf_counter() - start, type(exc).__name__)
        raise
    observe_crm_call(provider, operation, time.perf_counter() - start, None)
    return result


#: The CRM adapter methods that call the CRM, timed per provider and operation.
CRM_OPERATIONS = frozenset({
    "find_or_create_contact", "log_call", "log_message", "create_task", "append_to_task",
    "set_pipeline_stage", "set_opt_out", "raise_task_priority", "task_completed",
})


class InstrumentedCrm:
    """A CRM adapter whose calls are timed into ``textback_crm_call_seconds``; everything else
    passes straight through."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._adapter, name)
        if name not in CRM_OPERATIONS:
            return attr
        provider = self._adapter.name

        def timed(*args: Any, **kwargs: Any) -> Any:
            return timed_crm_call(provider, name, lambda: attr(*args, **kwargs))

        return timed

    def __repr__(self) -> str:
        return repr(self._adapter)
