"""The fault suite's stub process: the stub Twilio API with faults, and the HubSpot stub.

The harness runs it as ``python -m tests.faults.stubs``. It prints the two ports as one JSON line
(``{"carrier": port, "hubspot": port}``), then answers each JSON command read from stdin with one
JSON line on stdout, until stdin closes:

- ``{"cmd": "drops", "before": 0.1, "after": 0.1, "seed": 7}``: from now on each text send is,
  at random, dropped before it is accepted (nothing stored, connection closed unanswered) or
  after (stored, then the connection closed unanswered);
- ``{"cmd": "carrier_outage", "seconds": 8}``: every carrier request is answered 503 meanwhile;
- ``{"cmd": "crm_outage", "seconds": 6, "status": 503, "hang": 0}``: see
  :meth:`tests.stubs.hubspot_stub.HubSpotStub.outage`;
- ``{"cmd": "calm"}``: every fault off;
- ``{"cmd": "snapshot"}``: the accepted sends (their ``To``), the fault tallies, and the CRM
  records reduced to ids and contact links (no bodies).

The stub carrier is :class:`bench._common.StubCarrier` with a fault hook; the CRM is
:class:`tests.stubs.hubspot_stub.HubSpotStub`.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from bench._common import HUBSPOT_TOKEN, CarrierFault, Processes, StubCarrier
from tests.stubs.hubspot_stub import OBJECT_TYPES, HubSpotStub


class CarrierFaults:
    """The stub carrier's fault hook: random drops of text sends and timed outages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(0)
        self._before = 0.0
        self._after = 0.0
        self._outage_until = 0.0
        self.tally: Counter[str] = Counter()

    def drops(self, before: float, after: float, seed: int) -> None:
        """Drop this share of sends before, and this share after, accepting them."""
        with self._lock:
            self._rng = random.Random(seed)
            self._before, self._after = before, after

    def outage(self, seconds: float) -> None:
        """Answer every request 503 for ``seconds``."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds

    def calm(self) -> None:
        """No more faults."""
        with self._lock:
            self._before = self._after = 0.0
            self._outage_until = 0.0

    def __call__(self, route: str) -> CarrierFault:
        with self._lock:
            if time.monotonic() < self._outage_until:
                fault = CarrierFault.UNAVAILABLE
            elif route != StubCarrier.MESSAGES_ROUTE:
                fault = CarrierFault.NONE
            else:
                roll = self._rng.random()
                if roll < self._before:
                    fault = CarrierFault.DROP_BEFORE
                elif roll < self._before + self._after:
                    fault = CarrierFault.DROP_AFTER
                else:
                    fault = CarrierFault.NONE
            self.tally[f"{route.split()[0]} {_route_name(route)} {fault.value}"] += 1
            return fault


def _route_name(route: str) -> str:
    if route == StubCarrier.MESSAGES_ROUTE:
        return "send"
    if route == StubCarrier.LIST_ROUTE:
        return "list"
    return "lookup"


def crm_records(hubspot: HubSpotStub) -> dict[str, list[dict[str, Any]]]:
    """Every CRM record as ``{"id", "phone"?, "contacts": [contact ids]}``, by object type."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in OBJECT_TYPES:
        rows = []
        for record in hubspot.records(kind):
            row: dict[str, Any] = {
                "id": record["id"],
                "contacts": sorted({to for typ, to, _ in record["associations"] if typ == "contacts"}),
            }
            if kind == "contacts":
                props = record["properties"]
                row["phone"] = props.get("hs_calculated_phone_number") or props.get("phone")
            rows.append(row)
        out[kind] = rows
    return out


def serve() -> int:
    """Run both stubs and the command loop until stdin closes."""
    faults = CarrierFaults()
    carrier = StubCarrier(faults=faults).start()
    hubspot = HubSpotStub(access_token=HUBSPOT_TOKEN).start()
    signal.signal(signal.SIGTERM, _exit)
    ports = {"carrier": int(carrier.url.rsplit(":", 1)[1]), "hubspot": int(hubspot.url.rsplit(":", 1)[1])}
    print(json.dumps(ports), flush=True)
    try:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(_command(json.loads(line), faults, carrier, hubspot)), flush=True)
    finally:
        carrier.stop()
        hubspot.stop()
    return 0


def _command(
    command: dict[str, Any], faults: CarrierFaults, carrier: StubCarrier, hubspot: HubSpotStub
) -> dict[str, Any]:
    name = command.get("cmd")
    if name == "drops":
        faults.drops(float(command["before"]), float(command["after"]), int(command["seed"]))
    elif name == "carrier_outage":
        faults.outage(float(command["seconds"]))
    elif name == "crm_outage":
        hubspot.outage(float(command["seconds"]), status=int(command.get("status", 503)),
                       hang=float(command.get("hang", 0.0)))
    elif name == "calm":
        faults.calm()
        hubspot.outage(0)
    elif name == "snapshot":
        return {
            "ok": True,
            "sends": [arrival.to for arrival in carrier.snapshot()],
            "carrier_tally": dict(faults.tally),
            "crm": crm_records(hubspot),
            "crm_requests": len(hubspot.requests),
        }
    else:
        return {"ok": False, "error": f"unknown command {name!r}"}
    return {"ok": True}


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class StubProcess:
    """The harness's side of the stub process: its URLs and its commands (thread-safe)."""

    def __init__(self, procs: Processes, log_path: Path) -> None:
        argv = [sys.executable, "-m", "tests.faults.stubs"]
        self.proc: subprocess.Popen[bytes] = procs.start(
            "fault stubs", argv, log_path=log_path, stdin_pipe=True, stdout_pipe=True
        )
        ports = json.loads(self._read_line())
        self.carrier_url = f"http://127.0.0.1:{ports['carrier']}"
        self.hubspot_url = f"http://127.0.0.1:{ports['hubspot']}"
        self._lock = threading.Lock()

    def _read_line(self) -> bytes:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the stub process exited (see its log)")
        return line

    def command(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command and return its answer."""
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            self.proc.stdin.flush()
            answer: dict[str, Any] = json.loads(self._read_line())
        if not answer.get("ok"):
            raise RuntimeError(f"stub command {cmd!r} failed: {answer.get('error')}")
        return answer


if __name__ == "__main__":
    sys.exit(serve())
