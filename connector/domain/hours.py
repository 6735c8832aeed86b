"""Business hours: weekly intervals (split shifts), holidays, temporary overrides, per number.

Pure and timezone-correct: every check converts the instant to the account's wall-clock time with
``zoneinfo``, so DST changes move nothing (a shop open 08:00-17:00 is open 08:00-17:00 local on
both sides of a change). An empty configuration means always open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far ahead ``next_open`` looks before giving up (a business closed for good).
LOOKAHEAD_DAYS = 400

Interval = tuple[time, time | None]  # end None means midnight (the end of the day)


def parse_clock(text: str) -> time | None:
    """``"08:30"`` -> 08:30; ``"24:00"`` -> None (the end of the day). Raises ValueError."""
    if text == "24:00":
        return None
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def parse_intervals(raw: Sequence[Sequence[str]]) -> tuple[Interval, ...]:
    """Validate and parse ``[["08:00", "12:00"], ["13:00", "17:00"]]``; sorted, non-overlapping."""
    intervals: list[Interval] = []
    for pair in raw:
        if len(pair) != 2:
            raise ValueError("each interval is [start, end]")
        start, end = parse_clock(pair[0]), parse_clock(pair[1])
        if start is None:
            raise ValueError("an interval cannot start at 24:00")
        if end is not None and end <= start:
            raise ValueError(f"{pair[0]}-{pair[1]}: the end must be after the start")
        intervals.append((start, end))
    intervals.sort(key=lambda i: i[0])
    for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
        if end is None or end > start:
            raise ValueError("intervals overlap")
    return tuple(intervals)


def _contains(intervals: Sequence[Interval], clock: time) -> bool:
    return any(start <= clock and (end is None or clock < end) for start, end in intervals)


@dataclass(frozen=True)
class Schedule:
    """One set of hours: weekly intervals, closures by date, and overrides by date."""

    weekly: Mapping[int, tuple[Interval, ...]] = field(default_factory=dict)
    holidays: Mapping[date, str] = field(default_factory=dict)
    overrides: Mapping[date, tuple[Interval, ...]] = field(default_factory=dict)
    always_open: bool = True

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any] | None) -> Schedule:
        """Build from the account file's ``hours`` shape (already validated).

        Without ``weekly`` the business is always open, except on its holidays and overrides.
        """
        raw = raw or {}
        weekly = {WEEKDAYS.index(day): parse_intervals(spans)
                  for day, spans in (raw.get("weekly") or {}).items()}
        holidays = {date.fromisoformat(h["date"]): h["name"] for h in raw.get("holidays", [])}
        overrides = {
            date.fromisoformat(o["date"]): parse_intervals(o.get("open", []))
            for o in raw.get("overrides", [])
        }
        return cls(weekly=weekly, holidays=holidays, overrides=overrides,
                   always_open=not raw.get("weekly"))

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        """The open intervals of a local date, overrides and holidays applied."""
        if day in self.overrides:
            return self.overrides[day]
        if day in self.holidays:
            return ()
        if self.always_open:
            return ((time(0, 0), None),)
        return self.weekly.get(day.weekday(), ())

    def closure_name(self, day: date) -> str | None:
        """The holiday or closure name of a date, if it is one."""
        if day in self.overrides:
            return None
        return self.holidays.get(day)


@dataclass(frozen=True)
class BusinessHours:
    """An account's hours in its time zone, with optional hours per business number."""

    tz: ZoneInfo
    default: Schedule
    per_number: Mapping[str, Schedule] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, timezone: str, raw: Mapping[str, Any] | None) -> BusinessHours:
        """Build from the account's time zone and ``hours`` settings."""
        raw = raw or {}
        per_number = {
            number: Schedule.from_settings(spec) for number, spec in raw.get("per_number", {}).items()
        }
        return cls(ZoneInfo(timezone), Schedule.from_settings(raw), per_number)

    def schedule_for(self, business_number: str | None) -> Schedule:
        """The schedule of a business number (location), else the account's."""
        if business_number and business_number in self.per_number:
            return self.per_number[business_number]
        return self.default

    def is_open(self, at: datetime, business_number: str | None = None) -> bool:
        """True when the business is open at the instant ``at`` (aware)."""
        local = at.astimezone(UTC).astimezone(self.tz)  # via UTC: never keep a skipped wall time
        return _contains(self.schedule_for(business_number).intervals_on(local.date()),
                         local.time())

    def _offsets(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, timedelta]]:
        """``[start, end)`` (UTC) cut where the zone's UTC offset changes, with each piece's
        offset; one change at most (a local day holds one)."""
        def offset(at: datetime) -> timedelta:
            found = at.astimezone(self.tz).utcoffset()
            assert found is not None  # noqa: S101 - a ZoneInfo always has one
            return found

        last = end - timedelta(seconds=1)
        before, after = offset(start), offset(last)
        if before == after:
            return [(start, end, before)]
        # The change is on a whole second: bisect for the first second on the new offset.
        low, high = int(start.timestamp()), int(last.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if offset(datetime.fromtimestamp(middle, UTC)) == before:
                low = middle
            else:
                high = middle
        change = datetime.fromtimestamp(high, UTC)
        return [(start, change, before), (change, end, after)]

    def open_spans(self, day: date, business_number: str | None = None
                   ) -> list[tuple[datetime, datetime]]:
        """The instants of the local date ``day`` when the business is open, as UTC spans in
        order: exactly the instants :meth:`is_open` calls open.

        An hour the clocks go back over happens twice, and an interval in it is open on both
        passes; wall-clock times the clocks jump forward over never happen, so an interval
        starting in that gap opens when the clocks land.
        """
        intervals = self.schedule_for(business_number).intervals_on(day)
        if not intervals:
            return []
        first = datetime.combine(day, time(0), tzinfo=self.tz).astimezone(UTC)
        after = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz).astimezone(UTC)
        pieces = self._offsets(first, after)
        spans: list[tuple[datetime, datetime]] = []
        for begin, end in intervals:
            opens = datetime.combine(day, begin, tzinfo=UTC)  # wall clock, shifted below
            closes = datetime.combine(day + timedelta(days=1) if end is None else day,
                                      time(0) if end is None else end, tzinfo=UTC)
            for piece_start, piece_end, offset in pieces:
                low, high = max(opens - offset, piece_start), min(closes - offset, piece_end)
                if low < high:
                    spans.append((low, high))
        merged: list[tuple[datetime, datetime]] = []
        for low, high in sorted(spans):
            if merged and low <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        return merged

    def next_open(self, at: datetime, business_number: str | None = None) -> datetime | None:
        """The next instant at or after ``at`` when the business opens; None if never (400 days)."""
        if self.is_open(at, business_number):
            return at
        now = at.astimezone(UTC)
        day = now.astimezone(self.tz).date()
        for offset in range(LOOKAHEAD_DAYS):
            for low, high in self.open_spans(day + timedelta(days=offset), business_number):
                if high > now:
                    return max(low, now).astimezone(self.tz)
        return None


def add_open_time(hours: BusinessHours, start: datetime, delta: timedelta,
                  business_number: str | None = None) -> datetime:
    """The instant ``delta`` of open business time after ``start`` (closed time does not count).

    Walks open spans day by day (both passes of an hour the clocks go back over count); if the
    business never opens again within the look-ahead, the plain ``start + delta`` is returned
    rather than never.
    """
    remaining = delta
    cursor = start.astimezone(UTC)
    day = cursor.astimezone(hours.tz).date()
    for offset in range(LOOKAHEAD_DAYS):
        for low, high in hours.open_spans(day + timedelta(days=offset), business_number):
            span_start = max(low, cursor)
            if span_start >= high:
                continue
            if high - span_start >= remaining:
                return span_start + remaining
            remaining -= high - span_start
    return start + delta


def describe_next_open(when: datetime | None, now: datetime, tz: ZoneInfo,
                       language: str = "en") -> str:
    """Words for ``{next_open}``: "at 8:00 AM", "tomorrow at 8:00 AM", "Monday at 9:00 AM"."""
    if when is None:
        return "soon" if language == "en" else "pronto"
    local, today = when.astimezone(tz), now.astimezone(tz).date()
    clock = local.strftime("%I:%M %p").lstrip("0") if language == "en" else local.strftime("%H:%M")
    days = (local.date() - today).days
    if language == "es":
        names = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
        if days == 0:
            return f"hoy a las {clock}"
        if days == 1:
            return f"mañana a las {clock}"
        if days < 7:
            return f"el {names[local.weekday()]} a las {clock}"
        return f"el {local.day}/{local.month} a las {clock}"
    if days == 0:
        return f"today at {clock}"
    if days == 1:
        return f"tomorrow at {clock}"
    if days < 7:
        return f"{local.strftime('%A')} at {clock}"
    return f"{local.strftime('%B')} {local.day} at {clock}"
