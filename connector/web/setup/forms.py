"""Reading the setup forms: hours written as ``08:00-12:00, 13:00-17:00``, dated lines, numbers
one per line, and the errors a template shows next to each field."""

from __future__ import annotations

import re
from collections.abc import Mapping

from connector.web.setup.saving import FieldErrors

_SPAN = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")
_DATED = re.compile(r"^\s*(\S+)\s*(.*?)\s*$")
#: How hours are written in the forms.
HOURS_HINT = "write hours as 08:00-12:00, 13:00-17:00 (24-hour clock; leave empty for closed)"


def _clock(text: str) -> str:
    hours, minutes = text.split(":")
    return f"{int(hours):02d}:{minutes}"


def parse_spans(text: str) -> list[list[str]] | None:
    """``"8:00-12:00, 13:00-17:00"`` -> ``[["08:00", "12:00"], ["13:00", "17:00"]]``; None when
    it is not written that way. Empty text is no spans (closed)."""
    spans: list[list[str]] = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        match = _SPAN.match(part)
        if match is None:
            return None
        spans.append([_clock(match.group(1)), _clock(match.group(2))])
    return spans


def format_spans(spans: list[list[str]]) -> str:
    """The inverse of :func:`parse_spans`."""
    return ", ".join(f"{start}-{end}" for start, end in spans)


def lines_of(text: str) -> list[str]:
    """The non-empty lines of a text area."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def dated_lines(text: str) -> list[tuple[str, str]]:
    """``2026-12-25 Christmas Day`` lines as ``(date, rest)``; the schema checks the date."""
    out = []
    for line in lines_of(text):
        match = _DATED.match(line)
        if match:
            out.append((match.group(1), match.group(2)))
    return out


def errors_at(errors: Mapping[str, list[str]], path: str) -> list[str]:
    """The messages of ``path`` and of anything under it (``hours.weekly.mon`` takes
    ``hours.weekly.mon[0] end`` too)."""
    return [message for key, messages in errors.items()
            if key == path or key.startswith((path + ".", path + "[")) for message in messages]


def add_error(errors: FieldErrors, path: str, message: str) -> None:
    """Note one more message for ``path``."""
    errors.setdefault(path, []).append(message)
