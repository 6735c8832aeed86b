"""A worker-like second process for the multi-process metrics tests.

``python -m tests.connector.metrics_child`` loads the ``TEXTBACK_*`` settings from its environment,
starts recording metrics the way ``textback worker`` does (:func:`connector.cli.record_metrics`),
records one text latency and two CRM calls through :class:`~connector.kernel.metrics.InstrumentedCrm`
(one fails with TimeoutError), prints ``recorded <pid>`` and waits: a line on stdin makes it stop
cleanly, as ``textback worker`` does on SIGTERM; the test may also kill it.
"""

from __future__ import annotations

import os
import sys

from connector.cli import record_metrics
from connector.kernel import metrics
from connector.settings.config import load_settings

#: The text latency the child records, in seconds (the 60 s bucket).
TEXT_LATENCY = 42.0
#: The CRM provider label of the child's calls.
PROVIDER = "child-crm"


class StubCrm:
    """Answers ``log_call`` at once and fails ``create_task`` with a timeout."""

    name = PROVIDER

    def log_call(self, note: str) -> str:
        """A logged call's id."""
        return f"call-{len(note)}"

    def create_task(self, title: str) -> str:
        """Never answers in time."""
        raise TimeoutError(title)


def main() -> int:
    """Record, report, then wait for the word to stop."""
    record_metrics(load_settings(), "worker")
    metrics.observe_text_latency(TEXT_LATENCY)
    crm = metrics.InstrumentedCrm(StubCrm())
    crm.log_call("missed call")
    try:
        crm.create_task("call back")
    except TimeoutError:
        pass
    print(f"recorded {os.getpid()}", flush=True)
    sys.stdin.readline()
    metrics.stop_recording_in_directory()
    return 0


if __name__ == "__main__":
    sys.exit(main())
