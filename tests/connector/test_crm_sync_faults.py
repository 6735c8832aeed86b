"""A CRM that refuses one step does not cost the others; a kill between creating a CRM record
and linking it does not make a second one."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from connector.jobs.sweeper import sweep
from connector.kernel.errors import PermanentProviderError
from connector.reporting.explain import explain
from connector.storage.models import Call, CrmLink
from crm_adapters.sandbox import SandboxCrm
from tests.connector.helpers import add_account, missed, only_call, post, records, sandbox_account


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


def test_a_kill_between_creating_the_task_and_linking_it_makes_no_second_task(
        app, runtime, acme, webhook_secret, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    real_create = SandboxCrm.create_task

    def create_then_die(self, task):  # type: ignore[no-untyped-def]
        real_create(self, task)
        raise Killed

    monkeypatch.setattr(SandboxCrm, "create_task", create_then_die)
    with pytest.raises(Killed):
        post(app.test_client(), acme, "voice", missed(), webhook_secret)
    monkeypatch.undo()
    assert len(records(runtime, acme, "task")) == 1
    assert only_call(runtime, acme).crm_state != "done"

    frozen_clock.shift(5 * 60)  # the lease lapses; the sweeper finds the sync unfinished
    sweep(runtime)
    tasks = records(runtime, acme, "task")
    assert len(tasks) == 1  # found by its "textback call <id>" line and linked, not made again
    call = only_call(runtime, acme)
    assert call.crm_state == "done"
    with runtime.db.session() as s:
        linked = s.scalar(select(CrmLink.crm_id).where(CrmLink.object_type == "task",
                                                      CrmLink.local_key == call.id))
    assert linked == tasks[0]["id"]


def test_hubspot_finds_the_task_an_earlier_attempt_made(runtime, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    from connector.jobs.crm_sync import sync_call
    from connector.storage.accounts import import_account
    from connector.web import create_app
    from crm_adapters.hubspot import activities
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
        real_create = activities.create_task

        def create_then_die(api, task):  # type: ignore[no-untyped-def]
            real_create(api, task)
            raise Killed

        monkeypatch.setattr(activities, "create_task", create_then_die)
        with pytest.raises(Killed):
            post(app.test_client(), "acme", "voice", missed(), "secret")
        monkeypatch.undo()
        assert len(hubspot.records("tasks")) == 1

        frozen_clock.shift(5 * 60)
        call_id = only_call(runtime, "acme").id
        with runtime.db.session() as s:
            s.execute(update(Call).values(lease_until=None))
        sync_call(runtime, call_id)
        assert len(hubspot.records("tasks")) == 1
        assert only_call(runtime, "acme").crm_state == "done"
