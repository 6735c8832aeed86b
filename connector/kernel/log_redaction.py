"""Keep personal data out of the logs, at every level.

:class:`RedactingFilter` sits on the root logger's handlers, so it sees every record any logger
passes up, from this program or a library, and rewrites it before it is written:

- phone numbers are masked with :func:`connector.kernel.phone.mask` (``+1*********23``): E.164 with or
  without spaces, URL-encoded (``%2B14155550123``), and bare digit runs that are valid numbers;
- SQL parameters (``[parameters: ...]`` in a database error) are removed, and SQLAlchemy's own
  statement, parameter and row lines are dropped;
- urllib3's and requests' connection lines keep the host but cut each URL to a path template
  (``/v2/PhoneNumbers/{id}``), query string removed;
- libraries whose debug output *is* personal data (SQL rows, CRM response bodies) are held at
  WARNING whatever ``TEXTBACK_LOG_LEVEL`` says.

Exception tracebacks and stack traces are redacted the same way. Message bodies cannot be told
apart from other text, so they are kept out at the source: the database engine hides parameters
(``connector.storage.db``) and the program never logs a body.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from connector.kernel.phone import mask, to_e164

#: Loggers whose records below WARNING are personal data themselves: SQLAlchemy's statement
#: parameters and result rows, the HubSpot client's request and response bodies.
QUIET_LOGGERS = ("sqlalchemy.engine", "hubspot")
#: Loggers whose records carry request URLs (cut to path templates).
URL_LOGGERS = ("urllib3", "requests")

_SEP = r"[ .()\-]{0,2}"
#: ``+14155550123``, ``+1 (415) 555-0123``: a plus and 7 to 15 digits.
_E164 = re.compile(rf"(?<![\w+%])\+\d(?:{_SEP}\d){{6,14}}(?!\d)")
#: ``%2B14155550123`` (a plus, URL-encoded), optionally with encoded spaces between digits.
_ENCODED = re.compile(r"%2B(\d(?:(?:%20|[ .\-])?\d){6,14})(?!\d)", re.IGNORECASE)
#: A bare run of 10 to 15 digits (a number sent without its plus); masked when it is a valid one.
_BARE = re.compile(r"(?<![\w.%+\-])\d{10,15}(?![\w.])")
#: What SQLAlchemy appends to a database error: the statement's parameters, to the end of line.
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
#: An absolute http(s) URL: scheme and host kept, path templated, query dropped.
_ABSOLUTE_URL = re.compile(r"(?P<origin>https?://[^\s\"'/?#]+)(?P<path>/[^\s\"'?#]*)?"
                           r"(?P<rest>[?#][^\s\"']*)?", re.IGNORECASE)
#: A bare path (the request line's target), not part of a URL or another word.
_PATH = re.compile(r"(?<![\w:/.{}\-])(?P<path>/[^\s\"'?#]*)(?P<rest>[?#][^\s\"']*)?")
#: Path segments kept as they are: words, ``v3``-style versions, ISO dates (Twilio's API version).
_PLAIN_SEGMENT = re.compile(r"[A-Za-z_.\-]*|v\d+(?:\.\d+)*|\d{4}-\d{2}-\d{2}")
_TRACEBACKS = logging.Formatter()


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text.replace("%20", ""))


def mask_phone_numbers(text: str) -> str:
    """``text`` with every phone-number-like run masked (country code and last two digits kept)."""
    if not any(c.isdigit() for c in text):
        return text
    text = _ENCODED.sub(lambda m: "%2B" + mask("+" + _digits(m.group(1)))[1:], text)
    text = _E164.sub(lambda m: mask("+" + _digits(m.group(0))), text)
    return _BARE.sub(lambda m: mask(m.group(0)) if to_e164(m.group(0)) else m.group(0), text)


def redact_text(text: str) -> str:
    """``text`` without SQL parameters and with phone numbers masked."""
    return mask_phone_numbers(_SQL_PARAMETERS.sub("[parameters: hidden]", text))


def path_template(path: str) -> str:
    """A URL path with every segment that may identify someone or something replaced by ``{id}``.

    >>> path_template("/v2/PhoneNumbers/%2B14155550123")
    '/v2/PhoneNumbers/{id}'
    """
    return "/".join(s if _PLAIN_SEGMENT.fullmatch(s) else "{id}" for s in path.split("/"))


def template_urls(text: str) -> str:
    """``text`` with each URL and request path cut to its path template, queries removed."""

    def absolute(m: re.Match[str]) -> str:
        return m.group("origin") + path_template(m.group("path") or "")

    text = _ABSOLUTE_URL.sub(absolute, text)
    return _PATH.sub(lambda m: path_template(m.group("path")), text)


def _is_under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class RedactingFilter(logging.Filter):
    """Rewrites each record so no phone number, SQL parameter or request identifier is written.

    The record's message is formatted once, redacted and frozen (``args`` cleared), so every
    handler after this one writes the redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; False drops it (personal data with nothing else in it)."""
        if _is_under(record.name, QUIET_LOGGERS) and record.levelno < logging.WARNING:
            return False
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not leak its arguments
            message = f"{record.msg} (unformattable arguments hidden)"
        if _is_under(record.name, URL_LOGGERS):
            message = template_urls(message)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> RedactingFilter:
    """Put one :class:`RedactingFilter` on each handler of ``logger`` (the root logger) and hold
    :data:`QUIET_LOGGERS` at WARNING. Safe to call again: a handler gets the filter once.
    """
    target = logging.getLogger() if logger is None else logger
    existing = [f for h in target.handlers for f in h.filters if isinstance(f, RedactingFilter)]
    redactor = existing[0] if existing else RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(redactor)
    for name in QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        if quiet.getEffectiveLevel() < logging.WARNING:
            quiet.setLevel(logging.WARNING)
    return redactor
