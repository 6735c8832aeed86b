"""Business hours: split shifts, holidays, overrides, per-number hours, DST (property-based)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.hours import WEEKDAYS, BusinessHours, describe_next_open, parse_intervals

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
        if wanted:
            assert nxt == instant


def test_next_open_skips_an_interval_lost_to_the_spring_forward_jump():
    lost = BusinessHours.from_settings(NY, {"weekly": {"sun": [["02:00", "02:45"]]}})
    nxt = lost.next_open(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    assert nxt == at(NY, 2026, 3, 15, 2, 0) and lost.is_open(nxt)
    partly = BusinessHours.from_settings(NY, {"weekly": {"sun": [["02:30", "04:00"]]}})
    assert partly.next_open(datetime(2026, 3, 7, 12, 0, tzinfo=UTC)) == at(NY, 2026, 3, 8, 3, 30)


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
