"""The helpers the carrier adapters share from :mod:`connector.core`."""

from __future__ import annotations

import pytest

from connector.core import clock
from connector.core.redact import mask_phone_numbers, redact
from connector.core.times import first_time, parse_time


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Phone +1 (415) 555-0134 is invalid", "Phone *********34 is invalid"),
        ("To 14155550123.", "To *********23."),
        ("id 3f2a-1234567-b", "id 3f2a-1234567-b"),  # glued to a hyphen: an id, not a number
        ("error 21610", "error 21610"),  # five digits: a code
    ],
)
def test_mask_phone_numbers_keeps_the_last_two_digits(text: str, masked: str) -> None:
    assert mask_phone_numbers(text) == masked


def test_redact_removes_secrets_and_numbers() -> None:
    text = redact("token s3cr3t refused for +14155550123", ["s3cr3t", "", None])
    assert text == "token [redacted] refused for *********23"


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        ("2026-04-14T11:05:12.000-04:00", {}, "2026-04-14T15:05:12+00:00"),
        ("2026-04-14T15:05:12Z", {}, "2026-04-14T15:05:12+00:00"),
        ("2026-04-14 15:05:02", {}, "2026-04-14T15:05:02+00:00"),  # no offset: UTC
        ("Tue, 14 Apr 2026 15:05:02 -0000", {"rfc2822": True}, "2026-04-14T15:05:02+00:00"),
        ("Tue, 14 Apr 2026 15:05:02 -0000", {}, None),
        (1776179112, {"epoch": True}, "2026-04-14T15:05:12+00:00"),
        (1776179112000, {"epoch": True}, "2026-04-14T15:05:12+00:00"),
        ("1776179112000", {"epoch": True}, "2026-04-14T15:05:12+00:00"),
        (1776179112, {}, None),
        (True, {"epoch": True}, None),
        (float("nan"), {"epoch": True}, None),
        ("1e400", {"epoch": True}, None),
        ("", {}, None),
        (None, {}, None),
        ("yesterday", {"rfc2822": True, "epoch": True}, None),
    ],
)
def test_parse_time_reads_the_three_spellings(
    value: object, options: dict[str, bool], expected: str | None
) -> None:
    parsed = parse_time(value, **options)
    assert (parsed.isoformat() if parsed else None) == expected


def test_first_time_falls_back_to_now() -> None:
    assert first_time(None, "nonsense", "2026-04-14T15:05:12Z").isoformat() == (
        "2026-04-14T15:05:12+00:00"
    )
    before = clock.now()
    assert before <= first_time(None, "") <= clock.now()
