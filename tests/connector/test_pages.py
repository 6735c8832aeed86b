"""The signed-in pages through Flask's test client: sign-in, CSRF, account separation, reply,
pause, dashboard."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from connector.storage.models import Call
from connector.storage.users import add_user, check_password, hash_password
from tests.connector.helpers import CALLER, add_account, missed, post, records, sandbox_account

PASSWORD = "correct horse battery"


@pytest.fixture
def signed_in(app, runtime, webhook_secret):  # type: ignore[no-untyped-def]
    add_account(runtime, sandbox_account("acme", webhook_secret))
    add_account(runtime, sandbox_account("other", webhook_secret))
    with runtime.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", PASSWORD, "acme")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"email": "Dana@Acme.test", "password": PASSWORD,
                                         "csrf": token})
    assert answer.status_code == 302
    # Signing in starts a new session with a new CSRF token: read it from a page.
    page = client.get("/conversations").get_data(as_text=True)
    client.csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[attr-defined]
    assert client.csrf != token  # type: ignore[attr-defined]
    return client


def test_passwords_are_hashed_and_checked():
    stored = hash_password(PASSWORD)
    # werkzeug's format, salted: method:params$salt$hash (tests/connector/test_passwords.py has
    # the legacy format and its upgrade on sign-in).
    assert PASSWORD not in stored and stored.startswith("scrypt:") and stored.count("$") == 2
    assert hash_password(PASSWORD) != stored
    assert check_password(stored, PASSWORD) and not check_password(stored, "wrong password")


def test_pages_need_a_sign_in(app):
    answer = app.test_client().get("/conversations")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_wrong_password_is_refused(app, runtime, webhook_secret):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    with runtime.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", PASSWORD, "acme")
    client = app.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    answer = client.post("/login", data={"email": "dana@acme.test", "password": "nope nope nope",
                                         "csrf": token})
    assert answer.status_code == 401 and "do not match" in answer.get_data(as_text=True)


def test_a_post_without_the_csrf_token_is_refused(signed_in, runtime, webhook_secret):
    post(signed_in, "acme", "voice", missed(), webhook_secret)
    with runtime.db.session() as s:
        call_id = s.scalar(select(Call.id))
    answer = signed_in.post(f"/conversations/{call_id}/reply", data={"body": "hi"})
    assert answer.status_code == 400


def test_another_accounts_conversation_is_not_shown(signed_in, runtime, webhook_secret):
    post(signed_in, "other", "voice", missed("OTHER1"), webhook_secret)
    with runtime.db.session() as s:
        call_id = s.scalar(select(Call.id).where(Call.account_id == "other"))
    assert signed_in.get(f"/conversations/{call_id}").status_code == 404
    assert signed_in.get("/conversations?account=other").status_code == 404
    assert signed_in.post(f"/conversations/{call_id}/reply",
                          data={"body": "hi", "csrf": signed_in.csrf}).status_code == 404


def test_reply_from_the_page_goes_to_the_customer_and_the_crm(signed_in, runtime,
                                                              webhook_secret):
    post(signed_in, "acme", "voice", missed(), webhook_secret)
    with runtime.db.session() as s:
        call_id = s.scalar(select(Call.id))
    listing = signed_in.get("/conversations").get_data(as_text=True)
    assert call_id in listing and CALLER in listing
    answer = signed_in.post(f"/conversations/{call_id}/reply",
                            data={"body": "We can come at 3pm", "csrf": signed_in.csrf})
    assert answer.status_code == 302
    assert records(runtime, "acme", "sms")[-1]["body"] == "We can come at 3pm"
    assert any(m["body"] == "We can come at 3pm" for m in records(runtime, "acme", "message"))
    page = signed_in.get(f"/conversations/{call_id}").get_data(as_text=True)
    assert "We can come at 3pm" in page
    with runtime.db.session() as s:
        assert s.get(Call, call_id).human_responded_at is not None


def test_pause_switch_stops_automated_texts(signed_in, runtime, webhook_secret):
    doc = sandbox_account("acme", webhook_secret)
    doc["policy"] = {"cooldown_hours": 0, "burst_window_minutes": 0}
    add_account(runtime, doc)
    post(signed_in, "acme", "voice", missed("C1"), webhook_secret)
    with runtime.db.session() as s:
        call_id = s.scalar(select(Call.id))
    signed_in.post(f"/conversations/{call_id}/pause", data={"paused": "1",
                                                            "csrf": signed_in.csrf})
    post(signed_in, "acme", "voice", missed("C2"), webhook_secret)
    with runtime.db.session() as s:
        second = s.scalar(select(Call).where(Call.event_id == "C2"))
        assert second.reason == "automation_paused"
    assert len(records(runtime, "acme", "sms")) == 1


def test_dashboard_draws_the_numbers(signed_in, runtime, webhook_secret):
    post(signed_in, "acme", "voice", missed(), webhook_secret)
    page = signed_in.get("/dashboard").get_data(as_text=True)
    assert '<p class="label">Missed calls</p><p class="value">1</p>' in page
    assert '<p class="label">Texted back</p><p class="value">1</p>' in page
    assert page.count('<figure class="chart"') == 4
