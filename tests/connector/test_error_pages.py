"""Error pages: the app's look, what happened and a way back, for people; plain answers for
machines."""

from __future__ import annotations

import logging
import re

from connector.storage.users import add_user
from tests.browser import check_page
from tests.connector.helpers import add_account, missed, post, sandbox_account

PASSWORD = "correct horse battery"


def signed_in_client(app, runtime, webhook_secret):  # type: ignore[no-untyped-def]
    add_account(runtime, sandbox_account("acme", webhook_secret))
    with runtime.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", PASSWORD, "acme")
    client = app.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "dana@acme.test", "password": PASSWORD, "csrf": token})
    return client


def test_a_missing_page_has_the_apps_look_and_a_way_back(app):
    answer = app.test_client().get("/no/such/page", headers={"Referer": "http://localhost/login"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 404 and answer.mimetype == "text/html"
    assert "<h1>Page not found</h1>" in page and "pico.min.css" in page
    assert '<a href="/login">&larr; Back to the previous page</a>' in page
    assert '<a href="/">Home</a>' in page


def test_a_referer_from_another_site_is_no_way_back(app):
    page = app.test_client().get("/nope", headers={"Referer": "https://evil.example/x"}) \
        .get_data(as_text=True)
    assert "evil.example" not in page and "Back to the previous page" not in page


def test_an_expired_form_says_so(app, runtime, webhook_secret):
    client = signed_in_client(app, runtime, webhook_secret)
    answer = client.post("/logout", data={})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "The form expired: reload the page and try again." in page
    assert '<a href="/conversations">Conversations</a>' in page  # signed in: back to work


def test_a_wrong_method_keeps_the_allow_header(app):
    answer = app.test_client().get("/logout")
    assert answer.status_code == 405 and "POST" in answer.headers["Allow"]
    assert "<h1>Not allowed here</h1>" in answer.get_data(as_text=True)


def test_a_fault_shows_no_detail_and_is_logged(app, caplog):
    def boom() -> str:
        raise RuntimeError("secret detail of the fault")

    app.add_url_rule("/boom", view_func=boom)
    with caplog.at_level(logging.ERROR):
        answer = app.test_client().get("/boom")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 500
    assert "<h1>Something went wrong on our side</h1>" in page
    assert "secret detail" not in page
    assert any("secret detail of the fault" in str(r.exc_info) for r in caplog.records)


def test_machines_keep_plain_answers(app, webhook_secret):
    client = app.test_client()
    answer = post(client, "nobody", "voice", missed(), webhook_secret)
    assert answer.status_code == 404 and "Page not found" not in answer.get_data(as_text=True)
    assert "Page not found" not in client.get("/static/nothing.css").get_data(as_text=True)
    answer = client.post("/hubspot/workflow-actions/send-text/nothing", json={})
    assert answer.status_code == 404 and "Page not found" not in answer.get_data(as_text=True)
    answer = client.post("/no/such/api", json={}, headers={"Accept": "*/*"})
    assert answer.status_code == 404 and "Page not found" not in answer.get_data(as_text=True)


def test_error_pages_in_the_browser(app, runtime, webhook_secret, live_server, browser):
    def boom() -> str:
        raise RuntimeError("a fault")

    app.add_url_rule("/boom", view_func=boom)  # before the first request, as Flask requires
    page = browser.new_page()
    page.goto(f"{live_server}/login")
    page.evaluate("location.href = '/no/such/page'")  # as a link would: with a Referer
    page.wait_for_url(f"{live_server}/no/such/page")
    assert page.locator("h1").inner_text() == "Page not found"
    check_page(page, "error-404")
    page.click("text=Back to the previous page")
    page.wait_for_url(f"{live_server}/login")
    page.goto(f"{live_server}/boom")
    assert page.locator("h1").inner_text() == "Something went wrong on our side"
    check_page(page, "error-500")
