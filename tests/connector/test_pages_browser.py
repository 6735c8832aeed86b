"""The conversation and dashboard pages in a real headless browser (Playwright driving Debian's
Chromium, which ``make test`` installs): sign in, open a thread, reply, see the reply in it."""

from __future__ import annotations

from connector.storage.users import add_user
from tests.browser import check_page
from tests.connector.helpers import CALLER, add_account, missed, post, records, sandbox_account


def test_sign_in_open_a_thread_reply_and_see_it(app, runtime, webhook_secret, live_server,
                                                 browser):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    with runtime.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", "correct horse battery", "acme")
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)

    page = browser.new_page()
    page.goto(f"{live_server}/conversations")
    assert "/login" in page.url
    check_page(page, "login")
    page.fill("input[name=email]", "dana@acme.test")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/conversations")
    assert CALLER in page.inner_text("table")
    check_page(page, "conversations")

    page.click("table a")
    page.wait_for_selector("#thread")
    assert "automatic text-back" in page.inner_text("#thread")
    page.fill("textarea[name=body]", "Hi, this is Dana. We can be there at 3pm.")
    page.click("#reply button[type=submit]")
    page.wait_for_selector("text=We can be there at 3pm")
    bubbles = page.locator("#thread .bubble.out")
    assert "We can be there at 3pm" in bubbles.last.inner_text()
    assert records(runtime, "acme", "sms")[-1]["body"].endswith("We can be there at 3pm.")
    check_page(page, "thread")

    page.goto(f"{live_server}/dashboard")
    assert page.locator("figure.chart").count() == 4
    assert page.locator('[data-figure="missed_calls"] .value').inner_text() == "1"
    check_page(page, "dashboard-one-call")
