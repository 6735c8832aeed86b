"""Reading the times providers put in their payloads.

Carriers spell a time in one of three ways: ISO 8601 text (``2026-04-14T11:05:12.000-04:00``,
``...Z``), RFC 2822 text (``Tue, 14 Apr 2026 15:05:02 +0000``, Twilio's and older TeXML
callbacks) or a Unix epoch number, in seconds or in milliseconds. :func:`parse_time` reads all
three into an aware UTC datetime, and gives None for anything else: the caller decides what a
missing time means (usually "now").
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

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
