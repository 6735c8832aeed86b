"""Pages in a real browser: Playwright driving Debian's Chromium, at a desk's and a phone's width.

:func:`check_page` is the one check every page gets: at 1280 px and at 390 px it saves a full-page
screenshot under ``var/screenshots/`` (the test artifacts), asserts the page does not scroll
sideways (naming the elements that stick out when it does), and runs axe-core's WCAG 2 A and AA
rules (text contrast, labels on inputs, names on buttons and links) over it.

axe-core comes from npm, installed once into ``var/test-tools/`` and reused after that. The
fixtures here (``live_server``, ``browser``) are offered to every test by ``tests/conftest.py``.
Without Chromium, Playwright, or node and npm, the browser tests skip with the reason.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Where each page's screenshots land, as ``<name>-<width>.png``.
SCREENSHOTS = ROOT / "var" / "screenshots"
#: The npm folder the browser tests own (axe-core is installed here, once).
TOOLS = ROOT / "var" / "test-tools"
AXE_VERSION = "4.10.3"
#: A desk's and a phone's width, in CSS pixels.
WIDTHS = (1280, 390)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without these Chromium keeps reaching for Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
#: axe-core's rule sets run on every page: WCAG 2.0 and 2.1, levels A and AA.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The test's app served by waitress on a free local port; yields its base URL."""
    from waitress.server import create_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session; open pages with ``browser.new_page()`` (each page
    gets its own cookies)."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (make test installs it)")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def axe_script() -> Path:
    """axe-core's ``axe.min.js``, installed from npm into :data:`TOOLS` on first use."""
    script = TOOLS / "node_modules" / "axe-core" / "axe.min.js"
    manifest = script.with_name("package.json")
    if script.exists() and json.loads(manifest.read_text())["version"] == AXE_VERSION:
        return script
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed: the contrast check needs axe-core from npm")
    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(TOOLS / ".lock", "w") as lock:  # one install at a time, whoever runs tests
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (script.exists() and json.loads(manifest.read_text())["version"] == AXE_VERSION):
            done = subprocess.run(  # noqa: S603 - a fixed command line
                [npm, "install", "--prefix", str(TOOLS), "--no-audit", "--no-fund",
                 "--no-save", f"axe-core@{AXE_VERSION}"],
                capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0 or not script.exists():
                pytest.fail(f"npm could not install axe-core {AXE_VERSION}: {done.stderr[-800:]}")
    return script


_OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 1) {
      const classes = typeof el.className === "string" && el.className
        ? "." + el.className.trim().split(" ").filter(Boolean).join(".") : "";
      wide.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${classes}` +
                ` (right edge ${Math.round(box.right)} px)`);
    }
  }
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 8)};
}"""

_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
  return result.violations.map(v => ({
    rule: v.id, help: v.help,
    nodes: v.nodes.slice(0, 5).map(
      n => `${n.target.join(" ")}: ${n.failureSummary.split("\\n").slice(1).join(" ")}`),
  }));
}"""


def check_page(page: Any, name: str, widths: tuple[int, ...] = WIDTHS) -> list[Path]:
    """Screenshot the page at each width, assert no sideways scroll and no axe-core violation.

    ``page`` is already on the page to check; its state is kept (no reload), so a page after a
    click is checked as the person sees it. Returns the screenshots' paths.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    axe = axe_script()
    shots = []
    for width in widths:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_load_state("networkidle")
        shot = SCREENSHOTS / f"{name}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        shots.append(shot)
        overflow = page.evaluate(_OVERFLOW)
        assert overflow["scroll"] <= overflow["width"], (
            f"{name} scrolls sideways at {width} px (content {overflow['scroll']} px wide); "
            f"sticking out: {', '.join(overflow['wide']) or 'nothing visible'}; see {shot}")
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.add_script_tag(path=str(axe))
        violations = page.evaluate(_AXE, AXE_TAGS)
        assert not violations, f"{name} at {width} px fails axe-core:\n" + "\n".join(
            f"- {v['rule']} ({v['help']}): " + "; ".join(v["nodes"]) for v in violations)
    return shots
