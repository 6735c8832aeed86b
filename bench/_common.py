"""Shared helpers for the benchmarks: processes, ``textback`` setup, Twilio signing, stubs, figures.

Run as a program it is the stub process the service benchmarks start::

    .venv/bin/python bench/_common.py stubs [--hubspot-latency 0.3]

It serves a stub Twilio REST API (Messages create and list, recording the arrival time and ``To``
of every text, and Lookup v2) and the HubSpot stub from ``tests/stubs/hubspot_stub.py``, prints
their ports as one JSON line and runs until its stdin closes. ``GET /_bench/sms`` and
``GET /_bench/hubspot`` on the carrier stub return the two logs.

The fault suite (``tests/faults``) reuses the processes, the ``textback`` set-up, the signing and
the stub carrier; its own stub process gives the carrier a fault hook (:class:`CarrierFault`).
"""

from __future__ import annotations

import argparse
import email.utils
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote, urlsplit
from urllib.request import urlopen

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.stubs.hubspot_stub

from twilio.request_validator import RequestValidator  # noqa: E402

ACCOUNT_ID = "bench"
BUSINESS_NUMBER = "+14155550100"
FORWARD_TO = "+14155550199"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "bench-auth-token-" + "f" * 16
HUBSPOT_TOKEN = "pat-na1-bench-token"  # noqa: S105 - the stub's token, not a secret
VOICE_PATH = f"/webhooks/twilio/{ACCOUNT_ID}/voice"
#: Area codes and exchanges for the caller numbers; each pair gets the 10,000 endings.
AREA_CODES = ("415", "212", "312", "617", "206", "303", "512", "646")
EXCHANGES = ("555", "556", "557", "558", "559", "554")


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """The subprocesses a benchmark starts; ``with Processes() as procs:`` stops them all on exit.

    Each runs in its own session so the terminal's Ctrl-C reaches only the benchmark, which then
    stops them (SIGTERM, then SIGKILL after ``grace`` seconds), last started first. SIGTERM to the
    benchmark is turned into the same clean exit.
    """

    def __init__(self, grace: float = 15.0) -> None:
        self.grace = grace
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[TextIO] = []

    def __enter__(self) -> Processes:
        signal.signal(signal.SIGTERM, _exit_on_signal)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        stdin_pipe: bool = False,
        stdout_pipe: bool = False,
        append: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start a process; its output goes to ``log_path`` (or is discarded).

        ``append`` adds to an existing log instead of replacing it (a restarted process).
        """
        log: Any = subprocess.DEVNULL
        if log_path is not None:
            log = open(log_path, "a" if append else "w")  # closed in stop_all
            self._logs.append(log)
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=REPO,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            start_new_session=True,
        )
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process (SIGTERM to its process group, SIGKILL after the grace period)."""
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a process's whole group at once (no grace), reap it and forget it."""
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        self._procs = [(name, p) for name, p in self._procs if p is not proc]

    def stop_all(self) -> None:
        """Stop every process started here, newest first (Ctrl-C is ignored meanwhile)."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._procs:
                _, proc = self._procs.pop()
                self.stop(proc)
            for log in self._logs:
                log.close()
            self._logs.clear()
        finally:
            signal.signal(signal.SIGINT, previous)


def run(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status; on Ctrl-C (after every process was stopped) with 130."""
    try:
        status = main()
    except KeyboardInterrupt:
        print("\ninterrupted: every process this benchmark started has been stopped", file=sys.stderr)
        status = 130
    sys.exit(status)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; fail early when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urlopen(url, timeout=1) as response:  # noqa: S310 - our own 127.0.0.1 URL
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


# -- textback setup --------------------------------------------------------------------------


def textback_env(
    tmp: Path, port: int, *, queue_url: str | None = None, database_url: str | None = None
) -> dict[str, str]:
    """The environment for ``textback`` commands: this process's, minus any TEXTBACK_*, plus ours.

    The database is a SQLite file in ``tmp`` unless ``database_url`` is given.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBACK_")}
    env.update(
        TEXTBACK_DATABASE_URL=database_url or f"sqlite:///{tmp / 'textback.db'}",
        TEXTBACK_PUBLIC_URL=f"http://127.0.0.1:{port}",
        TEXTBACK_SECRET_KEY=secrets.token_urlsafe(48),
        TEXTBACK_DEMO="false",
        TEXTBACK_ALLOW_HTTP_LOOPBACK="true",  # the stubs are plain http on 127.0.0.1
    )
    if queue_url:
        env["TEXTBACK_QUEUE_URL"] = queue_url
    return env


def account_document(
    carrier_url: str, hubspot_url: str, *, account_id: str = ACCOUNT_ID, **policy: Any
) -> dict[str, Any]:
    """An account on Twilio and HubSpot, both pointed at local stubs; ``policy`` as given."""
    return {
        "id": account_id,
        "name": "Bench Plumbing",
        "timezone": "America/Chicago",
        "carrier": {
            "kind": "twilio",
            "credentials": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
            "numbers": [BUSINESS_NUMBER],
            "forward_to": [FORWARD_TO],
            "api_base_url": carrier_url,
        },
        "crm": {
            "kind": "hubspot",
            "credentials": {"access_token": HUBSPOT_TOKEN},
            "api_base_url": hubspot_url,
            "mapping": {
                "pipeline": "default",
                "stage": "appointmentscheduled",
                "owner_id": "90210",
            },
        },
        "policy": policy,
    }


def textback(args: Sequence[str], env: Mapping[str, str]) -> None:
    """Run one ``textback`` command; raise with its output when it fails."""
    result = subprocess.run(
        [str(BIN / "textback"), *args], env=dict(env), cwd=REPO, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"textback {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def prepare_textback(tmp: Path, env: Mapping[str, str], documents: Sequence[dict[str, Any]]) -> None:
    """``textback db upgrade`` and ``textback accounts import`` for each account document."""
    textback(["db", "upgrade"], env)
    for i, doc in enumerate(documents):
        path = tmp / f"account-{i}.json"
        path.write_text(json.dumps(doc, indent=2))
        textback(["accounts", "import", str(path)], env)


def start_serve(
    procs: Processes, tmp: Path, env: Mapping[str, str], port: int, *extra: str
) -> subprocess.Popen[bytes]:
    """``textback serve --port PORT`` (log in ``tmp/serve.log``), once /healthz answers."""
    proc = procs.start(
        "textback serve",
        [str(BIN / "textback"), "serve", "--port", str(port), *extra],
        env=env,
        log_path=tmp / "serve.log",
    )
    wait_for_http(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


# -- Twilio webhooks ------------------------------------------------------------------------


class Signer:
    """``X-Twilio-Signature`` with the official ``twilio`` package, for our public URL."""

    def __init__(self, public_url: str, auth_token: str = AUTH_TOKEN) -> None:
        self.public_url = public_url.rstrip("/")
        self._validator = RequestValidator(auth_token)

    def sign(self, path: str, params: Mapping[str, str]) -> str:
        """The signature Twilio would send for a form POST to ``public_url + path``."""
        return str(self._validator.compute_signature(self.public_url + path, dict(params)))


def callers() -> Iterator[str]:
    """Distinct valid US numbers: +1 <area> <exchange> xxxx, cycling the area codes, endings
    spread; 80,000 per exchange, enough for a benchmark's repeated runs of 10,000 calls. The
    business's own numbers are left out: a call from one is not a customer's."""
    for exchange in EXCHANGES:
        for i in range(10_000):
            ending = (i * 7919) % 10_000  # a stride coprime with 10,000 visits every ending once
            for area in AREA_CODES:
                number = f"+1{area}{exchange}{ending:04d}"
                if number not in (BUSINESS_NUMBER, FORWARD_TO):
                    yield number


def take_callers(numbers: Iterator[str], count: int) -> list[str]:
    """The next ``count`` callers of ``numbers``; a benchmark that has used them all stops,
    rather than measuring fewer calls than it says."""
    taken = list(itertools.islice(numbers, count))
    if len(taken) < count:
        raise SystemExit(f"the benchmark ran out of distinct callers ({len(taken)} of {count} "
                         "left): ask for fewer calls or runs")
    return taken


def call_sid() -> str:
    """A fresh Twilio Call SID: CA and 32 hex digits."""
    return "CA" + uuid.uuid4().hex


def missed_call_form(caller: str, sid: str | None = None) -> dict[str, str]:
    """The ``<Dial action>`` callback Twilio posts when nobody answered (DialCallStatus=no-answer).

    Modelled on ``tests/fixtures/twilio/voice_dial_no_answer.form``.
    """
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": sid or call_sid(),
        "CallStatus": "ringing",
        "Called": BUSINESS_NUMBER,
        "Caller": caller,
        "DialBridged": "false",
        "DialCallDuration": "0",
        "DialCallSid": call_sid(),
        "DialCallStatus": "no-answer",
        "Direction": "inbound",
        "From": caller,
        "FromCountry": "US",
        "StirVerstat": "TN-Validation-Passed-A",
        "To": BUSINESS_NUMBER,
        "ToCountry": "US",
    }


# -- figures --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain, aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs))
        if n == 0:
            print("  ".join("-" * w for w in widths))


# -- stub carrier and the stub process -------------------------------------------------------


@dataclass(frozen=True)
class SmsArrival:
    """One text the stub Messages API accepted: when it arrived (time.time()) and its ``To``."""

    at: float
    to: str


class CarrierFault(StrEnum):
    """What the stub carrier does with one request, as its fault hook decides."""

    NONE = "none"  # answer normally
    DROP_BEFORE = "drop_before"  # read the request, store nothing, close without answering
    DROP_AFTER = "drop_after"  # accept (store) the text, then close without answering
    UNAVAILABLE = "unavailable"  # answer 503 with Twilio's error body, store nothing


#: Decides the fault for one request from its templated route (``StubCarrier.*_ROUTE``).
FaultHook = Callable[[str], CarrierFault]


class StubCarrier:
    """A stub of the Twilio REST API on 127.0.0.1, answering like Twilio.

    ``POST /2010-04-01/Accounts/{sid}/Messages.json`` gets a 201 Message resource (and its arrival
    time and ``To`` are recorded in :attr:`arrivals`); ``GET`` on the same path lists the accepted
    messages newest first, filtered by ``To`` and ``From`` (``PageSize`` per page, one page), as
    textback's reconciliation reads it; ``GET /v2/PhoneNumbers/{number}`` gets a
    Lookup v2 answer with ``line_type_intelligence.type`` ``mobile``. Every request's route is
    kept in :attr:`routes`. ``extra_routes`` maps further GET paths to functions returning
    JSON-able values (the stub process uses it to expose its logs). ``faults``, when given, is
    asked about every Twilio API request and may drop the connection or answer 503
    (:class:`CarrierFault`); without it the stub always answers.
    """

    MESSAGES_ROUTE = "POST /2010-04-01/Accounts/{AccountSid}/Messages.json"
    LIST_ROUTE = "GET /2010-04-01/Accounts/{AccountSid}/Messages.json"
    LOOKUP_ROUTE = "GET /v2/PhoneNumbers/{PhoneNumber}"

    def __init__(
        self, extra_routes: Mapping[str, Any] | None = None, *, faults: FaultHook | None = None
    ) -> None:
        self.arrivals: list[SmsArrival] = []
        self.routes: list[str] = []
        self.messages: list[dict[str, Any]] = []  # accepted Message resources, oldest first
        self._lock = threading.Lock()
        self._extra = dict(extra_routes or {})
        self._faults = faults
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.request_queue_size = 128

    @property
    def url(self) -> str:
        """The base URL for the account's ``carrier.api_base_url``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StubCarrier:
        """Serve from a daemon thread."""
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[SmsArrival]:
        """The texts received so far."""
        with self._lock:
            return list(self.arrivals)

    def route_log(self) -> list[str]:
        """The Twilio API requests received so far, as templated routes."""
        with self._lock:
            return list(self.routes)

    def fault(self, route: str) -> CarrierFault:
        """What to do with a request on ``route``: the hook's choice, else answer normally."""
        return self._faults(route) if self._faults is not None else CarrierFault.NONE

    def _record(self, route: str, sms: SmsArrival | None = None,
                message: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.routes.append(route)
            if sms is not None:
                self.arrivals.append(sms)
            if message is not None:
                self.messages.append(message)

    def listed(self, query: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        """Accepted messages matching ``To`` and ``From`` in ``query``, newest first, one page."""
        first = {k: v[0] for k, v in query.items() if v}
        try:
            size = max(1, min(int(first.get("PageSize", "50")), 1000))
        except ValueError:
            size = 50
        with self._lock:
            found = [
                m for m in reversed(self.messages)
                if all(m.get(key.lower()) == first[key] for key in ("To", "From") if key in first)
            ]
        return found[:size]

    @staticmethod
    def message(form: Mapping[str, list[str]], account_sid: str) -> dict[str, Any]:
        """A Message resource as Twilio returns it on create."""
        sid = "SM" + uuid.uuid4().hex
        now = email.utils.formatdate(usegmt=True)
        first = {k: v[0] for k, v in form.items()}
        base = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
        return {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": first.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": first.get("From"),
            "messaging_service_sid": first.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": first.get("To"),
            "uri": f"{base}.json",
        }

    @staticmethod
    def lookup(number: str) -> dict[str, Any]:
        """A Lookup v2 answer with line type intelligence: a US mobile number."""
        return {
            "calling_country_code": "1",
            "country_code": "US",
            "phone_number": number,
            "national_format": f"({number[2:5]}) {number[5:8]}-{number[8:]}",
            "valid": True,
            "validation_errors": [],
            "line_type_intelligence": {
                "carrier_name": "Bench Wireless",
                "error_code": None,
                "mobile_country_code": "310",
                "mobile_network_code": "999",
                "type": "mobile",
            },
            "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drop(self) -> None:
                """Close the connection without a word: the client sees it end, no answer."""
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _unavailable(self) -> None:
                self._send(503, {"code": 20503, "message": "Service Unavailable", "status": 503})

            def _authorised(self) -> bool:
                if self.headers.get("Authorization", "").startswith("Basic "):
                    return True
                self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return False

            def _not_found(self) -> None:
                self._send(404, {"code": 20404, "message": "not found", "status": 404})

            @staticmethod
            def _messages_sid(path: str) -> str | None:
                parts = path.split("/")  # /2010-04-01/Accounts/{sid}/Messages.json
                if len(parts) != 5 or parts[2] != "Accounts" or parts[4] != "Messages.json":
                    return None
                return parts[3]

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                arrived = time.time()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sid = self._messages_sid(urlsplit(self.path).path)
                if sid is None:
                    self._not_found()
                    return
                if not self._authorised():
                    return
                fault = stub.fault(stub.MESSAGES_ROUTE)
                if fault is CarrierFault.DROP_BEFORE:
                    stub._record(stub.MESSAGES_ROUTE)
                    self._drop()
                    return
                if fault is CarrierFault.UNAVAILABLE:
                    stub._record(stub.MESSAGES_ROUTE)
                    self._unavailable()
                    return
                message = stub.message(parse_qs(raw.decode(), keep_blank_values=True), sid)
                stub._record(stub.MESSAGES_ROUTE, SmsArrival(arrived, message["to"] or ""), message)
                if fault is CarrierFault.DROP_AFTER:
                    self._drop()
                    return
                self._send(201, message)

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                path = parts.path
                if path in stub._extra:
                    self._send(200, stub._extra[path]())
                    return
                if path.startswith("/v2/PhoneNumbers/"):
                    route = stub.LOOKUP_ROUTE
                elif self._messages_sid(path) is not None:
                    route = stub.LIST_ROUTE
                else:
                    self._not_found()
                    return
                if not self._authorised():
                    return
                stub._record(route)
                fault = stub.fault(route)
                if fault is CarrierFault.UNAVAILABLE:
                    self._unavailable()
                elif fault in (CarrierFault.DROP_BEFORE, CarrierFault.DROP_AFTER):
                    self._drop()
                elif route == stub.LOOKUP_ROUTE:
                    self._send(200, stub.lookup(unquote(path.rsplit("/", 1)[1])))
                else:
                    self._send(200, self._page(path, parse_qs(parts.query)))

            @staticmethod
            def _page(path: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
                messages = stub.listed(query)
                return {
                    "messages": messages, "start": 0, "end": max(len(messages) - 1, 0), "page": 0,
                    "page_size": len(messages), "uri": path, "first_page_uri": path,
                    "previous_page_uri": None, "next_page_uri": None,
                }

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


@dataclass(frozen=True)
class HubSpotCall:
    """One request the HubSpot stub received: ``"POST /crm/v3/objects/calls"`` and when."""

    route: str
    at: float


class Stubs:
    """Client side of the stub process: its URLs and its logs."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the stub process exited before announcing its ports")
        ports = json.loads(line)
        self.proc = proc
        self.carrier_url = f"http://127.0.0.1:{ports['carrier']}"
        self.hubspot_url = f"http://127.0.0.1:{ports['hubspot']}"

    def _get(self, path: str) -> Any:
        with urlopen(self.carrier_url + path, timeout=30) as response:  # noqa: S310 - 127.0.0.1
            return json.loads(response.read())

    def sms(self) -> list[SmsArrival]:
        """Every text the stub carrier received so far."""
        return [SmsArrival(at, to) for at, to in self._get("/_bench/sms")]

    def hubspot(self) -> list[HubSpotCall]:
        """Every request the HubSpot stub received so far."""
        return [HubSpotCall(route, at) for route, at in self._get("/_bench/hubspot")]

    def hubspot_summary(self) -> dict[str, Any]:
        """The HubSpot stub's 429s sent, records kept per type, distinct contact phones."""
        return dict(self._get("/_bench/hubspot-summary"))


# -- PostgreSQL, Redis and the processes' memory ----------------------------------------------

#: The PostgreSQL server the benchmarks use (a schema of their own, dropped after).
PG_URL = os.environ.get("TEXTBACK_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEXTBACK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


class PgSchema:
    """``with PgSchema() as url:`` a fresh PostgreSQL schema for one run, dropped afterwards."""

    def __init__(self, base_url: str = PG_URL) -> None:
        self.base_url = base_url
        self.schema = "bench_" + uuid.uuid4().hex[:10]

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.base_url.replace("postgresql+psycopg", "postgresql"),
                             autocommit=True) as conn:
            conn.execute(sql)

    def __enter__(self) -> str:
        self._execute(f"CREATE SCHEMA {self.schema}")
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}options=-csearch_path%3D{self.schema}"

    def __exit__(self, *exc: object) -> None:
        self._execute(f"DROP SCHEMA {self.schema} CASCADE")


def flush_redis(url: str = REDIS_URL) -> None:
    """Empty the benchmark's Redis database."""
    import redis

    redis.Redis.from_url(url).flushdb()


def enter_setup(stack: ExitStack, setup: str) -> tuple[str | None, str | None, Path, Processes]:
    """One benchmark setup, cleaned up when ``stack`` closes (processes first, then Redis and the
    schema): the database URL and queue URL (None for SQLite: the default, in the folder), a
    temporary folder and the process list. ``setup`` is ``sqlite`` or ``postgres`` (PostgreSQL +
    Redis)."""
    database_url = stack.enter_context(PgSchema()) if setup == "postgres" else None
    queue_url = REDIS_URL if setup == "postgres" else None
    if queue_url:
        flush_redis(queue_url)
        stack.callback(flush_redis, queue_url)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="textback-bench-")))
    return database_url, queue_url, tmp, stack.enter_context(Processes())


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (read from /proc; just ``pid`` elsewhere)."""
    found, parents = [pid], {pid}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    changed = True
    while changed:
        changed = False
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) in parents:
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in parents:
                parents.add(int(entry.name))
                found.append(int(entry.name))
                changed = True
    return found


def cpu_seconds(pids: Sequence[int], *, below: bool = True) -> float:
    """User + system CPU seconds the processes, and everything below them unless ``below`` is
    False, have used so far (read from /proc; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for root in pids:
        for pid in (process_tree(root) if below else [root]):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total / tick


def wait_until_idle(pids: Sequence[int], *, busy: float = 0.05, window: float = 0.5,
                    timeout: float = 60.0) -> float:
    """Wait until the processes (and their children) use less than ``busy`` of a core over a
    ``window``: they have finished starting up. Returns the seconds waited; warns on timeout.

    A baseline measured while another server is still importing and connecting would share the
    machine with that start-up work.
    """
    began = time.monotonic()
    used = cpu_seconds(pids)
    while time.monotonic() - began < timeout:
        time.sleep(window)
        now = cpu_seconds(pids)
        if now - used < busy * window:
            return time.monotonic() - began
        used = now
    print(f"warning: textback's processes were still busy after {timeout:.0f} s")
    return time.monotonic() - began


def rss_mib(pid: int) -> float | None:
    """Resident memory of one process in MiB (None once it is gone, or off Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def command_name(pid: int) -> str:
    """``textback serve``, ``textback worker``, ... for a process of ours."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode() for a in argv if a]
    for i, word in enumerate(words):
        if word in ("serve", "worker"):
            extra = " (web)" if word == "serve" and "--listen-fd" in words else ""
            extra = extra or (" (jobs)" if "--with-parent" in words else "")
            return f"textback {word}{extra}"
        if i and word.endswith("textback"):
            continue
    return " ".join(words[:2])


def start_stubs(procs: Processes, *, hubspot_latency: float = 0.0, log_path: Path | None = None,
                hubspot_limits: bool = False) -> Stubs:
    """Start the stub process (carrier + HubSpot) and wait for its ports.

    With ``hubspot_limits`` the HubSpot stub enforces HubSpot's limits: 100 requests per rolling
    10 s and 5 searches per second, answering 429 beyond them.
    """
    argv = [sys.executable, str(Path(__file__).resolve()), "stubs", "--hubspot-latency", str(hubspot_latency)]
    if hubspot_limits:
        argv.append("--hubspot-limits")
    proc = procs.start("stubs", argv, log_path=log_path, stdin_pipe=True, stdout_pipe=True)
    return Stubs(proc)


#: HubSpot's limits per portal as the stub enforces them with ``--hubspot-limits``.
HUBSPOT_RATE_LIMIT = (100, 10.0)
HUBSPOT_SEARCH_LIMIT = (5, 1.0)


def _serve_stubs(hubspot_latency: float, limits: bool = False) -> None:
    from tests.stubs.hubspot_stub import OBJECT_TYPES, HubSpotStub

    hubspot = HubSpotStub(latency=hubspot_latency, access_token=HUBSPOT_TOKEN,
                          rate_limit=HUBSPOT_RATE_LIMIT if limits else None,
                          search_rate_limit=HUBSPOT_SEARCH_LIMIT if limits else None).start()
    carrier: StubCarrier

    def hubspot_summary() -> dict[str, Any]:
        records = {t: hubspot.records(t) for t in OBJECT_TYPES}
        phones = [r["properties"].get("phone") for r in records["contacts"]]
        return {"throttled": hubspot.throttled,
                "records": {t: len(rs) for t, rs in records.items()},
                "distinct_contact_phones": len(set(phones))}

    def sms_log() -> list[tuple[float, str]]:
        return [(a.at, a.to) for a in carrier.snapshot()]

    def hubspot_log() -> list[tuple[str, float]]:
        return [(r.route, r.received_at) for r in list(hubspot.requests)]

    carrier = StubCarrier({"/_bench/sms": sms_log, "/_bench/hubspot": hubspot_log,
                           "/_bench/hubspot-summary": hubspot_summary}).start()
    ports = {"carrier": carrier.url.rsplit(":", 1)[1], "hubspot": hubspot.url.rsplit(":", 1)[1]}
    print(json.dumps({k: int(v) for k, v in ports.items()}), flush=True)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        sys.stdin.read()  # until the benchmark closes our stdin (or dies)
    finally:
        carrier.stop()
        hubspot.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``_common.py stubs``: run the stub process."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    stubs = sub.add_parser("stubs", help="serve the stub carrier and the HubSpot stub")
    stubs.add_argument("--hubspot-latency", type=float, default=0.0, help="seconds per HubSpot answer")
    stubs.add_argument("--hubspot-limits", action="store_true", help="enforce HubSpot's limits")
    args = parser.parse_args(argv)
    _serve_stubs(args.hubspot_latency, args.hubspot_limits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
