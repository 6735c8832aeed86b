"""The dashboard's figures and charts, from the same :class:`Report` as ``textback report``.

:func:`dashboard` turns a by-day report into what the page draws: the period's totals with their
rates (the report's own definitions, in :mod:`connector.reporting.report`), and one bar chart per
daily series (missed, texted, replied, saved) on a shared scale, with the y-axis ticks and the
x-axis dates already placed, so the template only lays them out.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta

from connector.reporting.report import Report, ReportRow
from connector.reporting.report_output import _duration

#: The daily series the charts draw: (report field, title, what one unit is).
SERIES = (
    ("missed_calls", "Missed calls", "missed calls"),
    ("texted", "Texted back", "calls texted back"),
    ("replied", "Replied", "callers replied"),
    ("saved", "Saved conversations", "conversations saved"),
)
#: The longest period the page draws, in days.
MAX_DAYS = 366
#: At most this many dates under a chart.
X_LABELS = 5


@dataclass(frozen=True)
class Figure:
    """One headline number with what it means."""

    key: str
    label: str
    value: str
    detail: str


@dataclass(frozen=True)
class Bar:
    """One day's bar: its height as a percentage of the chart and its hover text."""

    day: date
    value: int
    height: float
    tip: str


@dataclass(frozen=True)
class Tick:
    """An axis label at ``position`` percent (from the bottom for y, from the left for x)."""

    label: str
    position: float


@dataclass(frozen=True)
class Chart:
    """One series drawn by day."""

    key: str
    title: str
    total: int
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard page shows for one account and period."""

    figures: list[Figure]
    charts: list[Chart]
    days: list[ReportRow]
    y_title: str
    x_title: str
    period: str


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _responses(total: ReportRow) -> str:
    answered = len(total.response_seconds)
    if not answered:
        return "no reply answered by a person yet"
    return (f"p90 {_duration(total.p90_response)}, over {answered} "
            f"repl{'y' if answered == 1 else 'ies'} answered")


def figures(total: ReportRow) -> list[Figure]:
    """The period's totals and rates, in the report's words."""
    return [
        Figure("missed_calls", "Missed calls", str(total.missed_calls),
               f"{total.suppressed_total} not texted (policy), {total.pending} pending"),
        Figure("texted", "Texted back", str(total.texted),
               f"{_percent(total.texted, total.missed_calls)} of missed calls; "
               f"{total.delivered} delivered, {total.failed} failed"),
        Figure("replied", "Replied", str(total.replied),
               f"reply rate {_percent(total.replied, total.texted)} of texted"),
        Figure("saved", "Saved conversations", str(total.saved),
               f"{_percent(total.saved, total.missed_calls)} of missed calls"),
        Figure("median_response", "Median time to first human response",
               _duration(total.median_response), _responses(total)),
        Figure("opt_outs", "Opt-outs", str(total.opt_outs), "STOP and carrier opt-outs"),
    ]


def nice_top(peak: int) -> tuple[int, int]:
    """The y-axis top and step for a peak count: the smallest 1-2-5 step that reaches the peak in
    at most five whole steps, and the top at the first step at or above the peak.

    >>> nice_top(0), nice_top(3), nice_top(9), nice_top(38)
    ((1, 1), (3, 1), (10, 2), (40, 10))
    """
    step, factors = 1, itertools.cycle((2, 5 / 2, 2))  # 1, 2, 5, 10, 20, 50 ...
    while step * 5 < peak:
        step = round(step * next(factors))
    return max(step, -(-peak // step) * step), step


def _day_label(day: date, with_month: bool = True) -> str:
    return f"{day:%b} {day.day}" if with_month else str(day.day)


def _x_ticks(days: list[date]) -> list[Tick]:
    if not days:
        return []
    count = min(X_LABELS, len(days))
    picks = sorted({round(i * (len(days) - 1) / max(1, count - 1)) for i in range(count)})
    return [Tick(_day_label(days[i]), (i + 0.5) / len(days) * 100) for i in picks]


def chart(key: str, title: str, unit: str, rows: list[ReportRow], top: int, step: int) -> Chart:
    """One series' bars on a y-axis from 0 to ``top``."""
    bars = []
    for row in rows:
        value = int(getattr(row, key))
        day = date.fromisoformat(row.key)
        bars.append(Bar(day, value, value / top * 100,
                        f"{day:%a} {_day_label(day)}: {value} {unit}"))
    ticks = [Tick(str(v), v / top * 100) for v in range(0, top + 1, step)]
    return Chart(key, title, sum(b.value for b in bars), bars, ticks,
                 _x_ticks([b.day for b in bars]))


def dashboard(report: Report) -> Dashboard:
    """The page's figures and charts from a report grouped by day."""
    if report.by != "day":
        raise ValueError("the dashboard draws a report grouped by day")
    peak = max((row.missed_calls for row in report.rows), default=0)
    top, step = nice_top(peak)
    charts = [chart(key, title, unit, report.rows, top, step) for key, title, unit in SERIES]
    p = report.period
    years = "" if p.since.year == p.until.year else f" {p.since.year}"
    span = f"{_day_label(p.since)}{years} to {_day_label(p.until)} {p.until.year}"
    return Dashboard(figures(report.total), charts, report.rows, "Calls per day",
                     f"Day ({p.tz.key})", f"{span}, days in {p.tz.key}")


def default_range(today: date, days: int = 30) -> tuple[date, date]:
    """The last ``days`` days up to today."""
    return today - timedelta(days=days - 1), today
