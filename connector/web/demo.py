"""The demo page at ``/``: the demo account, a "simulate a missed call" button, and what happened.

Only accounts on the built-in sandbox carrier can be simulated, so the page can never text a real
customer.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from connector.kernel import safe_json
from connector.kernel.errors import ConfigurationError, MalformedWebhookError
from connector.runtime import Runtime
from connector.simulate import DEMO_ACCOUNT_ID, account_snapshot, simulate_call
from connector.storage.models import Account

bp = Blueprint("demo", __name__)

OUTCOMES = ("no-answer", "busy", "canceled", "failed", "voicemail", "answered")


@bp.get("/")
def index() -> str:
    """The demo account and the simulate button, or a pointer to the docs when there is none."""
    runtime: Runtime = current_app.extensions["textback"]
    with runtime.db.session() as s:
        account = s.get(Account, DEMO_ACCOUNT_ID)
        info = None
        if account is not None and account.carrier_kind == "sandbox":
            info = {
                "id": account.id,
                "name": account.name,
                "number": account.settings["carrier"]["numbers"][0],
                "timezone": account.timezone,
            }
    return render_template("demo.html", account=info, outcomes=OUTCOMES)


@bp.post("/demo/simulate-call")
def simulate() -> tuple[Response, int]:
    """Simulate a missed call from the number in the form to the demo account."""
    runtime: Runtime = current_app.extensions["textback"]
    payload: Any = request.form
    if request.is_json:
        try:
            payload = safe_json.loads(request.get_data(cache=True), what="demo request")
        except MalformedWebhookError as exc:
            return jsonify(error=str(exc)), 400
        if not isinstance(payload, dict):
            return jsonify(error="the request body must be a JSON object"), 400
    caller = str(payload.get("from") or "+14155550123")
    outcome = str(payload.get("outcome") or "no-answer")
    if outcome not in OUTCOMES:
        return jsonify(error=f"outcome must be one of {', '.join(OUTCOMES)}"), 400
    try:
        status, call_id = simulate_call(
            runtime, current_app._get_current_object(), DEMO_ACCOUNT_ID, caller, outcome  # type: ignore[attr-defined]
        )
    except ConfigurationError as exc:
        return jsonify(error=str(exc)), 404
    if status >= 400:
        return jsonify(error=f"the webhook answered {status}"), 400
    return jsonify(call_id=call_id, answered=call_id is None), 200


@bp.get("/demo/state.json")
def state() -> Response:
    """Recent calls, texts and CRM records of the demo account."""
    runtime: Runtime = current_app.extensions["textback"]
    return jsonify(account_snapshot(runtime, DEMO_ACCOUNT_ID))
