"""A CRM that refuses one step does not cost the others; a kill between creating a CRM record
and linking it does not make a second one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import responses
from sqlalchemy import select, update

from connector.jobs.crm_sync import sync_call
from connector.jobs.sweeper import sweep
from connector.kernel.errors import (
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from connector.reporting.explain import explain
from connector.storage.models import Call, CrmLink
from connector.web import create_app
from crm_adapters.base import TaskSpec
from crm_adapters.sandbox import SandboxCrm
from tests.connector.helpers import add_account, missed, only_call, post, records, sandbox_account
from tests.crm_adapters import test_housecallpro as hcp_test


@pytest.fixture
def acme(runtime, webhook_secret):  # type: ignore[no-untyped-def]
    add_account(runtime, sandbox_account("acme", webhook_secret))
    return "acme"


def test_a_refused_step_is_recorded_and_the_other_steps_still_run(
        app, runtime, acme, webhook_secret, monkeypatch):  # type: ignore[no-untyped-def]
    def refuse(self, spec, lead_id):  # type: ignore[no-untyped-def]
        raise PermanentProviderError("requestCreate: Title can't be blank", provider="jobber")

    monkeypatch.setattr(SandboxCrm, "set_pipeline_stage", refuse)
    assert post(app.test_client(), acme, "voice", missed(), webhook_secret).status_code == 200

    assert records(runtime, acme, "lead") == []
    assert len(records(runtime, acme, "call")) == 1  # the call is still logged,
    assert len(records(runtime, acme, "message")) == 1  # and the text,
    assert len(records(runtime, acme, "task")) == 1  # and the rep still gets a task
    call = only_call(runtime, acme)
    assert call.crm_state == "partial" and call.last_error == "the CRM refused: lead"
    trail = explain(runtime, call.id)
    assert "crm_step_failed: lead: jobber said requestCreate: Title can't be blank" in trail


def test_a_refused_step_shows_on_the_conversation_page(
        app, runtime, acme, webhook_secret, monkeypatch):  # type: ignore[no-untyped-def]
    import re

    from connector.storage.users import add_user

    monkeypatch.setattr(SandboxCrm, "create_task", lambda self, task: (_ for _ in ()).throw(
        PermanentProviderError("no permission to create tasks", provider="hubspot")))
    post(app.test_client(), acme, "voice", missed(), webhook_secret)
    with runtime.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", "correct horse battery", "acme")
        call_id = s.scalar(select(Call.id))
    client = app.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "dana@acme.test", "password": "correct horse battery",
                                "csrf": token})
    page = client.get(f"/conversations/{call_id}").get_data(as_text=True)
    assert "The CRM refused: task" in page


class Killed(BaseException):
    """Stands for kill -9 between the CRM's answer and our record of it."""


#: The job's creates: the sandbox CRM's method, its records' kind, and our link's object type.
CREATES = [
    pytest.param("set_pipeline_stage", "lead", "lead", id="lead"),
    pytest.param("log_call", "call", "call", id="call log"),
    pytest.param("log_message", "message", "message", id="text log"),
    pytest.param("create_task", "task", "task", id="task"),
]


def linked_ids(runtime, object_type):  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        return s.scalars(select(CrmLink.crm_id).where(CrmLink.object_type == object_type)).all()


def sweep_and_find_it_linked(runtime, account_id, kind, object_type):  # type: ignore[no-untyped-def]
    """The sweeper's retry finishes the sync with the one record, found and linked."""
    sweep(runtime)
    made = records(runtime, account_id, kind)
    assert len(made) == 1  # found, and linked, not made again
    assert only_call(runtime, account_id).crm_state == "done"
    assert linked_ids(runtime, object_type) == [made[0]["id"]]


@pytest.mark.parametrize(("method", "kind", "object_type"), CREATES)
def test_a_kill_between_creating_a_record_and_linking_it_makes_no_second_one(
        app, runtime, acme, webhook_secret, frozen_clock, monkeypatch, caplog,
        method, kind, object_type):  # type: ignore[no-untyped-def]
    real_create = getattr(SandboxCrm, method)

    def create_then_die(self, *args):  # type: ignore[no-untyped-def]
        real_create(self, *args)
        raise Killed

    monkeypatch.setattr(SandboxCrm, method, create_then_die)
    with pytest.raises(Killed):
        post(app.test_client(), acme, "voice", missed(), webhook_secret)
    monkeypatch.undo()
    assert len(records(runtime, acme, kind)) == 1
    assert linked_ids(runtime, object_type) == []
    assert only_call(runtime, acme).crm_state != "done"

    frozen_clock.shift(5 * 60)  # the lease lapses; the sweeper finds the sync unfinished
    with caplog.at_level(logging.INFO, logger="connector.jobs.crm_sync"):
        sweep_and_find_it_linked(runtime, acme, kind, object_type)
    assert f"crm {object_type} made by an earlier attempt found and linked" in caplog.text


@pytest.mark.parametrize(("method", "kind", "object_type"), CREATES)
def test_a_create_whose_answer_was_lost_is_not_repeated_but_found_later(
        app, runtime, acme, webhook_secret, frozen_clock, monkeypatch,
        method, kind, object_type):  # type: ignore[no-untyped-def]
    real_create = getattr(SandboxCrm, method)

    def create_then_time_out(self, *args):  # type: ignore[no-untyped-def]
        real_create(self, *args)  # the CRM made it; its answer never came
        raise TransientProviderError("read timed out", provider="sandbox", ambiguous=True)

    monkeypatch.setattr(SandboxCrm, method, create_then_time_out)
    assert post(app.test_client(), acme, "voice", missed(), webhook_secret).status_code == 200
    monkeypatch.undo()
    assert len(records(runtime, acme, kind)) == 1  # not sent again at once
    call = only_call(runtime, acme)
    assert call.crm_state == "retry" and "TransientProviderError" in (call.last_error or "")

    frozen_clock.shift(5 * 60)  # past the backoff
    sweep_and_find_it_linked(runtime, acme, kind, object_type)


def test_every_attempt_at_the_task_asks_for_the_first_attempts_due_time(
        app, runtime, acme, webhook_secret, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    # A CRM that lists tasks by their time (Jobber) finds an earlier attempt's task only at
    # the time that attempt asked for; the retry must ask for it again, not for "now + 15 min".
    first: list[TaskSpec] = []
    looked: list[TaskSpec] = []
    real_create, real_find = SandboxCrm.create_task, SandboxCrm.find_task

    def killed_before_the_crm_made_it(self, task):  # type: ignore[no-untyped-def]
        first.append(task)
        raise Killed

    def find(self, task, marker):  # type: ignore[no-untyped-def]
        looked.append(task)
        return real_find(self, task, marker)

    monkeypatch.setattr(SandboxCrm, "create_task", killed_before_the_crm_made_it)
    with pytest.raises(Killed):
        post(app.test_client(), acme, "voice", missed(), webhook_secret)
    monkeypatch.setattr(SandboxCrm, "create_task", real_create)
    monkeypatch.setattr(SandboxCrm, "find_task", find)

    frozen_clock.shift(5 * 60)
    sweep(runtime)
    [task] = records(runtime, acme, "task")
    assert [spec.due_at for spec in looked] == [first[0].due_at]
    assert task["due_at"] == first[0].due_at.isoformat()  # made for the first attempt's time
    assert only_call(runtime, acme).crm_state == "done"


def test_a_task_attempt_recorded_without_a_due_time_is_retried_with_a_new_one(
        app, runtime, acme, webhook_secret, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    # Attempts recorded before due times were kept hold "-": the retry still makes the task.
    def killed_before_the_crm_made_it(self, task):  # type: ignore[no-untyped-def]
        raise Killed

    monkeypatch.setattr(SandboxCrm, "create_task", killed_before_the_crm_made_it)
    with pytest.raises(Killed):
        post(app.test_client(), acme, "voice", missed(), webhook_secret)
    monkeypatch.undo()
    with runtime.db.session() as s:
        s.execute(update(CrmLink).where(CrmLink.object_type == "attempt",
                                        CrmLink.local_key.startswith("task:")).values(crm_id="-"))

    frozen_clock.shift(5 * 60)
    sweep(runtime)
    [task] = records(runtime, acme, "task")
    assert datetime.fromisoformat(task["due_at"]) > datetime.now(UTC) + timedelta(minutes=14)
    assert only_call(runtime, acme).crm_state == "done"


def test_a_task_the_crm_turned_away_is_forgotten_and_due_from_the_attempt_that_makes_it(
        app, runtime, acme, webhook_secret, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    # Turned away before anything was made (the CRM's budget spent): nothing to find later, so
    # the retry is a first attempt again, and its task is due from when it is made.
    turned_away: list[TaskSpec] = []

    def throttled(self, task):  # type: ignore[no-untyped-def]
        turned_away.append(task)
        raise RateLimitedError("budget spent", provider="sandbox", retry_after=600)

    monkeypatch.setattr(SandboxCrm, "create_task", throttled)
    assert post(app.test_client(), acme, "voice", missed(), webhook_secret).status_code == 200
    monkeypatch.undo()
    assert records(runtime, acme, "task") == [] and len(turned_away) == 1
    with runtime.db.session() as s:
        attempts = s.scalars(select(CrmLink.local_key).where(CrmLink.object_type == "attempt"))
        assert [key for key in attempts if key.startswith("task:")] == []

    frozen_clock.shift(30 * 60)
    sweep(runtime)
    [task] = records(runtime, acme, "task")
    assert datetime.fromisoformat(task["due_at"]) >= turned_away[0].due_at + timedelta(minutes=30)
    assert only_call(runtime, acme).crm_state == "done"


@pytest.mark.parametrize(("module", "function", "kind"), [
    pytest.param("deals", "set_pipeline_stage", "deals", id="deal"),
    pytest.param("activities", "log_call", "calls", id="call"),
    pytest.param("activities", "log_message", "communications", id="text"),
    pytest.param("activities", "create_task", "tasks", id="task"),
])
def test_hubspot_finds_the_record_an_earlier_attempt_made(
        runtime, frozen_clock, monkeypatch, module, function, kind):  # type: ignore[no-untyped-def]
    import importlib

    from connector.jobs.crm_sync import sync_call
    from connector.storage.accounts import import_account
    from connector.web import create_app
    from tests.stubs.hubspot_stub import HubSpotStub

    token = "pat-na1-test-token-0123456789"
    with HubSpotStub(access_token=token) as hubspot:
        doc = sandbox_account("acme", "secret")
        doc["crm"] = {"kind": "hubspot", "credentials": {"access_token": token},
                      "api_base_url": hubspot.url,
                      "mapping": {"pipeline": "default", "stage": "appointmentscheduled"}}
        with runtime.db.session() as s:
            import_account(s, runtime.box, doc)
        app = create_app(runtime)
        where = importlib.import_module(f"crm_adapters.hubspot.{module}")
        real_create = getattr(where, function)

        def create_then_die(*args):  # type: ignore[no-untyped-def]
            real_create(*args)
            raise Killed

        monkeypatch.setattr(where, function, create_then_die)
        with pytest.raises(Killed):
            post(app.test_client(), "acme", "voice", missed(), "secret")
        monkeypatch.undo()
        assert len(hubspot.records(kind)) == 1

        frozen_clock.shift(5 * 60)
        call_id = only_call(runtime, "acme").id
        with runtime.db.session() as s:
            s.execute(update(Call).values(lease_until=None))
        sync_call(runtime, call_id)
        made = hubspot.records(kind)
        assert len(made) == 1
        assert only_call(runtime, "acme").crm_state == "done"
        assert made[0]["id"] in linked_ids(runtime, {"deals": "lead", "calls": "call",
                                                     "communications": "message",
                                                     "tasks": "task"}[kind])


def test_housecallpro_links_the_one_follow_up_lead_a_killed_worker_made(
        runtime, frozen_clock, caplog):  # type: ignore[no-untyped-def]
    # No pipeline step ("creates: task"): the follow-up is a new Housecall Pro lead, and the
    # worker dies once Housecall Pro has made it, before the lead is named in the notes.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        hcp = hcp_test.FakeHcp(mock)
        doc = sandbox_account("acme", "secret")
        doc["crm"] = {"kind": "housecallpro", "credentials": {"api_key": hcp_test.API_KEY},
                      "api_base_url": hcp_test.BASE,
                      "mapping": {"creates": "task", "owner_id": hcp_test.EMPLOYEE}}
        add_account(runtime, doc)
        app = create_app(runtime)
        hcp.crash = ("after", "POST /leads")
        with pytest.raises(hcp_test.Killed):
            post(app.test_client(), "acme", "voice", missed(), "secret")
        assert hcp.crash is None and len(hcp.leads) == 1
        assert linked_ids(runtime, "task") == []

        frozen_clock.shift(5 * 60)
        call_id = only_call(runtime, "acme").id
        with runtime.db.session() as s:
            s.execute(update(Call).values(lease_until=None))
        with caplog.at_level(logging.INFO, logger="connector.jobs.crm_sync"):
            sync_call(runtime, call_id)
        assert len(hcp.leads) == 1  # found, not made again
        assert "crm task made by an earlier attempt found and linked" in caplog.text
        assert only_call(runtime, "acme").crm_state == "done"
        assert linked_ids(runtime, "task") == list(hcp.leads)
