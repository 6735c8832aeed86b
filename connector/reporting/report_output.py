"""``textback report`` output: an aligned text table, or CSV with a header row.

The figures and their definitions are in :mod:`connector.reporting.report`.
"""

from __future__ import annotations

import csv
from typing import TextIO

from connector.reporting.report import NONE, REASONS, Report, ReportRow


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _reasons(row: ReportRow) -> str:
    ranked = sorted(row.suppressed.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{reason} {n}" for reason, n in ranked) or NONE


TABLE_HEADERS = ("missed", "texted", "suppressed", "pending", "delivered", "failed", "replied",
                 "reply rate", "median 1st resp", "p90 1st resp", "saved", "opt-outs")


def _table_cells(row: ReportRow) -> list[str]:
    rate = NONE if row.reply_rate is None else f"{row.reply_rate:.1%}"
    return [row.key, str(row.missed_calls), str(row.texted), str(row.suppressed_total),
            str(row.pending), str(row.delivered), str(row.failed), str(row.replied), rate,
            _duration(row.median_response), _duration(row.p90_response), str(row.saved),
            str(row.opt_outs), _reasons(row)]


def format_table(report: Report) -> str:
    """An aligned text table: a title line, a header, a row per group and (when grouped) a total."""
    p = report.period
    name = report.account_name
    if not name.endswith(f"({report.account_id})"):  # "Acme (demo)" for the account "demo"
        name = f"{name} ({report.account_id})"
    title = f"{name}: {p.since} to {p.until} ({p.tz.key}), by {report.by}"
    table = [[report.by, *TABLE_HEADERS, "suppressed by reason"]]
    table += [_table_cells(r) for r in report.rows]
    if report.by != "account":
        table.append(_table_cells(report.total))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    last = len(widths) - 1

    def line(cells: list[str]) -> str:
        out = [c.ljust(w) if i in (0, last) else c.rjust(w)
               for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    return "\n".join([title, *map(line, table)])


CSV_HEADERS = ("missed_calls", "texted", "suppressed", "pending", "delivered", "failed",
               "replied", "reply_rate", "median_response_seconds", "p90_response_seconds",
               "responses_timed", "saved", "opt_outs")


def write_csv(report: Report, stream: TextIO) -> None:
    """The rows as CSV with a header; empty cells where a figure is undefined."""
    extra = sorted({r for row in report.rows for r in row.suppressed} - set(REASONS))
    reasons = [*REASONS, *extra]
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([report.by, *CSV_HEADERS, *(f"suppressed_{r}" for r in reasons)])

    def num(value: float | None, fmt: str) -> str:
        return "" if value is None else format(value, fmt)

    for row in report.rows:
        writer.writerow([
            row.key, row.missed_calls, row.texted, row.suppressed_total, row.pending,
            row.delivered, row.failed, row.replied, num(row.reply_rate, ".4f"),
            num(row.median_response, ".1f"), num(row.p90_response, ".1f"),
            len(row.response_seconds), row.saved, row.opt_outs,
            *(row.suppressed.get(r, 0) for r in reasons),
        ])
