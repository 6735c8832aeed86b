"""The outbound ``requests`` session reads the environment once, and only where that changes
nothing: a proxy or a netrc file in the environment keeps requests' own per-request reading."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from connector.kernel.http import DEFAULT_TIMEOUT, new_session


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No proxy, no CA bundle and no netrc file in the environment; the netrc path to use."""
    for key in list(os.environ):
        if key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


class _Recorder(BaseHTTPRequestHandler):
    """Answers 200 and keeps each request line (a proxy is sent the whole URL)."""

    seen: list[str]

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
        self.seen.append(self.requestline)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server's base URL and the request lines it was sent."""
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_bare_environment_is_not_read_at_every_request(bare_environment: Path) -> None:
    session = new_session()
    assert session.trust_env is False
    assert session.verify is True


def test_a_ca_bundle_in_the_environment_becomes_the_sessions_own(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/curl-bundle.pem")
    assert new_session().verify == "/etc/curl-bundle.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/requests-bundle.pem")  # requests' own first
    session = new_session()
    assert (session.trust_env, session.verify) == (False, "/etc/requests-bundle.pem")


def test_a_netrc_file_keeps_requests_reading_the_environment(bare_environment: Path) -> None:
    bare_environment.write_text("machine api.example.com login user password secret\n")
    assert new_session().trust_env is True


def test_a_proxy_in_the_environment_is_still_used(
    bare_environment: Path, monkeypatch: pytest.MonkeyPatch,
    recorder: tuple[str, list[str]],
) -> None:
    proxy, seen = recorder
    monkeypatch.setenv("HTTP_PROXY", proxy)
    session = new_session()
    assert session.trust_env is True
    answer = session.get("http://carrier.invalid/2010-04-01/Messages.json",
                         timeout=DEFAULT_TIMEOUT)
    assert answer.status_code == 200
    assert seen == ["GET http://carrier.invalid/2010-04-01/Messages.json HTTP/1.1"]


def test_without_a_proxy_requests_go_straight_to_the_host(
    bare_environment: Path, recorder: tuple[str, list[str]]
) -> None:
    base, seen = recorder
    assert new_session().get(f"{base}/status", timeout=DEFAULT_TIMEOUT).status_code == 200
    assert seen == ["GET /status HTTP/1.1"]
