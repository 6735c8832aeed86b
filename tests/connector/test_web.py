"""Health, readiness, metrics and the demo page."""

from __future__ import annotations

from connector.cli import ensure_demo_account
from tests.connector.helpers import missed, post


def test_health_and_readiness(app):
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ok"


def test_readiness_fails_when_the_database_is_gone(app, runtime):
    from sqlalchemy import create_engine

    runtime.db.engine.dispose()
    runtime.db.engine = create_engine("sqlite:////nonexistent/dir/x.db")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and "database" in response.json["problems"][0]


def test_metrics_count_webhooks_by_status(app, runtime, webhook_secret):
    from tests.connector.helpers import add_account, sandbox_account

    add_account(runtime, sandbox_account("acme", webhook_secret))
    client = app.test_client()
    post(client, "acme", "voice", missed(), webhook_secret)
    post(client, "acme", "voice", missed(), "bad-secret")
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE textback_webhooks_total counter" in text
    assert 'textback_webhooks_total{kind="voice",provider="sandbox",status="403"}' in text
    assert 'textback_webhooks_total{kind="voice",provider="sandbox",status="200"}' in text


def test_demo_page_simulates_a_call_and_shows_what_happened(app, runtime):
    assert ensure_demo_account(runtime) is True
    assert ensure_demo_account(runtime) is False  # only when no account exists
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "Acme Plumbing" in page and "Simulate a missed call" in page
    response = client.post("/demo/simulate-call", json={"from": "+14155550166"})
    assert response.status_code == 200 and response.json["call_id"]
    state = client.get("/demo/state.json").json
    assert state["calls"][0]["state"] == "texted"
    assert state["messages"][0]["customer"] == "+14155550166"
    kinds = {r["kind"] for r in state["crm_records"]}
    assert {"contact", "call", "message", "task", "lead"} <= kinds
    assert client.post("/demo/simulate-call", json={"outcome": "exploded"}).status_code == 400


def test_home_without_any_account_points_to_the_docs(app):
    page = app.test_client().get("/").get_data(as_text=True)
    assert "No account is set up yet" in page and "textback accounts import FILE" in page


def test_metrics_time_texts_and_crm_calls(app, runtime, webhook_secret):
    import re

    from tests.connector.helpers import add_account, sandbox_account

    def figure(text: str, pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    add_account(runtime, sandbox_account("acme", webhook_secret))
    client = app.test_client()
    text_count = r"textback_text_latency_seconds_count"
    crm_count = r'textback_crm_call_latency_seconds_count\{operation="create_task",provider="sandbox"\}'
    before = client.get("/metrics").get_data(as_text=True)
    post(client, "acme", "voice", missed(), webhook_secret)
    after = client.get("/metrics").get_data(as_text=True)
    # The registry is per process, so compare before and after this call.
    assert figure(after, text_count) == figure(before, text_count) + 1
    assert figure(after, crm_count) == figure(before, crm_count) + 1


def test_unknown_carrier_urls_do_not_mint_metric_series(app, webhook_secret):
    client = app.test_client()
    assert client.post("/webhooks/made-up-carrier-42/acme/voice", data=b"x").status_code == 404
    text = client.get("/metrics").get_data(as_text=True)
    assert "made-up-carrier-42" not in text
