"""Storage and queue on every backend: SQLite always; PostgreSQL and Redis where they answer.

The PostgreSQL and Redis variants skip with the reason when no server answers on 127.0.0.1
(they do in CI).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import inspect, select

from connector.jobs import text_back as workflow
from connector.jobs.intake import record_missed_call
from connector.jobs.queue import POLL_MAX_DELAY, PRIORITY_CRM, PRIORITY_TEXT, make_consumer
from connector.kernel import clock
from connector.kernel.events import CallOutcome, MissedCall
from connector.runtime import Runtime
from connector.storage.db import upgrade
from connector.storage.models import Account, Call
from tests.conftest import make_settings
from tests.connector.helpers import CALLER, add_account, missed, post, records, sandbox_account

TABLES = {
    "accounts", "webhook_receipts", "calls", "messages", "caller_states", "opt_outs",
    "crm_links", "call_events", "sandbox_records", "alembic_version",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return str(request.getfixturevalue("redis_url"))


def _runtime(tmp_path, database_url: str, queue_url: str | None = None, **kw) -> Runtime:  # type: ignore[no-untyped-def]
    overrides = {"database_url": database_url}
    if queue_url:
        overrides["queue_url"] = queue_url
    settings = make_settings(tmp_path, **overrides)
    upgrade(settings.database_url)
    # A queue name of its own, so runs sharing one Redis server never see each other's jobs.
    return Runtime(settings, queue_name="textback-test-" + uuid.uuid4().hex[:8], **kw)


def test_migrations_create_every_table(tmp_path, database_url):
    rt = _runtime(tmp_path, database_url, immediate_queue=True)
    try:
        assert TABLES <= set(inspect(rt.db.engine).get_table_names())
        upgrade(database_url)  # running it again is harmless
    finally:
        rt.close()


def test_workflow_end_to_end_on_the_database(tmp_path, database_url, webhook_secret):
    from connector.web import create_app

    rt = _runtime(tmp_path, database_url, immediate_queue=True)
    try:
        add_account(rt, sandbox_account("acme", webhook_secret))
        client = create_app(rt).test_client()
        for _ in range(3):
            assert post(client, "acme", "voice", missed(), webhook_secret).status_code == 200
        assert len(records(rt, "acme", "sms")) == 1
        assert len(records(rt, "acme", "task")) == 1
        with rt.db.session() as s:
            call = s.scalar(select(Call))
            assert call.occurred_at.tzinfo is not None and call.crm_state == "done"
    finally:
        rt.close()


def test_concurrent_callbacks_for_one_call_make_one_row(tmp_path, database_url, webhook_secret):
    rt = _runtime(tmp_path, database_url, immediate_queue=True)
    try:
        add_account(rt, sandbox_account("acme", webhook_secret))
        event = MissedCall("sandbox", "CA-same", CALLER, "+14155550100", CallOutcome.NO_ANSWER,
                           clock.now())
        barrier = threading.Barrier(8)

        def intake() -> bool:
            barrier.wait()
            with rt.db.session() as s:
                account = s.get(Account, "acme")
                _, created = record_missed_call(s, account, event)
                return created

        with ThreadPoolExecutor(8) as pool:
            created = list(pool.map(lambda _: intake(), range(8)))
        assert created.count(True) == 1
        with rt.db.session() as s:
            assert len(s.scalars(select(Call)).all()) == 1
    finally:
        rt.close()


def test_concurrent_calls_from_one_caller_get_one_text(tmp_path, database_url, webhook_secret):
    """Two workers deciding two calls from one number at once: the cooldown claim is atomic."""
    rt = _runtime(tmp_path, database_url, immediate_queue=True)
    try:
        add_account(rt, sandbox_account("acme", webhook_secret))
        ids = []
        with rt.db.session() as s:
            account = s.get(Account, "acme")
            for n in range(6):
                event = MissedCall("sandbox", f"CA{n}", CALLER, "+14155550100",
                                   CallOutcome.NO_ANSWER, clock.now())
                call_id, _ = record_missed_call(s, account, event)
                ids.append(call_id)
        barrier = threading.Barrier(len(ids))

        def run(call_id: str) -> None:
            barrier.wait()
            workflow.send_text_back(rt, call_id)

        with ThreadPoolExecutor(len(ids)) as pool:
            list(pool.map(run, ids))
        assert len(records(rt, "acme", "sms")) == 1
        with rt.db.session() as s:
            reasons = sorted(c.reason for c in s.scalars(select(Call)))
        assert reasons.count("missed") == 1
        assert set(reasons) - {"missed"} <= {"burst", "cooldown"}
    finally:
        rt.close()


@pytest.fixture
def queued_runtime(tmp_path, queue_url) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    rt = _runtime(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", queue_url)
    yield rt
    rt.huey.flush()
    rt.crm_huey.flush()
    rt.close()


def test_consumer_threads_run_jobs_from_the_queue(queued_runtime):
    done = threading.Event()
    ran_on: list[str] = []

    @queued_runtime.huey.task(name="probe")
    def probe(tag: str) -> None:
        ran_on.append(tag)
        done.set()

    consumer = make_consumer(queued_runtime.huey, 2, embedded=True)
    consumer.start()
    try:
        probe("hello")
        assert done.wait(10), "the consumer never ran the job"
        assert ran_on == ["hello"]
    finally:
        consumer.stop(graceful=True)


def test_the_two_lanes_are_separate_queues(queued_runtime):
    texts, crm = queued_runtime.huey, queued_runtime.crm_huey
    assert texts.name != crm.name
    assert queued_runtime.jobs._text_back.huey is texts
    assert queued_runtime.jobs._crm_sync.huey is crm and queued_runtime.jobs._sweep.huey is crm


def test_a_busy_crm_lane_does_not_hold_up_texts(queued_runtime):
    """Every CRM thread stuck on a slow CRM: a text still runs at once on its own lane."""
    release = threading.Event()
    text_ran = threading.Event()

    @queued_runtime.crm_huey.task(name="slow_crm_probe")
    def slow() -> None:
        release.wait(10)

    @queued_runtime.huey.task(name="quick_text_probe")
    def quick() -> None:
        text_ran.set()

    consumers = queued_runtime.consumers(1, 2)
    for consumer in consumers:
        consumer.start()
    try:
        for _ in range(4):
            slow()
        time.sleep(0.3)
        quick()
        assert text_ran.wait(5), "the text waited for the CRM lane"
    finally:
        release.set()
        for consumer in consumers:
            consumer.stop(graceful=True)


def test_text_jobs_run_before_waiting_crm_jobs(queued_runtime):
    order: list[str] = []
    finished = threading.Event()
    huey = queued_runtime.huey

    @huey.task(name="crm_probe", priority=PRIORITY_CRM)
    def crm_probe() -> None:
        order.append("crm")
        if len(order) == 4:
            finished.set()

    @huey.task(name="text_probe", priority=PRIORITY_TEXT)
    def text_probe() -> None:
        order.append("text")
        if len(order) == 4:
            finished.set()

    crm_probe()
    crm_probe()
    text_probe()
    text_probe()
    consumer = make_consumer(huey, 1, embedded=True)
    consumer.start()
    try:
        assert finished.wait(10)
    finally:
        consumer.stop(graceful=True)
    assert order == ["text", "text", "crm", "crm"]


def test_idle_polling_interval_allows_pickup_within_250_ms():
    # The figure itself is measured by bench/queue_pickup.py; this pins the setting it relies on.
    assert POLL_MAX_DELAY <= 0.2


def test_missed_call_through_the_real_queue(tmp_path, queue_url, webhook_secret):
    """Webhook in, job through the queue to consumer threads, text out: as `textback serve` runs."""
    from connector.web import create_app

    rt = _runtime(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", queue_url)
    consumers = rt.consumers(1, 2)  # a texts lane and a CRM lane, as textback serve runs them
    for consumer in consumers:
        consumer.start()
    try:
        add_account(rt, sandbox_account("acme", webhook_secret))
        assert post(create_app(rt).test_client(), "acme", "voice", missed(),
                    webhook_secret).status_code == 200
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not records(rt, "acme", "task"):
            time.sleep(0.05)
        assert len(records(rt, "acme", "sms")) == 1
        assert len(records(rt, "acme", "task")) == 1
    finally:
        for consumer in consumers:
            consumer.stop(graceful=True)
        rt.huey.flush()
        rt.crm_huey.flush()
        rt.close()


def test_a_call_moves_only_as_the_state_table_allows(runtime):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from connector.storage.models import Account, Call
    from connector.storage.states import CALL_TRANSITIONS, CallState

    with runtime.db.session() as s:
        s.add(Account(id="acme", name="Acme", timezone="UTC", carrier_kind="sandbox",
                      crm_kind="sandbox", settings={}, carrier_credentials="",
                      crm_credentials=""))
        s.flush()
        call = Call(account_id="acme", carrier="sandbox", event_id="E1", outcome="no-answer",
                    occurred_at=datetime(2026, 6, 15, tzinfo=UTC), state="received")
        s.add(call)
        call.state = CallState.DECIDED
        call.state = CallState.TEXTED
        with pytest.raises(ValueError, match="cannot go from texted to decided"):
            call.state = CallState.DECIDED
        with pytest.raises(ValueError, match="'sent' is not a valid CallState"):
            call.state = "sent"
    finals = [state for state, moves in CALL_TRANSITIONS.items() if not moves]
    assert sorted(finals) == ["cancelled", "suppressed", "text_failed", "texted"]


def test_every_delivery_status_a_carrier_reports_is_a_message_status() -> None:
    """A delivery report's status is stored as is: each value must be one of ours."""
    from connector.kernel.events import DeliveryStatus
    from connector.storage.states import MessageStatus

    for status in DeliveryStatus:
        assert MessageStatus(status.value) == status.value


def test_purpose_keys_name_the_purpose_and_what_it_belongs_to() -> None:
    from connector.storage.states import Purpose

    assert Purpose.TEXT_BACK.key("c1") == "text_back:c1"
    assert Purpose.ALERT.key("c1", "reply", 7) == "alert:c1:reply:7"
    assert Purpose.ALERT.key("c1", "reply", 7).startswith(Purpose.ALERT.prefix)
    assert not Purpose.TEXT_BACK.key("c1").startswith(Purpose.ALERT.prefix)
