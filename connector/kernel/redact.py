"""Keep phone numbers and secrets out of the text an adapter puts in an error or a log line.

Providers' error messages sometimes echo what they were sent (``"+14155550123 is not a mobile
number"``, a property value, a token in a URL); an adapter that quotes one passes it through
:func:`redact` first. The log filter (:mod:`connector.kernel.log_redaction`) is the last line of
defence for whatever reaches the logs; this is the first, for text that also travels in
exceptions and stored error reasons.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: A run of at least seven digits, optionally with a leading ``+`` and single phone punctuation
#: between digits, not glued to letters, digits or hyphens (so ids and UUIDs survive).
PHONE_LIKE = re.compile(r"(?<![0-9A-Za-z\-])\+?\d(?:[\s().\-]{0,2}\d){6,}(?![0-9A-Za-z\-])")
#: What a secret is replaced with.
REDACTED = "[redacted]"


def _last_two(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "*" * (len(digits) - 2) + digits[-2:]


def mask_phone_numbers(text: str) -> str:
    """``text`` with every phone-like digit run reduced to its last two digits.

    >>> mask_phone_numbers("Phone +1 (415) 555-0134 is invalid")
    'Phone *********34 is invalid'
    """
    return PHONE_LIKE.sub(_last_two, text)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without any of ``secrets`` (each replaced by ``[redacted]``) and without full
    phone numbers. Empty or missing secrets are ignored.

    >>> redact("token s3cr3t for +14155550123", ["s3cr3t"])
    'token [redacted] for *********23'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return mask_phone_numbers(text)
