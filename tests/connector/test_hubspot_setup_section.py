"""The setup page's HubSpot section: textback's events and workflow action, explained, with a
way into HubSpot's workflow editor; other CRMs' pages do not show it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.storage.users import add_user
from tests.connector.helpers import add_account, sandbox_account
from tests.connector.test_setup_pages import PASSWORD, SECRET, sign_in
from tests.stubs.hubspot_stub import HubSpotStub


@pytest.fixture
def hubspot() -> Iterator[HubSpotStub]:
    with HubSpotStub(access_token="pat-setup") as stub:
        yield stub


def test_the_hubspot_setup_page_explains_the_events_and_the_action(app, runtime, hubspot):  # type: ignore[no-untyped-def]
    doc = sandbox_account("acme", SECRET)
    doc["crm"] = {"kind": "hubspot", "credentials": {"access_token": "pat-setup"},
                  "api_base_url": hubspot.url}
    add_account(runtime, doc)
    add_account(runtime, sandbox_account("other", SECRET))
    with runtime.db.session() as s:
        add_user(s, "ana@acme.test", "Ana", PASSWORD, None, role="admin")
    admin = sign_in(app, "ana@acme.test")
    page = admin.get("/accounts/acme/setup/crm")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "In HubSpot&#39;s workflows" in text or "In HubSpot's workflows" in text
    assert "Send a text with textback" in text and "customer replied" in text
    assert 'href="https://app.hubspot.com/l/workflows"' in text
    other = admin.get("/accounts/other/setup/crm").get_data(as_text=True)
    assert "Send a text with textback" not in other


def test_the_hubspot_section_reads_at_desk_and_phone_width(runtime, live_server, browser, hubspot):  # type: ignore[no-untyped-def]
    from tests.browser import check_page

    doc = sandbox_account("acme", SECRET)
    doc["crm"] = {"kind": "hubspot", "credentials": {"access_token": "pat-setup"},
                  "api_base_url": hubspot.url}
    add_account(runtime, doc)
    with runtime.db.session() as s:
        add_user(s, "ana@acme.test", "Ana", PASSWORD, "acme", role="admin")
    page = browser.new_page()
    url = f"{live_server}/accounts/acme/setup/crm"
    page.goto(url)
    page.fill("input[name=email]", "ana@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url)
    section = page.locator("section[aria-labelledby=workflows-h]")
    assert "Send a text with textback" in section.inner_text()
    check_page(page, "setup-crm-hubspot-workflows")
