"""Jobs never hold a write transaction across another write or a network call, and every
sweeper step runs on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from connector.jobs.sweeper import sweep
from connector.runtime import Runtime
from connector.storage.db import upgrade
from connector.storage.models import Call, EscalationTimer, Message, SandboxRecord
from connector.web import create_app
from tests.conftest import make_settings
from tests.connector.helpers import BUSINESS, add_account, missed, post, records, sandbox_account

CALLER = "+14155552001"
DANA, SAM = "+14155550181", "+14155550182"


def account(secret: str) -> dict[str, Any]:
    doc = sandbox_account("acme", secret)
    doc["routing"] = {
        "owners": [{"id": "101", "name": "Dana", "mobile": DANA},
                   {"id": "102", "name": "Sam", "mobile": SAM}],
        "default_owner": "101", "backup_owner": "102", "escalation": {"minutes": 15},
    }
    return doc


def reply(client: Any, secret: str, n: int) -> Any:
    return post(client, "acme", "sms", {"message_id": f"R{n}", "from": CALLER, "to": BUSINESS,
                                        "body": "Hello?"}, secret)


def test_a_second_reply_does_not_hold_the_database(app, runtime, webhook_secret):
    # On SQLite a write transaction left open blocks every other connection, and the sandbox CRM
    # writes on its own connection: make a stall fail in 2 s rather than wait out 30.
    @event.listens_for(runtime.db.engine, "connect")
    def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=2000")

    runtime.db.engine.dispose()
    add_account(runtime, account(webhook_secret))
    client = app.test_client()
    assert post(client, "acme", "voice", missed(caller=CALLER), webhook_secret).status_code == 200
    assert reply(client, webhook_secret, 1).status_code == 200
    # The second reply meets the escalation timer the first one armed.
    assert reply(client, webhook_secret, 2).status_code == 200

    with runtime.db.session() as s:
        inbound = s.scalars(select(Message).where(Message.direction == "inbound")).all()
        assert sorted(m.crm_state for m in inbound) == ["done", "done"]
        assert len(s.scalars(select(EscalationTimer)).all()) == 1
    logged = [r for r in records(runtime, "acme", "message") if r["direction"] == "inbound"]
    assert len(logged) == 2


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Runtime]:
    """A runtime on SQLite or on a fresh PostgreSQL schema, jobs inline."""
    overrides = {} if request.param == "sqlite" else {
        "database_url": request.getfixturevalue("pg_url")}
    settings = make_settings(tmp_path, **overrides)
    upgrade(settings.database_url)
    runtime = Runtime(settings, immediate_queue=True)
    yield runtime
    runtime.close()


def test_every_sweeper_step_runs_on_both_databases(backend, webhook_secret):
    add_account(backend, account(webhook_secret))
    client = create_app(backend).test_client()
    post(client, "acme", "voice", missed("C1", caller=CALLER), webhook_secret)
    post(client, "acme", "voice", missed("C2", caller="+14155552002"), webhook_secret)
    reply(client, webhook_secret, 1)
    post(client, "acme", "sms", {"message_id": "R2", "from": "+14155552002", "to": BUSINESS,
                                 "body": "Anyone?"}, webhook_secret)
    with backend.db.session() as s:
        # A rep completes the first caller's task in the CRM; the second caller's timer is due.
        task = next(r for r in s.scalars(select(SandboxRecord).where(
            SandboxRecord.kind == "task")) if CALLER in r.data["body"])
        task.data = {**task.data, "status": "COMPLETED"}
        for timer in s.scalars(select(EscalationTimer)):
            timer.due_at -= timedelta(minutes=16)

    sweep(backend)  # polls completed tasks, fires due timers, purges spent nonces

    with backend.db.session() as s:
        by_caller = {c.caller: c for c in s.scalars(select(Call))}
        assert by_caller[CALLER].human_responded_at is not None  # the completed task settled it
        timers = {t.call_id: t for t in s.scalars(select(EscalationTimer))}
        assert timers[by_caller[CALLER].id].fired_at is None
        assert timers[by_caller["+14155552002"].id].fired_at is not None  # escalated
    escalations = [m for m in records(backend, "acme", "sms") if m["to"] == SAM]
    assert len(escalations) == 1 and "escalated" in escalations[0]["body"]


def test_a_full_caller_verification_status_is_stored_on_both_databases(backend, webhook_secret):
    # Twilio's StirVerstat is 22 characters; PostgreSQL refused it in a 16-character column.
    add_account(backend, sandbox_account("acme", webhook_secret))
    client = create_app(backend).test_client()
    answer = post(client, "acme", "voice",
                  missed(caller=CALLER, attestation="TN-Validation-Passed-A"), webhook_secret)
    assert answer.status_code == 200
    with backend.db.session() as s:
        call = s.scalar(select(Call))
        assert call.attestation == "TN-Validation-Passed-A" and call.state == "texted"
