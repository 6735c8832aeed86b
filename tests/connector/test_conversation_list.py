"""The conversation list and thread as people read them: times in the account's zone, the owner
by name, a paused caller marked, the last text previewed, readable bubbles; with two accounts a
labelled switcher that the next page remembers."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connector.kernel import clock, times
from connector.storage.models import Call
from connector.storage.users import add_user
from tests.browser import check_page
from tests.connector.helpers import CALLER, add_account, missed, post, sandbox_account

PASSWORD = "correct horse battery"
OTHER_CALLER = "+14155550124"
ROUTING = {"owners": [{"id": "u-17", "name": "Sam Rivera"}], "default_owner": "u-17"}


@pytest.fixture
def two_accounts(app, runtime, webhook_secret):  # type: ignore[no-untyped-def]
    add_account(runtime, sandbox_account("acme", webhook_secret, routing=ROUTING))
    add_account(runtime, sandbox_account("bolt", webhook_secret, name="Bolt Electric",
                                         timezone="America/New_York"))
    with runtime.db.session() as s:
        add_user(s, "olive@acme.test", "Olive Owner", PASSWORD, ["acme", "bolt"])
    client = app.test_client()
    post(client, "acme", "voice", missed(), webhook_secret)
    post(client, "acme", "voice", missed("CALL2", caller=OTHER_CALLER), webhook_secret)
    post(client, "acme", "sms", {"message_id": "IN1", "from": CALLER, "to": "+14155550100",
                                 "body": "Can you come\n\ntoday?"}, webhook_secret)
    post(client, "bolt", "voice", missed("CALL3"), webhook_secret)
    return client


def sign_in(client) -> str:  # type: ignore[no-untyped-def]
    token = re.search(r'name="csrf" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "olive@acme.test", "password": PASSWORD, "csrf": token})
    return re.search(r'name="csrf" value="([^"]+)"',
                     client.get("/conversations").get_data(as_text=True)).group(1)


def call_time(runtime, account_id: str, style: str = "full") -> str:  # type: ignore[no-untyped-def]
    """When the account's first call happened, as its people read it (the suite's clock can
    start at any hour, so nothing here is written out)."""
    with runtime.db.session() as s:
        account_zone = {"acme": "America/Chicago", "bolt": "America/New_York"}[account_id]
        at = s.scalar(select(Call.occurred_at).where(Call.account_id == account_id)
                      .order_by(Call.occurred_at)).replace(tzinfo=UTC)
    zone = ZoneInfo(account_zone)
    return times.format_clock(at, zone) if style == "clock" else times.format_time(at, zone)


def row_of(page: str, caller: str) -> str:
    rows = [r for r in page.split("<tr>") if f">{caller}</a>" in r]
    assert rows, f"no row for {caller}"
    return rows[0]


def test_the_list_names_the_owner_marks_a_pause_and_previews_the_last_text(two_accounts, runtime):
    client = two_accounts
    token = sign_in(client)
    page = client.get("/conversations?account=acme").get_data(as_text=True)
    replied = row_of(page, CALLER)
    assert "Sam Rivera" in replied  # the owner's name, not the CRM id
    assert '<span class="muted">Customer:</span> Can you come' in replied
    assert "customer replied" in replied
    # Times in the account's zone with the zone named (Chicago is on CDT in June).
    assert call_time(runtime, "acme").endswith(" CDT") and call_time(runtime, "acme") in replied
    assert not re.search(r">[^<]*\d{4}-\d\d-\d\d", replied)  # no ISO date shown
    other = row_of(page, OTHER_CALLER)
    assert "<span class=\"muted\">Us:</span> Hi there" in other and "paused" not in other
    # Pause the other caller: the list marks them.
    call_id = re.search(r'href="/conversations/([^"]+)">' + re.escape(OTHER_CALLER), page).group(1)
    client.post(f"/conversations/{call_id}/pause", data={"paused": "1", "csrf": token})
    page = client.get("/conversations?account=acme").get_data(as_text=True)
    assert "automation paused" in row_of(page, OTHER_CALLER)
    assert "automation paused" not in row_of(page, CALLER)


def test_the_thread_shows_texts_without_blank_lines_in_the_accounts_zone(two_accounts, runtime):
    client = two_accounts
    sign_in(client)
    page = client.get("/conversations?account=acme").get_data(as_text=True)
    call_id = re.search(r'href="/conversations/([^"]+)">' + re.escape(CALLER), page).group(1)
    thread = client.get(f"/conversations/{call_id}").get_data(as_text=True)
    bubbles = re.findall(r'<p class="body">(.*?)</p>', thread, re.S)
    assert bubbles[-1] == "Can you come\n\ntoday?"  # the customer's own lines, nothing added
    assert all(b == b.strip() for b in bubbles)
    assert f"{call_time(runtime, 'acme', 'clock')}</time> · automatic text-back · sent" in thread
    assert "Owner: Sam Rivera." in thread


def test_the_other_account_keeps_its_own_zone(two_accounts, runtime):
    client = two_accounts
    sign_in(client)
    page = client.get("/conversations?account=bolt").get_data(as_text=True)
    assert call_time(runtime, "bolt").endswith(" EDT") and call_time(runtime, "bolt") in page
    assert '<option value="bolt" selected>Bolt Electric</option>' in page


def test_conversations_in_the_browser_at_both_widths(two_accounts, live_server, browser):
    page = browser.new_page()
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "olive@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/conversations")
    page.select_option("#account-switcher", "acme")
    page.wait_for_url("**/conversations?account=acme")
    page.click(f"text={OTHER_CALLER}")
    page.click("#pause")
    page.goto(f"{live_server}/conversations")  # remembers Acme
    assert page.locator("#account-switcher").input_value() == "acme"
    assert page.locator("mark.badge").inner_text() == "automation paused"
    check_page(page, "conversations-two-accounts")
    # The header at phone width: the name and "Sign out" each on one line.
    page.set_viewport_size({"width": 390, "height": 900})
    button = page.locator("#sign-out").bounding_box()
    assert button is not None and button["height"] < 50
    page.click(f"text={CALLER}")
    page.click("details.explain summary")
    page.wait_for_selector(".explain-out")
    check_page(page, "thread-with-reply")


def test_a_bubble_from_another_day_names_the_day(app):
    when = app.jinja_env.filters["when"]
    chicago = ZoneInfo("America/Chicago")
    now = clock.now()
    earlier_at = now - timedelta(days=2)
    today = when(now, {"timezone": "America/Chicago"}, "clock")
    earlier = when(earlier_at, {"timezone": "America/Chicago"}, "clock")
    assert f">{times.format_clock(now, chicago)}</time>" in today
    assert f">{times.format_time(earlier_at, chicago)}</time>" in earlier
    assert times.format_time(earlier_at, chicago).startswith(f"{earlier_at.astimezone(chicago):%b} ")
    naive = when((now - timedelta(hours=8)).replace(tzinfo=None), {"timezone": "America/Chicago"})
    assert "· 8 h ago" in naive  # SQLite hands back naive UTC: read as UTC


def test_the_thread_says_in_words_what_happened_and_why(two_accounts, webhook_secret):
    client = two_accounts
    sign_in(client)
    post(client, "acme", "voice", missed("CALL9"), webhook_secret)  # calls again: a burst
    page = client.get("/conversations?account=acme").get_data(as_text=True)
    assert "Rang out with no answer. Texted back." in row_of(page, OTHER_CALLER)
    call_id = re.search(r'href="/conversations/([^"]+)">' + re.escape(CALLER), page).group(1)
    thread = client.get(f"/conversations/{call_id}").get_data(as_text=True)
    assert "it rang out with no answer." in thread
    assert "Not texted: they called several times in a row; one text covers them." in thread
    assert f'hx-get="/conversations/{call_id}/explain"' in thread
    why = client.get(f"/conversations/{call_id}/explain").get_data(as_text=True)
    assert why.startswith('<pre class="explain-out">Call ' + call_id)
    # Another account's call is not explained to this user.
    add_account(client.application.extensions["textback"], sandbox_account("zed", webhook_secret))
    post(client, "zed", "voice", missed("ZED1"), webhook_secret)
    with client.application.extensions["textback"].db.session() as s:
        foreign = s.scalar(select(Call.id).where(Call.account_id == "zed"))
    assert client.get(f"/conversations/{foreign}/explain").status_code == 404
