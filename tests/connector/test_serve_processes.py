"""``textback serve`` and ``textback worker`` start-up: the port and the queue are checked before
anything starts or is written; ``serve`` runs its jobs and extra web processes as children; a
worker waits out a Redis outage quietly."""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from connector import serving
from connector.cli import main
from connector.jobs import queue
from connector.jobs.queue import GuardedRedisHuey, QueueOutage
from connector.kernel.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An upgraded SQLite database, the demo on, metrics and queue files beside it (not made)."""
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'db' / 'serve.db'}")
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", "c" * 40)
    monkeypatch.setenv("TEXTBACK_DEMO", "true")
    assert main(["db", "upgrade"]) == 0
    return tmp_path / "db"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accounts(folder: Path) -> int:
    engine = create_engine(f"sqlite:///{folder / 'serve.db'}")
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM accounts")).scalar_one())
    engine.dispose()
    return n


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("textback:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_serve_on_a_port_in_use_says_so_in_one_line_and_starts_nothing(
        env: Path, taken_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in env.iterdir())
    assert main(["serve", "--port", str(taken_port)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"cannot listen on 127.0.0.1:{taken_port}: the port is in use" in line
    assert "--port" in line
    # No queue files, no metrics directory, no demo account: nothing was started or written.
    assert sorted(p.name for p in env.iterdir()) == before
    assert accounts(env) == 0


def test_serve_on_an_address_not_this_machines_names_the_host(
        env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "192.0.2.1", "--port", str(closed_port())]) == 2
    assert "check --host" in one_line(capsys.readouterr().err)
    assert accounts(env) == 0


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_an_unreachable_redis_queue_is_one_line_and_nothing_is_written(
        env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: str) -> None:
    port = closed_port()
    monkeypatch.setenv("TEXTBACK_QUEUE_URL", f"redis://:hunter2secret@127.0.0.1:{port}/3")
    before = sorted(p.name for p in env.iterdir())
    assert main([command, "--port", str(closed_port())] if command == "serve"
                else [command]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"cannot reach the Redis queue at 127.0.0.1:{port}/3" in line
    assert "TEXTBACK_QUEUE_URL" in line and "hunter2" not in line
    assert sorted(p.name for p in env.iterdir()) == before
    assert accounts(env) == 0


def test_a_worker_waits_out_a_redis_outage_with_one_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    huey = GuardedRedisHuey("outage-test", url=f"redis://127.0.0.1:{closed_port()}/0",
                            results=False, utc=True)
    waits: list[float] = []
    monkeypatch.setattr(queue.time, "sleep", waits.append)
    with caplog.at_level(logging.WARNING, logger="connector.jobs.queue"):
        for _ in range(8):
            assert huey.dequeue() is None
        assert huey.read_schedule() == []
        assert huey.read_periodic(None) == []  # no sweep enqueued while the queue is down
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_the_outage_ends_with_one_line_and_the_waits_start_again() -> None:
    outage = QueueOutage("texts")
    assert outage.failed(ConnectionError()) == 1.0 and outage.failed(ConnectionError()) == 2.0
    assert outage.down
    outage.succeeded()
    assert not outage.down
    assert outage.failed(ConnectionError()) == 1.0


def test_a_worker_reads_its_queue_again_once_redis_is_back(redis_url: str) -> None:
    huey = GuardedRedisHuey("outage-back", url=redis_url, results=False, utc=True)
    huey.outage.failed(ConnectionError())
    assert huey.dequeue() is None  # reachable: no wait, and the outage is over
    assert not huey.outage.down


# -- the processes of serve ------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc")
def test_serve_runs_its_jobs_and_extra_web_processes_as_children_and_stops_them(
        env: Path, tmp_path: Path) -> None:
    port = closed_port()
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own command line
            [sys.executable, "-m", "connector.cli", "serve", "--port", str(port),
             "--processes", "3", "--threads", "2"],
            env=environ, cwd=tmp_path, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):
                # Bound but still starting: the kernel queues the connection until it serves.
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        started = dict(re.findall(r"started (job process|web process \d) \(pid (\d+)\)",
                                  log_path.read_text()))
        assert set(started) == {"job process", "web process 2", "web process 3"}
        assert sorted(_children(proc.pid)) == sorted(int(p) for p in started.values())
        for _ in range(30):  # every process answers on the one port
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        for pid in started.values():
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(
                f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_each_web_process_listens_on_a_socket_of_its_own_and_connections_spread() -> None:
    from connector import serving

    socks = serving.bind_all("127.0.0.1", 0, backlog=64, count=2)
    port = socks[0].getsockname()[1]
    clients = []
    try:
        assert [s.getsockname()[1] for s in socks] == [port, port]
        for _ in range(40):  # one process would take all 40 only once in 2**39 runs
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        accepted = []
        for sock in socks:
            sock.setblocking(False)
            taken = 0
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                taken += 1
            accepted.append(taken)
        assert sum(accepted) == 40 and min(accepted) > 0, accepted
        # A second textback on the port is refused, although our sockets share it.
        with pytest.raises(ConfigurationError, match="the port is in use"):
            serving.bind_all("127.0.0.1", port, backlog=64, count=2)
    finally:
        for s in (*socks, *clients):
            s.close()


def test_what_start_up_made_is_left_out_of_full_collections() -> None:
    import gc

    from connector.serving import freeze_startup_objects

    made_at_start_up = [object()]  # a container: the collector tracks it
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        tracked = {id(o) for o in gc.get_objects()}
        assert id(made_at_start_up) not in tracked  # never walked again
        made_later = [object()]
        assert id(made_later) in {id(o) for o in gc.get_objects()}  # collected as usual
    finally:
        gc.unfreeze()


LOWERED = """
import os, sys
from connector.serving import lower_priority
lower_priority(int(sys.argv[1]))
group = ""
if os.path.exists("/proc/self/autogroup"):
    group = open("/proc/self/autogroup").read()
print(os.getpriority(os.PRIO_PROCESS, 0), group)
"""


def _autogroup_nice(text: str) -> int | None:
    """The nice value in a ``/proc/<pid>/autogroup`` line ("/autogroup-85 nice 0"), or None
    where the kernel has no autogroup to show (absent, or turned off and empty)."""
    parts = text.split()
    return int(parts[-1]) if len(parts) >= 3 and parts[-2] == "nice" else None


@pytest.mark.parametrize("own_session", [True, False], ids=["own session", "serve's child"])
def test_a_worker_runs_below_the_web_processes_cpu_priority(own_session: bool) -> None:
    import subprocess

    before = os.getpriority(os.PRIO_PROCESS, 0)
    ours = Path("/proc/self/autogroup")
    our_group = _autogroup_nice(ours.read_text()) if ours.exists() else None
    priority, _, group = subprocess.run(  # noqa: S603
        [sys.executable, "-c", LOWERED, "7"], capture_output=True, text=True,
        check=True, start_new_session=own_session).stdout.partition(" ")
    assert int(priority) == min(before + 7, 19)
    their_group = _autogroup_nice(group)
    if their_group is not None and our_group is not None:
        # the kernel groups by session: only a group of its own is lowered
        assert their_group == (7 if own_session else our_group)


class StandInGroup:
    """``/proc/self/autogroup`` answering ``error`` to the first ``refusals`` writes."""

    def __init__(self, refusals: int, error: int = errno.EAGAIN) -> None:
        self.refusals, self.error = refusals, error
        self.tries = 0
        self.written: str | None = None

    def write_text(self, text: str, encoding: str) -> int:
        self.tries += 1
        if self.tries <= self.refusals:
            raise OSError(self.error, os.strerror(self.error))
        self.written = text
        return len(text)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses :mod:`connector.serving` takes, recorded instead of slept."""
    taken: list[float] = []
    monkeypatch.setattr("connector.serving.time.sleep", taken.append)
    return taken


def test_a_worker_started_beside_another_waits_its_turn_to_lower_its_group(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    # Without CAP_SYS_ADMIN the kernel takes one group nice value per 100 ms machine-wide and
    # answers EAGAIN in between: the second of two workers started together was left unlowered.
    group = StandInGroup(refusals=3)
    monkeypatch.setattr(serving, "AUTOGROUP", group)
    serving._lower_autogroup(7)
    assert (group.written, group.tries) == ("7", 4)
    assert len(pauses) == 3
    assert all(0.1 < pause < 0.25 for pause in pauses)
    assert not caplog.records


def test_a_kernel_without_autogroup_is_not_asked_again(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    group = StandInGroup(refusals=1, error=errno.ENOENT)
    monkeypatch.setattr(serving, "AUTOGROUP", group)
    serving._lower_autogroup(7)
    assert (group.written, group.tries, pauses) == (None, 1, [])
    assert not caplog.records


def test_a_group_the_kernel_never_lets_go_is_logged_not_raised(
        monkeypatch: pytest.MonkeyPatch, pauses: list[float],
        caplog: pytest.LogCaptureFixture) -> None:
    group = StandInGroup(refusals=10_000)
    monkeypatch.setattr(serving, "AUTOGROUP", group)
    with caplog.at_level(logging.WARNING, logger="textback"):
        serving._lower_autogroup(7)
    assert group.written is None and group.tries == serving.AUTOGROUP_ATTEMPTS
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "nice 7" in caplog.records[0].getMessage()
    assert "EAGAIN" in caplog.records[0].getMessage()


def test_worker_nice_must_be_a_nice_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["worker", "--nice", "25"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--nice" in err[0]
