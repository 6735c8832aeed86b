"""The conversation and dashboard pages in a real headless browser (Playwright driving Debian's
Chromium, which ``make test`` installs): sign in, open a thread, reply, see the reply in it."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator

import pytest

from connector.storage.users import add_user
from tests.connector.helpers import CALLER, add_account, missed, post, records, sandbox_account

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without these Chromium keeps reaching for Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def live_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from waitress.server import create_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.close()


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (make test installs it)")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def test_sign_in_open_a_thread_reply_and_see_it(app, runtime, webhook_secret, live_server,
                                                 browser):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    with runtime.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", "correct horse battery", "acme")
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)

    page = browser.new_page()
    page.goto(f"{live_server}/conversations")
    assert "/login" in page.url
    page.fill("input[name=email]", "dana@acme.test")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/conversations")
    assert CALLER in page.inner_text("table")

    page.click("table a")
    page.wait_for_selector("#thread")
    assert "automatic text-back" in page.inner_text("#thread")
    page.fill("textarea[name=body]", "Hi, this is Dana. We can be there at 3pm.")
    page.click("#reply button[type=submit]")
    page.wait_for_selector("text=We can be there at 3pm")
    bubbles = page.locator("#thread .bubble.out")
    assert "We can be there at 3pm" in bubbles.last.inner_text()
    assert records(runtime, "acme", "sms")[-1]["body"].endswith("We can be there at 3pm.")

    page.goto(f"{live_server}/dashboard")
    assert page.locator("svg.chart").count() == 4
    assert "1 missed calls" in page.inner_text("main")
