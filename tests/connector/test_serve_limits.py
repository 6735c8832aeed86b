"""``textback serve``'s waitress limits: slow clients cannot crowd out everyone else."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from connector import cli
from connector.cli import MAX_REQUEST_BODY_BYTES, main, waitress_options

#: More slow clients than waitress's own default connection limit (100).
SLOW_CLIENTS = 120


@pytest.fixture
def serve(app) -> Iterator[Callable[..., str]]:  # type: ignore[no-untyped-def]
    """Start the real waitress server on a free loopback port with given options; its base URL."""
    from waitress.server import create_server

    servers: list[Any] = []

    def start(**options: Any) -> str:
        server = create_server(app, host="127.0.0.1", port=0, **options)
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.effective_port}"

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def slow_clients() -> Iterator[list[socket.socket]]:
    """Sockets the test opens; all closed afterwards."""
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


def trickle(base: str, socks: list[socket.socket], count: int) -> None:
    """Open ``count`` connections that send half a request line, then a byte more now and then."""
    port = int(base.rsplit(":", 1)[1])
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        sock.sendall(b"GET /heal")
        socks.append(sock)
    for _ in range(3):  # let the server take them all in, still trickling
        time.sleep(0.1)
        for sock in socks:
            sock.sendall(b"t")


def test_healthz_answers_while_120_clients_trickle_headers(serve, slow_clients) -> None:  # type: ignore[no-untyped-def]
    base = serve(**waitress_options(threads=4))
    trickle(base, slow_clients, SLOW_CLIENTS)
    started = time.monotonic()
    response = requests.get(f"{base}/healthz", timeout=2)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert time.monotonic() - started < 2


def test_a_silent_connection_is_closed_after_the_channel_timeout(serve, slow_clients) -> None:  # type: ignore[no-untyped-def]
    base = serve(**waitress_options(threads=2, channel_timeout=1))
    trickle(base, slow_clients, 1)
    sock = slow_clients[0]
    sock.settimeout(5)
    started = time.monotonic()
    assert sock.recv(1024) == b""  # closed by the server, nothing sent back
    assert time.monotonic() - started < 4


def test_oversized_headers_and_bodies_are_refused_before_the_app(serve) -> None:  # type: ignore[no-untyped-def]
    base = serve(**waitress_options(threads=2))
    big_header = requests.get(f"{base}/healthz", headers={"X-Filler": "a" * 70_000}, timeout=5)
    assert big_header.status_code == 431
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     + str(MAX_REQUEST_BODY_BYTES + 1).encode() + b"\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 413")


def test_serve_runs_waitress_with_the_limits_and_the_operators_choices(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", "c" * 40)
    monkeypatch.setenv("TEXTBACK_DEMO", "false")
    assert main(["db", "upgrade"]) == 0
    seen: dict[str, Any] = {}
    class Server:  # waitress's, recording its settings instead of serving
        def __init__(self, app: Any, **kwargs: Any) -> None:
            seen.update(kwargs)

        def run(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr("waitress.server.create_server", Server)
    monkeypatch.setattr(cli, "_ensure_open_files", lambda needed: seen.update(files=needed))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["serve", "--workers", "0", "--processes", "1", "--port", "0",
                     "--connection-limit", "500",
                     "--channel-timeout", "20", "--threads", "6"]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen["connection_limit"] == 500 and seen["channel_timeout"] == 20
    assert seen["threads"] == 6 and seen["files"] == 600
    assert seen["max_request_body_size"] == MAX_REQUEST_BODY_BYTES
    assert seen["max_request_header_size"] == 64 * 1024
    assert seen["cleanup_interval"] <= 10 and seen["asyncore_use_poll"] is True
    assert len(seen["sockets"]) == 1  # bound before anything started


@pytest.mark.parametrize(("cores", "processes"), [(1, 1), (2, 2), (3, 3), (16, 4)])
def test_serve_runs_a_web_process_per_core_by_default_up_to_four(
        monkeypatch: pytest.MonkeyPatch, cores: int, processes: int) -> None:
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert cli.default_processes() == processes


@pytest.mark.parametrize("argv", [
    ["--connection-limit", "0"], ["--channel-timeout", "-5"], ["--threads", "many"],
])
def test_bad_serve_options_are_refused(argv: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["serve", *argv])
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err
