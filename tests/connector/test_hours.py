"""Business hours: split shifts, holidays, overrides, per-number hours, DST (property-based)."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.hours import (
    WEEKDAYS,
    BusinessHours,
    add_open_time,
    describe_next_open,
    parse_intervals,
)

ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc", "SystemV")))
NY = "America/New_York"


def at(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


def test_split_shift_is_closed_at_lunch():
    hours = BusinessHours.from_settings(NY, {"weekly": {"mon": [["08:00", "12:00"],
                                                                ["13:00", "17:00"]]}})
    assert hours.is_open(at(NY, 2026, 11, 30, 11, 59))
    assert not hours.is_open(at(NY, 2026, 11, 30, 12, 0))
    assert hours.is_open(at(NY, 2026, 11, 30, 13, 0))
    assert not hours.is_open(at(NY, 2026, 11, 30, 17, 0))
    assert not hours.is_open(at(NY, 2026, 12, 1, 9, 0))  # Tuesday: no hours


def test_holiday_and_overrides():
    hours = BusinessHours.from_settings(NY, {
        "weekly": {d: [["09:00", "17:00"]] for d in WEEKDAYS[:5]},
        "holidays": [{"date": "2026-12-25", "name": "Christmas"}],
        "overrides": [{"date": "2026-12-01", "open": []},  # closed today
                      {"date": "2026-12-02", "open": [["09:00", "22:00"]]}],  # open late
    })
    assert not hours.is_open(at(NY, 2026, 12, 25, 10, 0))
    assert hours.default.closure_name(date(2026, 12, 25)) == "Christmas"
    assert not hours.is_open(at(NY, 2026, 12, 1, 10, 0))
    assert hours.is_open(at(NY, 2026, 12, 2, 21, 30))
    assert not hours.is_open(at(NY, 2026, 12, 3, 21, 30))


def test_hours_per_business_number():
    hours = BusinessHours.from_settings(NY, {
        "weekly": {"mon": [["09:00", "17:00"]]},
        "per_number": {"+14155550100": {"weekly": {"mon": [["06:00", "08:00"]]}}},
    })
    early = at(NY, 2026, 11, 30, 7, 0)
    assert hours.is_open(early, "+14155550100") and not hours.is_open(early, "+14155550199")


def test_no_hours_means_always_open_except_holidays():
    hours = BusinessHours.from_settings(NY, {"holidays": [{"date": "2026-07-04",
                                                           "name": "Independence Day"}]})
    assert hours.is_open(at(NY, 2026, 11, 28, 3, 0))
    assert not hours.is_open(at(NY, 2026, 7, 4, 12, 0))


def test_wall_clock_hours_survive_dst_changes():
    hours = BusinessHours.from_settings(NY, {"weekly": {"sun": [["01:00", "04:00"]],
                                                        "mon": [["08:00", "17:00"]]}})
    # 2026-03-08: clocks jump 02:00 -> 03:00; 2026-11-01: 02:00 -> 01:00.
    assert hours.is_open(datetime(2026, 3, 8, 7, 30, tzinfo=UTC))  # 03:30 EDT
    assert hours.is_open(datetime(2026, 11, 1, 5, 30, tzinfo=UTC))  # 01:30 EDT
    assert hours.is_open(datetime(2026, 11, 1, 6, 30, tzinfo=UTC))  # 01:30 EST (repeated hour)
    # Monday 08:00 local is 13:00 UTC in winter and 12:00 UTC in summer.
    assert hours.is_open(datetime(2026, 1, 5, 13, 0, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 1, 5, 12, 59, tzinfo=UTC))
    assert hours.is_open(datetime(2026, 7, 6, 12, 0, tzinfo=UTC))


def test_next_open_and_its_words():
    hours = BusinessHours.from_settings(NY, {"weekly": {"mon": [["08:00", "17:00"]],
                                                        "tue": [["08:00", "17:00"]]}})
    saturday = at(NY, 2026, 11, 28, 15, 0)
    nxt = hours.next_open(saturday)
    assert nxt == at(NY, 2026, 11, 30, 8, 0)
    assert describe_next_open(nxt, saturday, ZoneInfo(NY)) == "Monday at 8:00 AM"
    monday_night = at(NY, 2026, 11, 30, 20, 0)
    assert describe_next_open(hours.next_open(monday_night), monday_night,
                              ZoneInfo(NY)) == "tomorrow at 8:00 AM"
    assert describe_next_open(hours.next_open(monday_night), monday_night, ZoneInfo(NY),
                              "es") == "mañana a las 08:00"
    open_now = at(NY, 2026, 11, 30, 9, 0)
    assert hours.next_open(open_now) == open_now
    never = BusinessHours.from_settings(NY, {"weekly": {"mon": []}})
    assert never.next_open(saturday) is None


@pytest.mark.parametrize("bad", [[["09:00", "08:00"]], [["09:00", "12:00"], ["11:00", "13:00"]],
                                 [["24:00", "10:00"]]])
def test_bad_intervals_are_refused(bad):
    with pytest.raises(ValueError):
        parse_intervals(bad)


clock = st.integers(min_value=0, max_value=24 * 4).map(lambda q: q * 15)  # quarter hours


@st.composite
def weekly_hours(draw):  # type: ignore[no-untyped-def]
    weekly = {}
    for day in WEEKDAYS:
        marks = sorted(set(draw(st.lists(clock, max_size=6))))
        marks = marks[: len(marks) // 2 * 2]
        spans = []
        for start, end in zip(marks[::2], marks[1::2], strict=True):
            end_text = "24:00" if end == 1440 else f"{end // 60:02d}:{end % 60:02d}"
            if start < 1440:
                spans.append([f"{start // 60:02d}:{start % 60:02d}", end_text])
        weekly[day] = spans
    return weekly


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), weekly=weekly_hours(),
       start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 1),
                          timezones=st.just(UTC)))
def test_every_minute_of_a_week_is_open_exactly_as_configured(zone, weekly, start):
    hours = BusinessHours.from_settings(zone, {"weekly": weekly})
    tz = ZoneInfo(zone)
    expected = {WEEKDAYS.index(d): parse_intervals(s) for d, s in weekly.items()}
    minute = start.replace(second=0, microsecond=0)
    for step in range(0, 7 * 24 * 60, 7):  # every 7th minute of the week covers all phases
        instant = minute + timedelta(minutes=step)
        local = instant.astimezone(tz)
        wanted = any(a <= local.time() and (b is None or local.time() < b)
                     for a, b in expected[local.weekday()])
        assert hours.is_open(instant) is wanted
        nxt = hours.next_open(instant)  # never raises, is never in the past, and is open
        assert nxt is None or (nxt >= instant and hours.is_open(nxt))
        if nxt is not None and nxt > instant:  # and is the first open minute
            assert not hours.is_open(nxt.astimezone(UTC) - timedelta(minutes=1))
        if wanted:
            assert nxt == instant


def test_next_open_skips_an_interval_lost_to_the_spring_forward_jump():
    lost = BusinessHours.from_settings(NY, {"weekly": {"sun": [["02:00", "02:45"]]}})
    nxt = lost.next_open(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    assert nxt == at(NY, 2026, 3, 15, 2, 0) and lost.is_open(nxt)
    # 02:30-04:00 is open from the moment the clocks land at 03:00: the sign says open since 02:30.
    partly = BusinessHours.from_settings(NY, {"weekly": {"sun": [["02:30", "04:00"]]}})
    lands = at(NY, 2026, 3, 8, 3, 0)
    assert partly.next_open(datetime(2026, 3, 7, 12, 0, tzinfo=UTC)) == lands
    a_second_before = lands.astimezone(UTC) - timedelta(seconds=1)  # 01:59:59 EST
    assert partly.is_open(lands) and not partly.is_open(a_second_before)


def test_next_open_takes_the_second_pass_of_an_hour_the_clocks_go_back_over():
    # Europe/Dublin, 2024-10-27: 02:00 IST becomes 01:00 GMT, so 01:00-02:00 happens twice.
    # (Compared in UTC: Python never finds a second-pass time equal to one in another zone.)
    dublin = BusinessHours.from_settings("Europe/Dublin", {"weekly": {"sun": [["01:15", "01:30"]]}})

    def next_open_utc(at: datetime) -> datetime | None:
        found = dublin.next_open(at)
        return None if found is None else found.astimezone(UTC)

    between = datetime(2024, 10, 27, 1, 1, tzinfo=UTC)  # 01:01 on the second pass
    assert next_open_utc(between) == datetime(2024, 10, 27, 1, 15, tzinfo=UTC)
    after_first = datetime(2024, 10, 27, 0, 40, tzinfo=UTC)  # 01:40 on the first pass
    assert next_open_utc(after_first) == datetime(2024, 10, 27, 1, 15, tzinfo=UTC)
    before = datetime(2024, 10, 27, 0, 0, tzinfo=UTC)  # 01:00 on the first pass
    assert next_open_utc(before) == datetime(2024, 10, 27, 0, 15, tzinfo=UTC)


#: Zones whose clocks change, some by half an hour (Lord Howe) or at midnight (Santiago, Havana).
DST_ZONES = ("America/New_York", "Europe/Dublin", "Europe/London", "Australia/Sydney",
             "Australia/Lord_Howe", "America/Santiago", "Pacific/Chatham", "America/Havana")


@functools.cache
def clock_changes(zone: str, year: int) -> tuple[datetime, ...]:
    """The UTC hours in ``year`` at which ``zone``'s offset has just changed."""
    tz, found = ZoneInfo(zone), []
    hour = datetime(year, 1, 1, tzinfo=UTC)
    previous = hour.astimezone(tz).utcoffset()
    while hour.year == year:
        hour += timedelta(hours=1)
        offset = hour.astimezone(tz).utcoffset()
        if offset != previous:
            found.append(hour)
        previous = offset
    return tuple(found)


@st.composite
def near_a_clock_change(draw):  # type: ignore[no-untyped-def]
    """A zone and a whole minute from a day and a half before one of its changes to half a day
    after."""
    zone = draw(st.sampled_from(DST_ZONES))
    change = draw(st.sampled_from(clock_changes(zone, draw(st.integers(2024, 2030)))))
    return zone, change + timedelta(minutes=draw(st.integers(-36 * 60, 12 * 60)))


def open_minutes(hours: BusinessHours, start: datetime, end: datetime) -> int:
    """The whole minutes from ``start`` to ``end`` (UTC, on the minute) that are open."""
    count = int((end - start).total_seconds() // 60)
    return sum(hours.is_open(start + timedelta(minutes=m)) for m in range(count))


@settings(max_examples=150, deadline=None)
@given(place=near_a_clock_change(), weekly=weekly_hours(), minutes=st.integers(0, 180))
def test_add_open_time_counts_exactly_the_open_minutes_across_a_clock_change(
        place, weekly, minutes):  # type: ignore[no-untyped-def]
    zone, start = place
    hours = BusinessHours.from_settings(zone, {"weekly": weekly})
    due = add_open_time(hours, start, timedelta(minutes=minutes)).astimezone(UTC)
    if not any(weekly.values()):
        assert due == start + timedelta(minutes=minutes)  # never open: the plain sum
        return
    if due - start > timedelta(days=21):
        return  # a rarely open week: too many minutes to count here
    assert open_minutes(hours, start, due) == minutes
    if minutes:
        assert hours.is_open(due - timedelta(minutes=1))  # it ends on open time, not after
    nxt = hours.next_open(start)
    assert nxt is not None and nxt.astimezone(UTC) >= start and hours.is_open(nxt)
    if nxt.astimezone(UTC) > start:
        assert open_minutes(hours, start, nxt.astimezone(UTC)) == 0


def test_add_open_time_counts_both_passes_of_an_hour_the_clocks_go_back_over():
    # Europe/Dublin, 2024-10-27: 02:00 IST becomes 01:00 GMT. Open 00:30-01:30, so open from
    # 23:30 to 00:30 UTC (first pass) and again from 01:00 to 01:30 UTC (second pass).
    dublin = BusinessHours.from_settings("Europe/Dublin", {"weekly": {"sun": [["00:30", "01:30"]]}})
    start = datetime(2024, 10, 26, 23, 30, tzinfo=UTC)
    assert add_open_time(dublin, start, timedelta(minutes=60)) == datetime(
        2024, 10, 27, 0, 30, tzinfo=UTC)
    assert add_open_time(dublin, start, timedelta(minutes=75)) == datetime(
        2024, 10, 27, 1, 15, tzinfo=UTC)  # 15 minutes into the second pass, not next Sunday
