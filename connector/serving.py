"""How ``textback serve`` runs its processes: the port first, then the job and web processes.

``textback serve`` binds its port before it starts anything, so a port in use is one clear line
and nothing else happened. It then starts, as child processes it watches:

- one ``textback worker`` when the queue is SQLite (the default), so the jobs (texts, CRM writes,
  the sweeper) never share an interpreter with the threads answering webhooks;
- ``--processes N - 1`` more web processes, so the web side can use more than one core. Each
  has a listening socket of its own on the same port (``SO_REUSEPORT``), bound by the parent
  before anything starts: the kernel hands each new connection to one of them by a hash of its
  addresses, where one shared socket would leave most keep-alive connections with whichever
  process woke first. The hash spreads many connections evenly; a few long-lived keep-alive
  connections can split unevenly (20 split 14 to 6 in one measurement).

The parent answers requests itself too. A child that exits is started again (after a pause
that grows while it keeps failing); when the parent stops, it closes each child's standard
input, which the child takes as the signal to finish its work under way and leave.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random

from connector.kernel.errors import ConfigurationError

log = logging.getLogger("textback")

#: Seconds a stopping child gets to finish its work before it is killed.
CHILD_GRACE_SECONDS = 20.0
#: Pauses before restarting a child that exited: doubling from the first to the last.
RESTART_FIRST_PAUSE = 1.0
RESTART_MAX_PAUSE = 30.0
#: A child that ran this long before exiting is restarted after the first pause again.
HEALTHY_RUN_SECONDS = 60.0


def freeze_startup_objects() -> None:
    """Keep what start-up made out of the garbage collector's full collections.

    A process that has loaded the app holds a few hundred thousand long-lived objects (modules,
    the Flask app, SQLAlchemy's mappers and compiled statements). A full collection walks them
    all, about 100 ms under load during which no thread of the process runs: a webhook's answer
    waits, and so does every process queued behind a write lock it holds. Frozen, they are
    never walked again (https://docs.python.org/3/library/gc.html#gc.freeze); what the process
    allocates later is collected as usual.
    """
    gc.collect()
    gc.freeze()


def lower_priority(nice: int) -> None:
    """Run this process ``nice`` steps below the web processes' CPU priority.

    A worker texting a burst of callers would otherwise take the cores the web processes need
    to answer the carriers: a caller waits on that answer. Lowered, it still gets every cycle
    the web processes leave. Call it before starting threads: each thread takes its creator's.

    Where the kernel groups processes by session for the scheduler (autogroup, see
    https://man7.org/linux/man-pages/man7/sched.7.html), a process's nice value only ranks it
    within its group, and a worker started on its own (a service, a terminal) leads a group of
    its own: that group's nice value is lowered too. A worker ``serve`` started shares the
    web processes' group, where its own value is what counts.
    """
    if nice <= 0:
        return
    os.nice(nice)
    if os.getsid(0) == os.getpid():
        _lower_autogroup(nice)


#: This process's scheduling group, where the kernel has autogroup.
AUTOGROUP = Path("/proc/self/autogroup")
#: Tries at setting the group's nice value while the kernel answers "not yet", and the pause
#: between them (jittered up to twice that, so workers started together do not meet again).
AUTOGROUP_ATTEMPTS = 50
AUTOGROUP_RETRY_SECONDS = 0.11


def _not_yet(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EAGAIN


def _lower_autogroup(nice: int) -> None:
    """Set this session's scheduling group's nice value to ``nice``.

    A process without CAP_SYS_ADMIN may set a group's nice value once per 100 ms on the whole
    machine, and gets EAGAIN in between
    (https://github.com/torvalds/linux/blob/master/kernel/sched/autogroup.c,
    ``proc_sched_autogroup_set_nice``): of several workers started together, all but the first
    would otherwise keep the web processes' priority. So EAGAIN is tried again.
    """
    retrying = Retrying(
        stop=stop_after_attempt(AUTOGROUP_ATTEMPTS),
        wait=wait_random(AUTOGROUP_RETRY_SECONDS, 2 * AUTOGROUP_RETRY_SECONDS),
        retry=retry_if_exception(_not_yet),
        sleep=time.sleep,
        reraise=True,
    )
    try:
        retrying(AUTOGROUP.write_text, str(nice), encoding="ascii")
    except OSError as exc:
        if _not_yet(exc):
            log.warning("could not lower this worker's scheduling group to nice %d (the kernel "
                        "kept answering EAGAIN): its texts compete with the web processes at "
                        "their priority", nice)
        # else no autogroup here (another kernel, or turned off): nothing to do


def bind_all(host: str, port: int, *, backlog: int, count: int = 1) -> list[socket.socket]:
    """``count`` listening sockets on one ``host:port`` (sharing it with ``SO_REUSEPORT`` when
    more than one), or a :class:`ConfigurationError` as :func:`bind` gives."""
    if count > 1:
        # Others may share a SO_REUSEPORT port: a plain bind first proves that nobody (another
        # textback included) listens on it yet.
        probe = bind(host, port, backlog=backlog)
        port = probe.getsockname()[1]
        probe.close()
    first = bind(host, port, backlog=backlog, reuse_port=count > 1)
    socks = [first]
    try:
        for _ in range(count - 1):  # port 0 picked a free port: the others share that one
            socks.append(bind(host, first.getsockname()[1], backlog=backlog, reuse_port=True))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def bind(host: str, port: int, *, backlog: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port``; a :class:`ConfigurationError` naming what to fix
    when the port is taken or the address is not this machine's. ``reuse_port`` lets other
    sockets of ours (``SO_REUSEPORT``) listen on the same port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror}; check --host", field="--host"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"cannot listen on {host}:{port}: the port is in use (is textback already "
                "running?); stop what uses it or choose another --port", field="--port"
            ) from None
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port",
            field="--port",
        ) from None
    sock.set_inheritable(True)
    return sock


@dataclass
class Child:
    """One child process the parent keeps running."""

    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    pause: float = RESTART_FIRST_PAUSE
    restarts: int = field(default=0)


class Children:
    """Child processes started, watched and restarted until :meth:`stop`."""

    def __init__(self) -> None:
        self._children: list[Child] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._children)

    def add(self, name: str, argv: Sequence[str], *, pass_fds: Sequence[int] = ()) -> None:
        """Start ``argv`` now and keep it running."""
        child = Child(name, list(argv), tuple(pass_fds))
        self._start(child)
        self._children.append(child)
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="children", daemon=True)
            self._watcher.start()

    def pids(self) -> dict[str, int]:
        """Each child's name and current process id."""
        return {c.name: c.proc.pid for c in self._children if c.proc is not None}

    def _start(self, child: Child) -> None:
        # Our own interpreter running our own command line (textback_argv), never user input.
        child.proc = subprocess.Popen(  # noqa: S603
            child.argv, stdin=subprocess.PIPE, pass_fds=child.pass_fds)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for child in self._children:
                with self._lock:
                    if self._stopping.is_set() or child.proc is None:
                        return
                    code = child.proc.poll()
                    if code is None:
                        continue
                    ran = time.monotonic() - child.started_at
                    if ran >= HEALTHY_RUN_SECONDS:
                        child.pause = RESTART_FIRST_PAUSE
                    log.warning("%s exited with status %s after %.0f s; starting it again in "
                                "%.0f s", child.name, code, ran, child.pause)
                pause, child.pause = child.pause, min(child.pause * 2, RESTART_MAX_PAUSE)
                if self._stopping.wait(pause):
                    return
                with self._lock:
                    if self._stopping.is_set():
                        return
                    child.restarts += 1
                    self._start(child)

    def stop(self, grace: float = CHILD_GRACE_SECONDS) -> None:
        """Ask every child to finish (its stdin closes) and wait; kill what outlives ``grace``."""
        with self._lock:
            self._stopping.set()
        for child in self._children:
            if child.proc is not None and child.proc.stdin is not None:
                try:
                    child.proc.stdin.close()
                except OSError:
                    pass
        deadline = time.monotonic() + grace
        for child in self._children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.name, grace)
                child.proc.kill()
                child.proc.wait()


def textback_argv(*args: str) -> list[str]:
    """The command line that runs ``textback *args`` with this interpreter."""
    return [sys.executable, "-m", "connector.cli", *args]
