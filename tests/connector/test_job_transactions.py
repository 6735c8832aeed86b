"""Jobs never hold a write transaction across another write or a network call, a text-back
takes no more transactions than its steps need, and every sweeper step runs on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from connector.jobs.facts import cached_line_type, remember_line_type
from connector.jobs.sweeper import sweep
from connector.jobs.text_back import send_text_back
from connector.kernel import clock
from connector.runtime import Runtime
from connector.storage.db import upgrade
from connector.storage.models import Call, EscalationTimer, LineType, Message, SandboxRecord
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


def queued_missed_call(runtime: Runtime, secret: str, monkeypatch: pytest.MonkeyPatch, *,
                       policy: dict[str, Any]) -> str:
    """The id of a missed call to the sandbox account ``acme`` (with ``policy``) whose text-back
    job is queued, not run; its CRM sync is left out."""
    doc = sandbox_account("acme", secret)
    if policy:
        doc["policy"] = policy
    add_account(runtime, doc)
    waiting: list[str] = []
    monkeypatch.setattr(runtime.jobs, "enqueue_text_back", lambda call_id, **_: waiting.append(
        call_id))
    monkeypatch.setattr(runtime.jobs, "enqueue_crm_sync", lambda call_id: None)
    post(create_app(runtime).test_client(), "acme", "voice", missed(caller=CALLER), secret)
    assert len(waiting) == 1
    return waiting[0]


def text_back_statements(runtime: Runtime, call_id: str) -> list[str]:
    """What one text-back job's own connection runs, in order, ``COMMIT`` included, each time
    the job takes it from the pool marked ``CHECKOUT`` (the sandbox carrier's own writes left
    out)."""
    steps: list[tuple[int, str]] = []

    def statement(conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        steps.append((id(conn.connection.dbapi_connection), " ".join(sql.split())))

    def commit(conn: Any) -> None:
        steps.append((id(conn.connection.dbapi_connection), "COMMIT"))

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        # On PostgreSQL each checkout costs the pool's liveness check, a round trip of its own.
        steps.append((id(dbapi_connection), "CHECKOUT"))

    event.listen(runtime.db.engine, "before_cursor_execute", statement)
    event.listen(runtime.db.engine, "commit", commit)
    event.listen(runtime.db.engine.pool, "checkout", checkout)
    try:
        send_text_back(runtime, call_id)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", statement)
        event.remove(runtime.db.engine, "commit", commit)
        event.remove(runtime.db.engine.pool, "checkout", checkout)

    job = steps[0][0]  # the job's connection is the first one taken
    ran: list[str] = []
    for conn, sql in steps:  # the sandbox carrier's own write may borrow the same connection
        if conn == job and not (sql == "COMMIT" and "sandbox_records" in ran[-1]):
            ran.append(sql)
    return [sql for sql in ran if "sandbox_records" not in sql]


def test_a_text_back_takes_three_transactions_on_both_databases(backend, webhook_secret,
                                                                monkeypatch):
    """Lease; decision with its intent row and first send attempt; outcome with the lease given
    back: a text-back costs the database no more round trips than that (a busy worker's
    text-backs share a machine with the webhooks)."""
    call_id = queued_missed_call(backend, webhook_secret, monkeypatch, policy={})

    ran = text_back_statements(backend, call_id)
    # One connection for the whole job: the pool's liveness check is paid once, not once for
    # each of the three transactions.
    assert ran.count("CHECKOUT") == 1 and ran[0] == "CHECKOUT"
    ran = ran[1:]
    assert ran[0].startswith("UPDATE calls SET lease_until")
    assert ran.count("COMMIT") == 3 and ran[-1] == "COMMIT"
    # The intent row goes in with its first send attempt, before the carrier call, and is not
    # written again until the outcome.
    decision = ran[ran.index("COMMIT") + 1:ran.index("COMMIT", ran.index("COMMIT") + 1)]
    assert len([s for s in decision if s.startswith("INSERT INTO messages")]) == 1
    assert [s.split(" ")[0] for s in ran
            if s.startswith(("INSERT INTO messages", "UPDATE messages"))] == ["INSERT", "UPDATE"]
    assert not [s for s in ran if s.startswith("SELECT messages.")]  # nor read back
    # The opt-out and a call since are checked in one statement, once.
    assert len([s for s in ran if "FROM call_activity" in s]) == 1
    # The line type comes with the other facts and is remembered by one upsert, no savepoint.
    assert [s.split(" ")[0] for s in ran if "line_types" in s] == ["SELECT", "INSERT"]
    assert not [s for s in ran if "SAVEPOINT" in s]
    # The lease goes back with the outcome.
    last_call_write = [s for s in ran if s.startswith("UPDATE calls")][-1]
    assert "state=" in last_call_write and "lease_until=" in last_call_write
    assert len(ran) - ran.count("COMMIT") <= 15
    with backend.db.session() as s:
        call = s.scalar(select(Call))
        assert call.state == "texted" and call.lease_until is None and call.line_type
        text = s.scalar(select(Message))
        assert (text.status, text.send_attempts) == ("sent", 1) and text.last_attempt_at
    assert len(records(backend, "acme", "sms")) == 1


def test_a_held_text_goes_in_three_transactions_on_both_databases(backend, webhook_secret,
                                                                  monkeypatch, frozen_clock):
    """When a held text is due: the lease; the call decided with the send attempt; the outcome."""
    call_id = queued_missed_call(backend, webhook_secret, monkeypatch,
                                 policy={"send_delay_seconds": 120})
    send_text_back(backend, call_id)  # decides, and holds the text for two minutes
    with backend.db.session() as s:
        assert s.scalar(select(Call)).state == "scheduled"
    frozen_clock.shift(121)

    ran = text_back_statements(backend, call_id)
    assert ran.count("CHECKOUT") == 1 and ran[0] == "CHECKOUT"
    ran = ran[1:]
    assert ran[0].startswith("UPDATE calls SET lease_until")
    assert ran.count("COMMIT") == 3 and ran[-1] == "COMMIT"
    # The call is decided in the same write as the send attempt, before the carrier call.
    attempt = ran[ran.index("COMMIT") + 1:ran.index("COMMIT", ran.index("COMMIT") + 1)]
    assert any(s.startswith("UPDATE calls SET state=") for s in attempt)
    assert any(s.startswith("UPDATE messages SET send_attempts=") for s in attempt)
    with backend.db.session() as s:
        assert s.scalar(select(Call)).state == "texted"
        text = s.scalar(select(Message))
        assert (text.status, text.send_attempts) == ("sent", 1)
    assert len(records(backend, "acme", "sms")) == 1


def test_a_line_type_lookup_is_remembered_and_replaces_an_expired_one(backend, webhook_secret):
    add_account(backend, sandbox_account("acme", webhook_secret))
    now = clock.now()
    with backend.db.session() as s:
        remember_line_type(s, "acme", CALLER, "landline", now - timedelta(days=400))
    with backend.db.session() as s:
        stale = s.get(LineType, ("acme", CALLER))
        assert stale is not None and stale.line_type == "landline"
        assert cached_line_type(s, "acme", CALLER, timedelta(days=90), now) is None  # expired
        remember_line_type(s, "acme", CALLER, "mobile", now)
        # The row this session read before is not served stale.
        assert cached_line_type(s, "acme", CALLER, timedelta(days=90), now) == "mobile"
    with backend.db.session() as s:
        rows = s.scalars(select(LineType)).all()
        assert [(r.number, r.line_type) for r in rows] == [(CALLER, "mobile")]
        assert abs(rows[0].looked_up_at - now) < timedelta(seconds=1)
