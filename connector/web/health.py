"""``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

import threading
from collections import Counter

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

bp = Blueprint("health", __name__)

_lock = threading.Lock()
_counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

HELP = {
    "textback_webhooks_total": "Webhooks received, by provider, kind and HTTP status.",
}


def count(name: str, **labels: str) -> None:
    """Add one to a labelled counter."""
    with _lock:
        _counters[(name, tuple(sorted(labels.items())))] += 1


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
    """Counters in the Prometheus text exposition format."""
    lines: list[str] = []
    with _lock:
        items = sorted(_counters.items())
    seen: set[str] = set()
    for (name, labels), value in items:
        if name not in seen:
            lines.append(f"# HELP {name} {HELP.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            seen.add(name)
        label_text = ",".join(f'{k}="{v}"' for k, v in labels)
        lines.append(f"{name}{{{label_text}}} {value}")
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
