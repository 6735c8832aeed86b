"""Reading the times providers put in their payloads, and writing times for people.

Carriers spell a time in one of three ways: ISO 8601 text (``2026-04-14T11:05:12.000-04:00``,
``...Z``), RFC 2822 text (``Tue, 14 Apr 2026 15:05:02 +0000``, Twilio's and older TeXML
callbacks) or a Unix epoch number, in seconds or in milliseconds. :func:`parse_time` reads all
three into an aware UTC datetime, and gives None for anything else: the caller decides what a
missing time means (usually "now").

People read every time in the account's zone, in one format, with the zone named:
:func:`format_time` (``Jun 15, 8:05 AM EDT``), :func:`format_clock` (``8:05 AM EDT``) and
:func:`relative_time` (``3 min ago``).
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, tzinfo

from connector.kernel import clock

#: Epoch values above this are milliseconds: 1e11 seconds is the year 5138, while 1e11
#: milliseconds is March 1973, before any webhook was sent.
MILLISECONDS_ABOVE = 1e11


def _from_epoch(number: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(
            number / 1000.0 if number > MILLISECONDS_ABOVE else number, UTC
        )
    except (ValueError, OverflowError, OSError):  # NaN, infinity, out of the calendar's range
        return None


def parse_time(value: object, *, epoch: bool = False, rfc2822: bool = False) -> datetime | None:
    """``value`` as an aware UTC datetime, or None when it is absent or unreadable.

    Text is read as ISO 8601 (a time without an offset is taken as UTC). With ``epoch`` a number,
    or text that is one, is Unix seconds or milliseconds (told apart by size); with ``rfc2822``
    text that is not ISO 8601 is tried as an RFC 2822 date (``-0000`` meaning UTC). Booleans are
    never times.

    >>> parse_time("2026-04-14T11:05:12.000-04:00").isoformat()
    '2026-04-14T15:05:12+00:00'
    >>> parse_time(1776179112000, epoch=True).isoformat()
    '2026-04-14T15:05:12+00:00'
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value)) if epoch else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if epoch:
        try:
            return _from_epoch(float(text))
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        if not rfc2822:
            return None
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def first_time(*values: object, epoch: bool = False, rfc2822: bool = False) -> datetime:
    """The first of ``values`` that :func:`parse_time` reads; now (:func:`clock.now`) when none
    does, since a webhook without a readable time happened about when it arrived."""
    for value in values:
        parsed = parse_time(value, epoch=epoch, rfc2822=rfc2822)
        if parsed is not None:
            return parsed
    return clock.now()


def _clock_text(local: datetime) -> str:
    hour = local.hour % 12 or 12
    return f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'} {local.tzname()}"


def format_clock(when: datetime, zone: tzinfo) -> str:
    """The time of day of ``when`` in ``zone``, with the zone's abbreviation.

    >>> from zoneinfo import ZoneInfo
    >>> format_clock(datetime(2026, 6, 15, 12, 5, tzinfo=UTC), ZoneInfo("America/New_York"))
    '8:05 AM EDT'
    """
    return _clock_text(_aware(when).astimezone(zone))


def format_time(when: datetime, zone: tzinfo, *, today: datetime | None = None) -> str:
    """``when`` in ``zone`` as people read it: month, day, time and zone, and the year only when
    it is not this year (``today`` is now unless given).

    >>> from zoneinfo import ZoneInfo
    >>> format_time(datetime(2026, 6, 15, 12, 5, tzinfo=UTC), ZoneInfo("America/Chicago"),
    ...             today=datetime(2026, 6, 20, tzinfo=UTC))
    'Jun 15, 7:05 AM CDT'
    >>> format_time(datetime(2025, 12, 31, 23, 0, tzinfo=UTC), ZoneInfo("UTC"),
    ...             today=datetime(2026, 6, 20, tzinfo=UTC))
    'Dec 31 2025, 11:00 PM UTC'
    """
    local = _aware(when).astimezone(zone)
    current_year = (today or clock.now()).astimezone(zone).year
    day = f"{local:%b} {local.day}" + ("" if local.year == current_year else f" {local.year}")
    return f"{day}, {_clock_text(local)}"


def relative_time(when: datetime, *, now: datetime | None = None) -> str:
    """How long ago (or how soon) ``when`` is: ``just now``, ``3 min ago``, ``2 h ago``,
    ``yesterday``, ``4 days ago``, ``in 10 min``; past a month the empty text (the date says it).

    >>> relative_time(datetime(2026, 6, 15, 11, 57, tzinfo=UTC),
    ...               now=datetime(2026, 6, 15, 12, 0, tzinfo=UTC))
    '3 min ago'
    """
    seconds = ((now or clock.now()) - _aware(when)).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 45:
        return "just now"
    minutes, hours, days = round(seconds / 60), round(seconds / 3600), round(seconds / 86400)
    if seconds < 3600 - 30:
        amount = f"{max(1, minutes)} min"
    elif seconds < 86400 - 1800:
        amount = f"{hours} h"
    elif days <= 1:
        return "tomorrow" if ahead else "yesterday"
    elif days <= 30:
        amount = f"{days} days"
    else:
        return ""
    return f"in {amount}" if ahead else f"{amount} ago"


def _aware(when: datetime) -> datetime:
    """Stored times come back from SQLite without a zone: they are UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
