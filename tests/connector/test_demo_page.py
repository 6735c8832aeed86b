"""The demo page and the home page: simulating a call, the caller's reply and STOP and the
carrier's delivery report; the CRM records as the CRM shows them; the cooldown explained; the demo
turned off (or put behind sign-in) once real accounts exist; each account's status at home."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connector.cli import ensure_demo_account
from connector.kernel import clock, times
from connector.simulate import DEMO_ACCOUNT_ID, demo_mode
from connector.storage.models import Account, Call, Message
from connector.storage.users import add_user
from tests.browser import check_page
from tests.connector.helpers import add_account, missed, post, sandbox_account

PASSWORD = "correct horse battery"
CALLER = "+14155550177"


def local_call_time(runtime, account_id: str) -> str:  # type: ignore[no-untyped-def]
    """When the account's first call happened, in Chicago (the suite's clock may start at any
    hour, so the expected text is made from the stored time)."""
    with runtime.db.session() as s:
        at = s.scalar(select(Call.occurred_at).where(Call.account_id == account_id)
                      .order_by(Call.occurred_at)).replace(tzinfo=UTC)
    text = times.format_time(at, ZoneInfo("America/Chicago"))
    assert text.endswith(" CDT")
    return text


def csrf(client, path: str = "/") -> str:  # type: ignore[no-untyped-def]
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def sign_in(client, email: str) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/login", data={"email": email, "password": PASSWORD,
                                         "csrf": csrf(client, "/login")})
    assert answer.status_code == 302


@pytest.fixture
def demo(runtime):  # type: ignore[no-untyped-def]
    assert ensure_demo_account(runtime)
    return runtime


def simulate(client, caller: str = CALLER, outcome: str = "no-answer"):  # type: ignore[no-untyped-def]
    return client.post("/demo/simulate-call", data={"from": caller, "outcome": outcome,
                                                    "csrf": csrf(client)})


def act(client, action: str, caller: str = CALLER, body: str = ""):  # type: ignore[no-untyped-def]
    return client.post("/demo/customer", data={"from": caller, "action": action, "body": body,
                                               "csrf": csrf(client)})


def test_a_simulated_call_shows_the_text_and_the_crm_records(app, demo):
    client = app.test_client()
    answer = simulate(client)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/demo")
    page = client.get("/demo").get_data(as_text=True)
    assert f"Call from {CALLER} received" in page
    assert "<strong>Texted back.</strong> In the CRM." in page
    assert 'class="bubble out"' in page and "sorry we missed your call" in page.lower()
    # The CRM as the CRM shows it: a contact card with its lead, task and activity.
    card = page[page.index('class="crm-contact"'):]
    assert f"Contact · {CALLER}" in card
    assert "<h3>Lead" in card and "<dt>Stage</dt><dd>new</dd>" in card
    assert "<h3>Task" in card and f"Call back {CALLER}: missed call" in card
    assert "<h3>Activity</h3>" in card and "{" not in card.split("</section>")[0]  # no raw JSON
    # Times in the account's zone (Chicago, CDT in June), never ISO text.
    assert local_call_time(demo, DEMO_ACCOUNT_ID) in page
    assert not re.search(r">[^<]*\+00:00", page)
    # Links to the conversation, the dashboard, and explain.
    with demo.db.session() as s:
        call_id = s.scalar(select(Call.id))
    assert f'href="/conversations/{call_id}"' in page and 'href="/dashboard?account=demo"' in page
    why = client.get(f"/demo/explain/{call_id}").get_data(as_text=True)
    assert f"Call {call_id}" in why


def test_the_caller_replies_stops_and_the_carrier_reports(app, demo):
    client = app.test_client()
    simulate(client)
    assert act(client, "reply", body="Yes please, tomorrow").status_code == 303
    assert act(client, "delivered").status_code == 303
    page = client.get("/demo").get_data(as_text=True)
    assert "Yes please, tomorrow" in page and "The carrier reported" in page
    with demo.db.session() as s:
        call = s.scalar(select(Call))
        assert call.customer_replied_at is not None
        statuses = set(s.scalars(select(Message.status).where(Message.direction == "outbound")))
    assert statuses == {"delivered"}
    act(client, "stop")
    page = client.get("/demo").get_data(as_text=True)
    assert "opted out of texts" in page
    # Nothing waits for a report any more: said so, nothing posted.
    act(client, "delivered", caller="+14155550999")
    assert "No text to +14155550999 is waiting" in client.get("/demo").get_data(as_text=True)


def test_bad_customer_actions_are_named_and_change_nothing(app, demo):
    client = app.test_client()
    simulate(client)
    with demo.db.session() as s:
        before = s.query(Message).count()
    act(client, "reply", caller="not a number", body="")
    page = client.get("/demo").get_data(as_text=True)
    assert "The caller&#39;s number should look like +14155550123" in page
    assert "a reply needs 1 to 1600 characters" in page
    with demo.db.session() as s:
        assert s.query(Message).count() == before
    assert client.post("/demo/customer", data={"action": "reply"}).status_code == 400  # no CSRF


def test_calling_again_is_explained_not_a_fault(app, demo, frozen_clock):
    client = app.test_client()
    simulate(client)
    simulate(client)  # within the burst window: one text covers both
    page = client.get("/demo").get_data(as_text=True)
    assert "Not texted: they called several times in a row" in page
    assert "one text covers a burst of calls" in page
    frozen_clock.shift(3600)  # past the burst window, inside the 24 h cooldown
    simulate(client)
    page = client.get("/demo").get_data(as_text=True)
    assert "Not texted: we already texted this number recently" in page
    assert "This is the cooldown at work, not a fault" in page
    # The page offers a number not called yet.
    offered = re.search(r'id="caller" name="from" value="([^"]+)"', page).group(1)
    assert offered != CALLER


def test_a_withheld_number_is_not_left_pending(app, demo):
    client = app.test_client()
    simulate(client, caller="anonymous")
    page = client.get("/demo").get_data(as_text=True)
    assert "Not written to the CRM: the caller ID was withheld" in page
    assert "Writing to the CRM" not in page


def test_the_demo_goes_once_a_real_account_exists(app, demo, webhook_secret):
    add_account(demo, sandbox_account("acme", webhook_secret))
    client = app.test_client()
    assert "Sign in to see your accounts" in client.get("/").get_data(as_text=True)
    assert client.get("/demo").status_code == 404
    answer = client.post("/demo/simulate-call", json={"from": CALLER})
    assert answer.status_code == 404 and "TEXTBACK_DEMO=keep" in answer.json["error"]
    assert client.get("/demo/state.json").status_code == 404
    with demo.db.session() as s:
        assert s.scalar(select(Call.id)) is None  # nothing was simulated
    # The next start of the service removes it.
    assert ensure_demo_account(demo) is False
    with demo.db.session() as s:
        assert s.get(Account, DEMO_ACCOUNT_ID) is None and s.get(Account, "acme") is not None


def test_a_kept_demo_is_behind_sign_in(app, demo, webhook_secret):
    demo.settings = dataclasses.replace(demo.settings, keep_demo=True)
    add_account(demo, sandbox_account("acme", webhook_secret))
    with demo.db.session() as s:
        assert demo_mode(s, keep=True) == "beside"
        add_user(s, "dana@acme.test", "Dana", PASSWORD, ["acme", DEMO_ACCOUNT_ID])
        add_user(s, "rex@acme.test", "Rex", PASSWORD, "acme")
    client = app.test_client()
    for path in ("/demo", "/demo/state.json"):
        assert "/login" in client.get(path).headers["Location"]
    assert "/login" in client.post("/demo/simulate-call", json={}).headers["Location"]
    assert ensure_demo_account(demo) is False
    with demo.db.session() as s:
        assert s.get(Account, DEMO_ACCOUNT_ID) is not None  # kept
    sign_in(client, "dana@acme.test")
    assert client.get("/demo").status_code == 200
    assert simulate(client, caller="+14155550178").status_code == 303
    assert 'href="/demo">Try the demo</a>' in client.get("/").get_data(as_text=True)
    other = app.test_client()
    sign_in(other, "rex@acme.test")
    assert other.get("/demo").status_code == 404


def test_home_shows_each_accounts_status(app, runtime, webhook_secret):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    add_account(runtime, sandbox_account("bolt", webhook_secret, name="Bolt Electric"))
    with runtime.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", PASSWORD, "acme")
    client = app.test_client()
    post(client, "acme", "voice", missed(), webhook_secret)
    post(client, "acme", "sms", {"message_id": "IN1", "from": "+14155550123",
                                 "to": "+14155550100", "body": "Can you come today?"},
         webhook_secret)
    sign_in(client, "dana@acme.test")
    page = client.get("/").get_data(as_text=True)
    assert "<h1>Your accounts</h1>" in page and "No demo account" not in page
    assert "Bolt Electric" not in page  # not Dana's
    assert "<dt>CRM</dt><dd>sandbox · private token</dd>" in page
    assert "1 missed call, 1 texted back" in page
    assert "1 customer replied and has not heard back" in page
    assert local_call_time(runtime, "acme") in page
    assert "Setup checklist" not in page  # a rep sets nothing up
    with runtime.db.session() as s:
        add_user(s, "ada@acme.test", "Ada", PASSWORD, "acme", role="admin")
    admin = app.test_client()
    sign_in(admin, "ada@acme.test")
    assert 'href="/accounts/acme/setup">Setup checklist</a>' in admin.get("/").get_data(as_text=True)


def test_demo_and_home_in_the_browser(app, demo, webhook_secret, live_server, browser):
    page = browser.new_page()
    page.goto(f"{live_server}/")
    check_page(page, "demo-empty")
    page.fill("#caller", CALLER)
    page.click("#simulate button[type=submit]")
    page.wait_for_selector("article.call")
    page.fill("#customer-from", CALLER)
    page.click("#customer button[value=reply]")
    page.wait_for_selector("text=Yes please, can someone come tomorrow morning?")
    page.click("#customer button[value=delivered]")
    page.wait_for_selector("text=The carrier reported")
    page.click("article.call details summary")
    page.wait_for_selector(".explain-out")
    assert "Call " in page.inner_text(".explain-out")
    check_page(page, "demo")

    add_account(demo, sandbox_account("acme", webhook_secret))
    with demo.db.session() as s:
        add_user(s, "olive@acme.test", "Olive Owner-Longname", PASSWORD, None, role="admin")
    page.goto(f"{live_server}/")
    check_page(page, "welcome")
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "olive@acme.test")
    page.fill("input[name=password]", "wrong password!")
    page.click("button[type=submit]")
    assert page.input_value("input[name=email]") == "olive@acme.test"  # kept after a failure
    check_page(page, "login-failed")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server}/")
    assert page.locator("article.account-status").count() == 2
    check_page(page, "home")


@pytest.mark.parametrize("value,demo,keep", [("true", True, False), ("Keep", True, True),
                                             ("FALSE", False, False), ("off", False, False)])
def test_textback_demo_takes_true_false_or_keep(value, demo, keep):
    from connector.settings.config import load_settings

    settings = load_settings({"TEXTBACK_DEMO": value, "TEXTBACK_SECRET_KEY": "k" * 40})
    assert (settings.demo, settings.keep_demo) == (demo, keep)


def test_a_bad_textback_demo_says_what_it_takes():
    from connector.kernel.errors import ConfigurationError
    from connector.settings.config import load_settings

    with pytest.raises(ConfigurationError, match="TEXTBACK_DEMO: must be true, false or keep"):
        load_settings({"TEXTBACK_DEMO": "maybe", "TEXTBACK_SECRET_KEY": "k" * 40})


def test_the_page_follows_a_call_still_being_worked_on(app, demo, live_server, browser):
    with demo.db.session() as s:  # a call the worker has not decided yet
        s.add(Call(id="c-busy", account_id=DEMO_ACCOUNT_ID, carrier="sandbox", event_id="E1",
                   caller=CALLER, called="+14155550100", outcome="no-answer",
                   occurred_at=clock.now(), state="received"))
    page = browser.new_page()
    page.goto(f"{live_server}/demo")
    assert "Deciding…" in page.inner_text("article.call")
    assert page.get_attribute("#activity", "hx-trigger") == "every 1s"
    with demo.db.session() as s:
        call = s.get(Call, "c-busy")
        call.state, call.decision, call.reason, call.crm_state = "suppressed", "suppress", \
            "cooldown", "done"
    page.wait_for_selector("text=This is the cooldown at work", timeout=10_000)
    assert page.get_attribute("#activity", "hx-trigger") is None  # settled: no more polling


@pytest.mark.parametrize("setting,kept", [("true", False), ("keep", True)])
def test_importing_a_real_account_removes_the_demo_unless_kept(tmp_path, monkeypatch, capsys,
                                                               setting, kept):
    import json

    from connector.cli import main

    monkeypatch.setenv("TEXTBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", "c" * 40)
    monkeypatch.setenv("TEXTBACK_DEMO", setting)
    assert main(["db", "upgrade"]) == 0
    assert main(["simulate-call", "demo", "--from", CALLER]) == 0  # loads the demo
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(sandbox_account("acme", "s" * 24)))
    capsys.readouterr()
    assert main(["accounts", "import", str(path)]) == 0
    assert ("removed the demo account" in capsys.readouterr().out) is not kept
    assert main(["accounts", "list"]) == 0
    assert ("demo\t" in capsys.readouterr().out) is kept
