"""``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus text format, see ``connector.kernel.metrics``:
in ``textback serve`` it sums what every process recording into ``TEXTBACK_METRICS_DIR`` measured,
workers included)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from connector.kernel.metrics import CONTENT_TYPE, count, observe_webhook_latency, render

__all__ = ["bp", "count", "timed_webhook"]

bp = Blueprint("health", __name__)


def timed_webhook(view: Callable[..., Any]) -> Callable[..., Any]:
    """Time a webhook view into ``textback_webhook_latency_seconds{provider, kind}``.

    The labels are the view's ``carrier`` and ``kind`` URL arguments. Aborts (404 for an unknown
    carrier, account or kind) are not observed, so strangers' URLs never become time series;
    answers and unexpected errors (500) are.
    """

    def observe(kwargs: dict[str, Any], start: float) -> None:
        observe_webhook_latency(str(kwargs.get("carrier")), str(kwargs.get("kind")),
                                time.perf_counter() - start)

    @functools.wraps(view)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            response = view(*args, **kwargs)
        except HTTPException:
            raise  # an abort: not observed
        except Exception:
            observe(kwargs, start)
            raise
        observe(kwargs, start)
        return response

    return timed


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """The database answers and the queue can be reached."""
    runtime = current_app.extensions["textback"]
    problems = []
    try:
        with runtime.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        problems.append(f"database: {type(exc).__name__}")
    try:
        runtime.huey.pending_count()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"queue: {type(exc).__name__}")
    if problems:
        return jsonify(status="unavailable", problems=problems), 503
    return jsonify(status="ok"), 200


@bp.get("/metrics")
def metrics() -> Response:
    """Counters and histograms in the Prometheus text exposition format (summed over the
    processes recording into the metrics directory, when this one does)."""
    return Response(render(), content_type=CONTENT_TYPE)
