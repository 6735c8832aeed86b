"""The missed calls: one signed Twilio ``<Dial action>`` callback (``DialCallStatus=no-answer``)
per distinct caller, each delivered several times, shuffled, at a steady rate."""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bench._common import BUSINESS_NUMBER, FORWARD_TO, VOICE_PATH, Signer, callers, missed_call_form


@dataclass(frozen=True)
class MissedCall:
    """One missed call: its caller and the callback form Twilio would post (fixed CallSid)."""

    caller: str
    form: Mapping[str, str]


@dataclass
class DeliveryStats:
    """What the webhook deliveries got back."""

    posted: int = 0
    answered_2xx: int = 0
    answered_other: int = 0
    transport_errors: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


def missed_calls(count: int, rng: random.Random, stir_verstat: str | None = None
                 ) -> list[MissedCall]:
    """``count`` missed calls from distinct callers (never the business's own numbers).

    ``stir_verstat`` is the callbacks' ``StirVerstat`` (STIR/SHAKEN result); None leaves it out,
    as Twilio does when the call carried no attestation.
    """
    ours = {BUSINESS_NUMBER, FORWARD_TO}
    numbers = [n for n in _first(count + len(ours)) if n not in ours][:count]
    sids = ["CA" + "".join(rng.choice("0123456789abcdef") for _ in range(32)) for _ in numbers]
    return [MissedCall(n, _form(n, sid, stir_verstat))
            for n, sid in zip(numbers, sids, strict=True)]


def _form(caller: str, sid: str, stir_verstat: str | None) -> dict[str, str]:
    form = missed_call_form(caller, sid)
    if stir_verstat is None:
        del form["StirVerstat"]
    else:
        form["StirVerstat"] = stir_verstat
    return form


def _first(count: int) -> list[str]:
    source = callers()
    return [next(source) for _ in range(count)]


def delivery_plan(calls: Sequence[MissedCall], copies: int, rng: random.Random) -> list[MissedCall]:
    """Every call ``copies`` times, shuffled: copies arrive out of order and interleaved."""
    plan = [call for call in calls for _ in range(copies)]
    rng.shuffle(plan)
    return plan


class Poster:
    """POSTs signed callbacks to ``textback serve``, one keep-alive connection per thread."""

    def __init__(self, port: int, public_url: str) -> None:
        self.port = port
        self.signer = Signer(public_url)
        self._local = threading.local()

    def post(self, call: MissedCall) -> int:
        """Deliver one callback; its HTTP status, or 0 when the connection failed."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.signer.sign(VOICE_PATH, call.form),
        }
        body = urlencode(dict(call.form)).encode()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", VOICE_PATH, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            return 0


def deliver(poster: Poster, plan: Sequence[MissedCall], rate: float, threads: int = 6,
            stop: threading.Event | None = None) -> DeliveryStats:
    """Post the plan at ``rate`` deliveries per second (open loop, ``threads`` at most at once)."""
    stats = DeliveryStats()
    lock = threading.Lock()

    def one(call: MissedCall) -> None:
        status = poster.post(call)
        with lock:
            stats.posted += 1
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if status == 0:
                stats.transport_errors += 1
            elif 200 <= status < 300:
                stats.answered_2xx += 1
            else:
                stats.answered_other += 1

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="deliver") as pool:
        for i, call in enumerate(plan):
            if stop is not None and stop.is_set():
                break
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, call)
    stats.seconds = time.monotonic() - start
    return stats
