"""Phone numbers: E.164 normalisation (via ``phonenumbers``) and masking for logs and reprs."""

from __future__ import annotations

import functools

import phonenumbers

# What carriers put in the caller field when the caller ID is withheld. Twilio documents
# "anonymous"; others use "Restricted", "Unavailable", "Unknown" or send nothing.
WITHHELD_CALLER_IDS = frozenset(
    {"", "anonymous", "restricted", "unavailable", "unknown", "private", "blocked", "266696687"}
)


@functools.lru_cache(maxsize=4096)
def to_e164(raw: str | None, default_region: str = "US") -> str | None:
    """Return ``raw`` as an E.164 string, or None when it is withheld, invalid or not a number.

    >>> to_e164("(415) 555-0100")
    '+14155550100'
    """
    if raw is None:
        return None
    text = raw.strip()
    if text.lower() in WITHHELD_CALLER_IDS:
        return None
    # Some carriers send E.164 without the plus (Vonage); digits of international length get one.
    if text.isdigit() and len(text) > 10:
        text = "+" + text
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed) or not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def national_digits(e164: str) -> str:
    """The national significant number of an E.164 string (``+14155550100`` -> ``4155550100``)."""
    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.national_significant_number(parsed)


def region_of(e164: str) -> str | None:
    """ISO country code of an E.164 number, or None when unknown."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


def mask(number: str | None) -> str:
    """A number safe for logs and reprs: the country code and last two digits only.

    >>> mask("+14155550100")
    '+1*******00'
    """
    if not number:
        return "<none>"
    if not number.startswith("+"):
        return "*" * max(len(number) - 2, 0) + number[-2:]
    try:
        cc = str(phonenumbers.parse(number, None).country_code)
    except phonenumbers.NumberParseException:
        cc = ""
    hidden = len(number) - 1 - len(cc) - 2
    return "+" + cc + "*" * max(hidden, 0) + number[-2:]
