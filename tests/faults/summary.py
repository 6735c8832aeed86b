"""The report of a run as plain tables: the counts, then the checks and their offenders.

Phone numbers appear masked (country code and last two digits); no message body ever appears.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from bench._common import print_table
from tests.faults.checks import CRM_TYPES
from tests.faults.harness import Report

#: Offender lines printed per failed check (the rest are counted).
MAX_DETAILS = 25


FINAL_STATES = ("texted", "suppressed", "text_failed", "cancelled")
SEND_OUTCOMES = ("none", "drop_before", "drop_after", "unavailable")


def _slash(*values: object) -> str:
    return " / ".join(str(v) for v in values)


def count_rows(report: Report) -> list[tuple[str, object]]:
    """The figures of a run, as (what, how many) pairs."""
    config, deliveries, faults = report.config, report.deliveries, report.faults
    states, crm_states = report.state_counts(), report.crm_state_counts()
    tally = report.carrier_tally
    crm_given_up = crm_states["failed"] + crm_states["needs_reauth"]
    crm_open = sum(crm_states.values()) - crm_states["done"] - crm_given_up
    per_caller = Counter(report.sends)
    sends = Counter({outcome: sum(n for key, n in tally.items() if key.endswith(f" send {outcome}"))
                     for outcome in SEND_OUTCOMES})
    rows: list[tuple[str, object]] = [
        ("distinct calls sent", config.calls),
        ("webhook deliveries posted", f"{deliveries.posted} (x{config.copies}, shuffled)"),
        ("  answered 2xx / other / no answer",
         _slash(deliveries.answered_2xx, deliveries.answered_other, deliveries.transport_errors)),
        ("calls received (database)", len(report.rows)),
        ("  decided text / suppress / undecided",
         _slash(*(sum(r.decision == d for r in report.rows) for d in ("text", "suppress", None)))),
        ("  texted / suppressed / text_failed / cancelled", _slash(*(states[s] for s in FINAL_STATES))),
        ("  text not settled", sum(n for s, n in states.items() if s not in FINAL_STATES)),
        ("  CRM done / given up / not settled", _slash(crm_states["done"], crm_given_up, crm_open)),
        ("texts accepted by the carrier", len(report.sends)),
        ("  callers texted once / twice or more",
         _slash(sum(n == 1 for n in per_caller.values()), sum(n > 1 for n in per_caller.values()))),
        ("text sends: answered / dropped before / dropped after / 503",
         _slash(*(sends[o] for o in SEND_OUTCOMES))),
        ("Messages list (reconcile) requests", sum(n for k, n in tally.items() if " list " in k)),
        ("Lookup requests", sum(n for k, n in tally.items() if " lookup " in k)),
        ("worker kill -9 cycles / processes killed", _slash(faults.kill_cycles, faults.processes_killed)),
        ("carrier outages / CRM 503 outages / CRM hangs",
         _slash(faults.carrier_outages, faults.crm_outages, faults.crm_hangs)),
        ("HubSpot requests", report.crm_requests),
        ("HubSpot records: " + " / ".join(CRM_TYPES), _slash(*(report.crm.totals[k] for k in CRM_TYPES))),
        ("settled", f"{'yes' if report.settled else 'NO'} after {report.settle_seconds:.0f} s "
                    f"(limit {config.settle_timeout:.0f} s)"),
        ("quick timer settings used", ", ".join(report.quick_timers) or "none (textback has none)"),
        ("wall time", f"{report.total_seconds:.0f} s"),
    ]
    if faults.errors:
        rows.append(("fault thread errors", "; ".join(faults.errors[:3])))
    return rows


def print_report(report: Report, out: Callable[[str], None] = print) -> None:
    """Print the counts, the checks, and the offenders of each failed check."""
    out("")
    _table(["what", "count"], count_rows(report), out)
    out("")
    _table(["check", "expected", "observed", "result"],
           [(c.name, c.expected, c.observed, "pass" if c.passed else "FAIL") for c in report.checks],
           out)
    for check in report.failures:
        out("")
        out(f"{check.name}: {len(check.details)} offender(s)")
        for line in check.details[:MAX_DETAILS]:
            out(f"  {line}")
        if len(check.details) > MAX_DETAILS:
            out(f"  ... and {len(check.details) - MAX_DETAILS} more")
    out("")
    verdict = "all checks passed" if not report.failures else \
        f"{len(report.failures)} of {len(report.checks)} checks FAILED"
    if report.config.keep_dir:
        verdict += f"; logs in {report.log_dir}"
    if report.config.keep_schema:
        verdict += f"; schema {report.schema} kept"
    out(verdict)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]],
           out: Callable[[str], None]) -> None:
    if out is print:
        print_table(headers, rows)
        return
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_table(headers, rows)
    for line in buffer.getvalue().splitlines():
        out(line)
