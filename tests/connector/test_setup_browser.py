"""A new admin creates an account and sets it up in a real browser (Playwright driving Chromium),
against the built-in sandbox carrier and CRM (local stubs that record what they are sent): every
setup page, from "not started" to a green checklist and a test text the carrier stub received. Each page
is screenshotted at 1280 and 390 px (``var/screenshots/setup-*.png``), checked for sideways
scrolling and with axe-core."""

from __future__ import annotations

from typing import Any

from connector.storage.users import add_user
from tests.browser import check_page
from tests.conftest import SUITE_INSTANT
from tests.connector.helpers import records

PASSWORD = "correct horse battery"


def _save(page: Any, button: str, exact: bool = True) -> None:
    page.get_by_role("button", name=button, exact=exact).click()
    page.wait_for_load_state("networkidle")


def test_a_new_admin_reaches_a_green_checklist_and_a_delivered_test_text(
        frozen_clock, runtime, live_server, browser):
    frozen_clock.move_to(SUITE_INSTANT)  # the times asserted below are this instant's
    with runtime.db.session() as s:  # an operator: an admin of every account
        add_user(s, "ana@bright.test", "Ana", PASSWORD, None, role="admin")
    page = browser.new_page()
    page.goto(f"{live_server}/accounts/new")
    page.fill("input[name=email]", "ana@bright.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/accounts/new")
    page.fill("#name", "Bright Plumbing")
    page.fill("#id", "fresh")
    page.fill("#timezone", "Nowhere/Special")
    _save(page, "Create the account")
    assert "IANA time zone" in page.inner_text("#timezone-error")
    check_page(page, "setup-new-account")
    page.fill("#timezone", "America/Chicago")
    _save(page, "Create the account")
    base = f"{live_server}/accounts/fresh/setup"
    page.wait_for_url(base)
    assert page.locator("ol.checklist > li").count() == 8
    assert page.locator("mark.state-done").count() == 0
    check_page(page, "setup-checklist-new")

    # 1. The carrier: a wrong secret is refused in place, then the number is pointed at us.
    page.click("nav.setup-steps >> text=Carrier")
    page.fill("#cred_webhook_secret", "short")
    _save(page, "Check with", exact=False)
    assert "refused the credentials" in page.inner_text("main")
    page.fill("#cred_webhook_secret", "y" * 24)
    _save(page, "Check with", exact=False)
    assert "accepted the credentials" in page.inner_text("main")
    _save(page, "Point the number at textback")
    assert "/webhooks/sandbox/fresh/voice" in page.inner_text("main")
    check_page(page, "setup-carrier")

    # 2. What counts as a missed call: the defaults, reviewed.
    page.click("nav.setup-steps >> text=Missed calls")
    page.check("input[value=voicemail]")
    _save(page, "Save")
    check_page(page, "setup-missed-calls")

    # 3. Hours: a bad entry shows its message next to the field; split shifts saved.
    page.click("nav.setup-steps >> text=Hours")
    page.fill("#weekly_mon", "8 till 5")
    _save(page, "Save hours")
    assert page.locator("#weekly_mon-error").inner_text().startswith("write hours as")
    for day in ("mon", "tue", "wed", "thu", "fri"):
        page.fill(f"#weekly_{day}", "08:00-12:00, 13:00-17:00")
    page.fill("#holidays", "2026-12-25 Christmas Day")
    _save(page, "Save hours")
    assert "Hours saved." in page.inner_text("main")
    assert "next opens today at 8:00 AM" in page.inner_text("main")
    check_page(page, "setup-hours")

    # Texts: the preview and the segment count follow the typing.
    page.click("nav.setup-steps >> text=Texts")
    page.fill("#text_general_en", "Sorry we missed your call, this is {business_name} 🙂. "
                                  "What can we do for you? Reply STOP to opt out.")
    page.wait_for_selector("#preview-text_general_en >> text=UCS-2")
    assert "this is Bright Plumbing 🙂" in page.inner_text("#preview-text_general_en")
    _save(page, "Save texts")
    assert "Texts saved." in page.inner_text("main")
    check_page(page, "setup-texts")

    # 6. The CRM: test the connection, then map from its lists.
    page.click("nav.setup-steps >> text=CRM")
    _save(page, "Test connection")
    assert "may create follow-up tasks" in page.inner_text("#connection-test")
    page.check("input[name=creates][value=task]")
    page.select_option("#pipeline", "default")
    page.select_option("#stage", "new")
    page.select_option("#owner_id", "owner-1")
    check_page(page, "setup-crm")
    _save(page, "Save")
    assert "is saved" in page.inner_text("main")

    # 4 and 5. Routing: owners from the CRM's users, who is first, who is next.
    page.click("nav.setup-steps >> text=Routing")
    page.check("input[name=owner][value=owner-1]")
    page.check("input[name=owner][value=owner-2]")
    page.fill("#mobile_1", "+14155550111")
    page.check("input[name=alerts_owner-1][value=sms]")
    page.fill("#email_2", "sam@bright.test")
    page.check("input[name=alerts_owner-2][value=email]")
    page.select_option("#default_owner", "owner-1")
    page.select_option("#backup_owner", "owner-2")
    _save(page, "Save routing")
    assert "Routing saved." in page.inner_text("main")
    check_page(page, "setup-routing")

    # 7. Consent.
    page.click("nav.setup-steps >> text=Consent")
    page.check("input[name=who_answers][value=textback]")
    _save(page, "Save consent")
    check_page(page, "setup-consent")

    # Test: a real text to the admin's phone, then a simulated missed call.
    page.click("nav.setup-steps >> text=Test")
    page.fill("#phone", "+14155550177")
    _save(page, "Send me a test text")
    assert "accepted the test text" in page.inner_text("main")
    sent = records(runtime, "fresh", "sms")
    assert sent[-1]["to"] == "+14155550177" and "Test text from Bright Plumbing" in sent[-1]["body"]
    check_page(page, "setup-test")
    page.fill("#phone", "+14155550177")
    _save(page, "Simulate a missed call from my phone")
    assert "What happened, step by step" in page.inner_text("main")
    assert "contact" in page.inner_text("#crm-records")
    check_page(page, "setup-simulated-call")

    page.click("nav.setup-steps >> text=Checklist")
    states = page.locator("ol.checklist mark").all_inner_texts()
    assert states == ["Done"] * 8, states
    check_page(page, "setup-checklist-done")
