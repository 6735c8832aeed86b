"""The helpers the carrier adapters share from :mod:`connector.core`."""

from __future__ import annotations

import pytest

from connector.core.redact import mask_phone_numbers, redact


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
