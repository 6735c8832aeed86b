"""HubSpot API requests per missed call, for new and returning callers.

What it measures: the requests the HubSpot stub (``tests/stubs/hubspot_stub.py``) receives for
one missed call, broken down by method and path, with the workflow run in-process exactly as
``tests/connector/test_workflow.py`` runs it: ``connector.runtime.Runtime`` with
``immediate_queue=True`` (the text-back and CRM jobs run inside the webhook request) and the Flask
app's test client posting signed Twilio ``<Dial action>`` callbacks (``DialCallStatus=no-answer``).
The accounts are on the real Twilio and HubSpot adapters, pointed at a stub Twilio API
(Messages and Lookup v2) and the HubSpot stub, both on 127.0.0.1.

Columns:

- new, 1st in process: the very first call (the adapter also creates its unique contact property
  once per adapter instance, i.e. per account and process);
- new caller: a number never seen before;
- in HubSpot only: a number a rep already has as a HubSpot contact, calling for the first time;
- returning, texted: a second call from a number on an account with ``policy.cooldown_hours`` 0
  and ``burst_window_minutes`` 0, so it is texted again;
- returning, cooldown: a second call inside the default 24 h cooldown (burst window 0), logged
  but not texted;
- repeat in burst: a second call within the default 15 min burst window (default policy),
  coalesced into the first.

Each column except the first is measured over ``--callers`` numbers; a route's count is the mean
per call. "declared" is ``crm_adapters.hubspot.api_calls_per_missed_call`` for comparison. The
Twilio rows count the requests the stub Twilio API received for the same calls.

Target: none fixed; the figures are for capacity planning against HubSpot's rate limits.

Run: ``.venv/bin/python bench/hubspot_calls.py [--callers 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _common import (
    HUBSPOT_TOKEN,
    Signer,
    StubCarrier,
    account_document,
    callers,
    free_port,
    missed_call_form,
    prepare_textback,
    print_table,
    run,
    take_callers,
    textback_env,
)

TEXTED_AGAIN = "bench"
COOLDOWN = "bench-cooldown"
BURST = "bench-burst"
#: Each account's ``policy`` section.
POLICIES: dict[str, dict[str, float]] = {
    TEXTED_AGAIN: {"cooldown_hours": 0, "burst_window_minutes": 0},
    COOLDOWN: {"cooldown_hours": 24, "burst_window_minutes": 0},
    BURST: {},
}

#: The order the workflow makes its requests in (contact, deal, call, text, task).
ROUTE_ORDER = (
    "POST /crm/v3/objects/contacts/search",
    "POST /crm/v3/properties/contacts",
    "POST /crm/v3/objects/contacts/batch/upsert",
    "POST /crm/v3/objects/contacts/batch/read",
    "GET /crm/v3/objects/deals/{dealId}",
    "POST /crm/v3/objects/deals",
    "POST /crm/v3/objects/calls",
    "POST /crm/v3/objects/communications",
    "POST /crm/v3/objects/tasks",
)


class Workflow:
    """The connector in-process (immediate queue) with its Flask test client."""

    def __init__(self, env: dict[str, str]) -> None:
        from connector.runtime import Runtime
        from connector.settings.config import load_settings
        from connector.web import create_app

        settings = load_settings({k: v for k, v in env.items() if k.startswith("TEXTBACK_")})
        self.runtime = Runtime(settings, immediate_queue=True)
        self.client = create_app(self.runtime).test_client()
        self.signer = Signer(settings.public_url)

    def missed_call(self, account_id: str, caller: str) -> None:
        """Post one signed missed call; its jobs run before the answer comes back."""
        path = f"/webhooks/twilio/{account_id}/voice"
        form = missed_call_form(caller)
        response = self.client.post(
            path,
            data=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": self.signer.sign(path, form),
            },
        )
        if response.status_code != 200:
            raise RuntimeError(f"the webhook answered {response.status_code}: {response.data!r}")

    def close(self) -> None:
        """Release the database."""
        self.runtime.close()


class Column:
    """HubSpot and Twilio routes (summed over calls) for one scenario."""

    def __init__(self, title: str, declared: int | None) -> None:
        self.title = title
        self.declared = declared
        self.routes: Counter[str] = Counter()
        self.twilio: Counter[str] = Counter()
        self.totals: list[int] = []

    def add(self, routes: list[str], twilio: list[str]) -> None:
        """Record one call."""
        self.routes.update(routes)
        self.twilio.update(twilio)
        self.totals.append(len(routes))

    def per_call(self, route: str, counter: Counter[str] | None = None) -> str:
        """Mean requests per call for a route."""
        counter = self.routes if counter is None else counter
        return _fmt(counter[route] / len(self.totals)) if counter[route] else "-"

    def total(self) -> str:
        """Mean total per call, with the range when calls differed."""
        mean = _fmt(statistics.fmean(self.totals))
        low, high = min(self.totals), max(self.totals)
        return mean if low == high else f"{mean} ({low}-{high})"


def _fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def declared(caller: str, *, first_in_process: bool = False) -> int | None:
    """``api_calls_per_missed_call`` for comparison; None when its signature no longer fits."""
    from crm_adapters.hubspot import api_calls_per_missed_call

    try:
        return int(api_calls_per_missed_call(caller, first_in_process=first_in_process))
    except (TypeError, ValueError):
        return None


def measure(
    workflow: Workflow, stub: Any, carrier: StubCarrier, numbers: Iterator[str], n: int
) -> list[Column]:
    """Run the scenarios and collect their columns."""
    first = Column("new, 1st in process", declared("new", first_in_process=True))
    new = Column("new caller", declared("new"))
    in_crm = Column("in HubSpot only", declared("in_crm"))
    again = Column("returning, texted", declared("linked"))
    cooldown = Column("returning, cooldown", None)
    burst = Column("repeat in burst", None)

    def call(column: Column | None, account_id: str, caller: str) -> None:
        stub.clear_requests()
        twilio_before = len(carrier.route_log())
        workflow.missed_call(account_id, caller)
        if column is not None:
            column.add(stub.routes(), carrier.route_log()[twilio_before:])

    call(first, TEXTED_AGAIN, next(numbers))
    fresh = take_callers(numbers, n)
    for caller in fresh:
        call(new, TEXTED_AGAIN, caller)
    for caller in fresh:
        call(again, TEXTED_AGAIN, caller)
    for caller in take_callers(numbers, n):
        stub.add_contact(phone=caller, firstname="Known")  # typed in by a rep, before any call
        call(in_crm, TEXTED_AGAIN, caller)
    for account_id, column in ((COOLDOWN, cooldown), (BURST, burst)):
        call(None, account_id, next(numbers))  # this account's adapter: its one-off property call
        for caller in take_callers(numbers, n):
            call(None, account_id, caller)
            call(column, account_id, caller)
    return [first, new, in_crm, again, cooldown, burst]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callers", type=int, default=5, help="calls measured per scenario")
    args = parser.parse_args(argv)

    from tests.stubs.hubspot_stub import HubSpotStub

    with tempfile.TemporaryDirectory(prefix="textback-bench-") as tmpdir:
        tmp = Path(tmpdir)
        stub = HubSpotStub(access_token=HUBSPOT_TOKEN).start()
        carrier = StubCarrier().start()
        workflow = None
        try:
            env = textback_env(tmp, free_port())
            prepare_textback(tmp, env, [
                account_document(carrier.url, stub.url, account_id=name, **policy)
                for name, policy in POLICIES.items()
            ])
            workflow = Workflow(env)
            columns = measure(workflow, stub, carrier, callers(), args.callers)
        finally:
            if workflow is not None:
                workflow.close()
            carrier.stop()
            stub.stop()

    routes = sorted({r for c in columns for r in c.routes}, key=_route_order)
    print(f"HubSpot requests per missed call (in-process, immediate queue; {args.callers} calls per "
          "column after the first)")
    print()
    print_table(
        ["request", *(c.title for c in columns)],
        [
            *([r, *(c.per_call(r) for c in columns)] for r in routes),
            ["total per call", *(c.total() for c in columns)],
            ["declared by the adapter", *(str(c.declared) if c.declared is not None else "-"
                                          for c in columns)],
            ["Twilio Lookup v2 per call", *(c.per_call(StubCarrier.LOOKUP_ROUTE, c.twilio)
                                            for c in columns)],
            ["Twilio texts sent per call", *(c.per_call(StubCarrier.MESSAGES_ROUTE, c.twilio)
                                             for c in columns)],
        ],
    )
    return 0


def _route_order(route: str) -> tuple[int, str]:
    return (ROUTE_ORDER.index(route) if route in ROUTE_ORDER else len(ROUTE_ORDER)), route


if __name__ == "__main__":
    run(main)
