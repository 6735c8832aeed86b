"""A CRM that refuses one step does not cost the others; a kill between creating a CRM record
and linking it does not make a second one."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.errors import PermanentProviderError
from connector.explain import explain
from connector.storage.models import Call
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

    from connector.users import add_user

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
