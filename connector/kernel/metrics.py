"""Counters and histograms for Prometheus, kept by ``prometheus_client`` and summed over processes.

What is recorded, and by whom:

- ``textback_webhooks_total{kind,provider,status}``: webhooks answered, by HTTP status
  (:func:`count`, from the webhook views).
- ``textback_webhook_latency_seconds{kind,provider}``: time spent in a carrier webhook view
  (:func:`observe_webhook_latency`).
- ``textback_text_latency_seconds``: from the missed call (``Call.occurred_at``) to the carrier
  accepting the text-back (:func:`observe_text_latency`). Deliberately delayed or held texts
  (send delay, quiet hours) land in the upper buckets.
- ``textback_crm_call_latency_seconds{operation,provider}`` and
  ``textback_crm_call_errors_total{error,operation,provider}``: one CRM API call (one attempt)
  and its failures by exception class (:func:`observe_crm_call`, :func:`timed_crm_call`).
- ``textback_processes{command}``: the ``serve`` and ``worker`` processes recording into the
  metrics directory now.

Two modes. By default (tests, one-off commands) the metrics live in this process and ``GET
/metrics`` (``connector.web.health``) renders them. ``textback serve`` and ``textback worker`` call
:func:`record_in_directory` at start-up: from then on this process writes every value to its own
memory-mapped files in ``TEXTBACK_METRICS_DIR`` (prometheus_client's multi-process mode), and
``GET /metrics`` renders the sum over every file there, so the text and CRM latencies measured by
worker processes show on ``serve``.

The directory, as prometheus_client's multi-process mode wants it kept:

- A process starting up marks the processes that left files there and are gone as dead
  (``mark_process_dead``, which drops their ``textback_processes`` gauge), and folds their
  counters and histograms into ``counter_archive.db`` and ``histogram_archive.db``, so the sums
  never go backwards while the directory holds one file per process alive, not one per process
  ever started.
- When no other process records there, it starts the directory afresh (the library's "wipe the
  directory between runs"): the counters restart from zero, as after any process restart.
- A process stopping cleanly marks itself dead.

Start-up (exclusive) and ``/metrics`` (shared) take a ``flock`` on ``.lock`` in the directory, so
a scrape never reads files being folded. The processes sharing a directory must share one machine
and process-id space (a pid names each process's files).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import prometheus_client
import prometheus_client.mmap_dict
import prometheus_client.multiprocess
import prometheus_client.values
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

T = TypeVar("T")

#: Webhook views answer in milliseconds; the upper buckets catch a slow database.
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Texts go out within seconds unless a send delay or quiet hours hold them.
TEXT_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: CRM APIs answer in tens to thousands of milliseconds.
CRM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: The ``Content-Type`` of :func:`render` (the Prometheus text format, version 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: The environment variable prometheus_client's multi-process mode reads its directory from.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The lock file in the metrics directory.
LOCK_FILE = ".lock"
#: The name part of the files dead processes' counts are folded into (``counter_archive.db``).
ARCHIVE = "archive"

#: A process's file in the directory: ``counter_123.db``, ``gauge_livesum_123.db``...
_PROCESS_FILE = re.compile(r"^[a-z]+(?:_[a-z]+)?_(\d+)\.db$")
#: The file types whose values are folded when their process is gone (gauges are not used so).
_FOLDED = ("counter", "histogram")

# prometheus_client's multi-process helpers carry no type hints: used through these handles.
_values: Any = prometheus_client.values
_multiprocess: Any = prometheus_client.multiprocess
_mmap_dict: Any = prometheus_client.mmap_dict

# Multi-process files carry no creation time; single-process output is kept the same.
_disable_created: Any = prometheus_client.disable_created_metrics
_disable_created()


class _Metrics:
    """Every metric, declared in a registry of its own (built again when the mode changes).

    Label names are declared in sorted order, the order the multi-process collector renders them.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.webhooks = Counter(
            "textback_webhooks_total", "Webhooks received, by provider, kind and HTTP status.",
            ("kind", "provider", "status"), registry=registry)
        self.webhook_latency = Histogram(
            "textback_webhook_latency_seconds", "Time spent answering a carrier webhook.",
            ("kind", "provider"), buckets=WEBHOOK_BUCKETS, registry=registry)
        self.text_latency = Histogram(
            "textback_text_latency_seconds",
            "From the missed call to the carrier accepting the text-back.",
            buckets=TEXT_BUCKETS, registry=registry)
        self.crm_call_latency = Histogram(
            "textback_crm_call_latency_seconds",
            "One CRM API call (one attempt), by provider and operation.",
            ("operation", "provider"), buckets=CRM_BUCKETS, registry=registry)
        self.crm_call_errors = Counter(
            "textback_crm_call_errors_total",
            "CRM API calls that failed, by provider, operation and error class.",
            ("error", "operation", "provider"), registry=registry)
        self.processes = Gauge(
            "textback_processes", "textback processes recording into the metrics directory now, "
            "by command.", ("command",), multiprocess_mode="livesum", registry=registry)
        self._counters = {"textback_webhooks_total": self.webhooks,
                          "textback_crm_call_errors_total": self.crm_call_errors}
        self._lock = threading.Lock()

    def counter(self, name: str, labelnames: tuple[str, ...]) -> Counter:
        """The counter called ``name``, declared (help text = its name) on first use."""
        with self._lock:
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = Counter(
                    name, name, tuple(sorted(labelnames)), registry=self.registry)
        return counter


_lock = threading.Lock()
_metrics = _Metrics()
_directory: Path | None = None
#: What to put back when this process stops recording into the directory.
_saved: tuple[str | None, Any] | None = None


def directory() -> Path | None:
    """The metrics directory this process records into; None in single-process mode."""
    return _directory


# -- recording -------------------------------------------------------------------------------------


def count(name: str, **labels: str) -> None:
    """Add one to a labelled counter, declaring it (help text = its name) on first use."""
    _metrics.counter(name, tuple(labels)).labels(**labels).inc()


def observe_webhook_latency(provider: str, kind: str, seconds: float) -> None:
    """Record how long a carrier webhook view took."""
    _metrics.webhook_latency.labels(kind=kind, provider=provider).observe(seconds)


def observe_text_latency(seconds: float) -> None:
    """Record the time from a missed call to the carrier accepting its text-back."""
    _metrics.text_latency.observe(seconds)


def observe_crm_call(provider: str, operation: str, seconds: float, error: str | None) -> None:
    """Record one CRM API call; ``error`` is the exception class name when it failed.

    Keep ``operation`` and ``error`` to a fixed vocabulary (method and class names, never ids or
    messages): every distinct value is a new time series.
    """
    metrics = _metrics
    metrics.crm_call_latency.labels(operation=operation, provider=provider).observe(seconds)
    if error is not None:
        metrics.crm_call_errors.labels(error=error, operation=operation, provider=provider).inc()


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
    """A CRM adapter whose calls are timed into ``textback_crm_call_latency_seconds`` (and
    ``textback_crm_call_errors_total``); everything else passes straight through."""

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


# -- exposition ------------------------------------------------------------------------------------


def render() -> bytes:
    """Every metric in the Prometheus text format: this process's, or in multi-process mode the
    sum over every process's files in the directory."""
    path = _directory
    if path is None:
        return generate_latest(_metrics.registry)
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry, path=str(path))
    with _locked(path, exclusive=False):
        return generate_latest(registry)


def sample_value(name: str, **labels: str) -> float:
    """One sample as :func:`render` would show it (0 when absent), e.g.
    ``sample_value("textback_text_latency_seconds_count")``; for tests and checks."""
    path = _directory
    if path is None:
        value = _metrics.registry.get_sample_value(name, labels)
    else:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry, path=str(path))
        with _locked(path, exclusive=False):
            value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# -- the multi-process directory ---------------------------------------------------------------


def record_in_directory(path: Path, command: str) -> None:
    """From now on record into ``path``, summed there with the other processes' (``textback
    serve`` and ``textback worker`` call this at start-up, before recording anything).

    Creates the directory, tidies what dead processes left there (see the module's docstring),
    then switches prometheus_client to its multi-process mode and counts this process in
    ``textback_processes{command}``. Values recorded before in this process are dropped. Raises
    OSError when the directory cannot be created or written.
    """
    global _metrics, _directory, _saved
    path = Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    with _lock:
        if _directory is not None:
            _stop()
        # Held until this process's files exist, so a process starting beside it sees them.
        with _locked(path, exclusive=True):
            _tidy(path)
            _saved = (os.environ.get(MULTIPROC_ENV), _values.ValueClass)
            os.environ[MULTIPROC_ENV] = str(path)
            _values.close_all_multiprocess_files()
            _values.ValueClass = _values.MultiProcessValue()
            _directory = path
            _metrics = _Metrics()
            _metrics.processes.labels(command=command).set(1)


def stop_recording_in_directory() -> None:
    """Mark this process dead in the directory and record in this process alone again (on a
    clean exit of ``serve`` or ``worker``). Its counts stay in the directory's sums."""
    with _lock:
        _stop()


def _stop() -> None:
    global _metrics, _directory, _saved
    path = _directory
    if path is None or _saved is None:
        return
    with contextlib.suppress(OSError):
        _multiprocess.mark_process_dead(os.getpid(), str(path))
    env, value_class = _saved
    _values.close_all_multiprocess_files()
    _values.ValueClass = value_class
    if env is None:
        os.environ.pop(MULTIPROC_ENV, None)
    else:
        os.environ[MULTIPROC_ENV] = env
    _directory, _saved = None, None
    _metrics = _Metrics()


@contextlib.contextmanager
def _locked(path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the directory's lock: exclusive to change files, shared to read them."""
    import fcntl  # Unix only, like the pid-named files of the multi-process mode

    with open(path / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _process_files(path: Path) -> dict[int, list[Path]]:
    """The files of each process (by pid) in the directory; the archive files are not listed."""
    found: dict[int, list[Path]] = {}
    for file in path.glob("*.db"):
        match = _PROCESS_FILE.match(file.name)
        if match and int(match.group(1)) > 0:
            found.setdefault(int(match.group(1)), []).append(file)
    return found


def _tidy(path: Path) -> None:
    """Start afresh when no other process records here; else mark the dead ones and fold their
    counts into the archive. The caller holds the exclusive lock."""
    files = _process_files(path)
    others = {pid for pid in files if pid != os.getpid()}
    dead = {pid for pid in others if not _alive(pid)}
    if not others - dead:
        for file in path.glob("*.db"):
            file.unlink()
        return
    for pid in sorted(dead):
        _multiprocess.mark_process_dead(pid, str(path))
    _fold(path, sorted(dead))


def _fold(path: Path, dead: list[int]) -> None:
    """Merge the counters and histograms of ``dead`` processes into the archive files."""
    for kind in _FOLDED:
        sources = [file for pid in dead if (file := path / f"{kind}_{pid}.db").exists()]
        if not sources:
            continue
        archive = path / f"{kind}_{ARCHIVE}.db"
        inputs = [*sources, archive] if archive.exists() else sources
        merged = _multiprocess.MultiProcessCollector.merge([str(f) for f in inputs], accumulate=False)
        partial = path / f"{kind}_{ARCHIVE}.partial"  # not *.db: invisible to the collector
        partial.unlink(missing_ok=True)
        book = _mmap_dict.MmapedDict(str(partial))
        try:
            for metric in merged:
                for sample in metric.samples:
                    labels: Mapping[str, str] = sample.labels
                    key = _mmap_dict.mmap_key(metric.name, sample.name, list(labels), list(labels.values()),
                                   metric.documentation)
                    book.write_value(key, sample.value, 0.0)
        finally:
            book.close()
        os.replace(partial, archive)
        for file in sources:
            file.unlink()
