"""The helpers the carrier adapters share from :mod:`connector.kernel`."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from carrier_adapters.errors import ErrorTable, classify_error, first_code, json_code
from connector.kernel import clock
from connector.kernel.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    RecipientRejectedError,
    TransientProviderError,
)
from connector.kernel.redact import mask_phone_numbers, redact
from connector.kernel.times import first_time, parse_time


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


TABLE = ErrorTable(
    provider="acme",
    code=first_code(json_code("errors", 0, "code"), json_code("code")),
    recipient={"21610": "opted_out"},
    auth=frozenset({"20003"}),
    rate_limited=frozenset({"20429"}),
    permanent=frozenset({"30001"}),
    default_wait=7.0,
)


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (400, {"code": 21610}, RecipientRejectedError, "21610"),
        (500, {"code": 21610}, TransientProviderError, "21610"),  # a 5xx is never the recipient
        (403, {"errors": [{"code": "30001"}]}, PermanentProviderError, "30001"),
        (400, {"code": "20003"}, ProviderAuthError, "20003"),
        (400, {"code": "20429"}, RateLimitedError, "20429"),
        (429, b"<html>busy</html>", RateLimitedError, None),
        (403, {}, ProviderAuthError, None),
        (503, {"errors": []}, TransientProviderError, None),
        (422, {"code": {"nested": 1}}, PermanentProviderError, None),
    ],
)
def test_classify_error_follows_the_table(
    status: int, body: Any, kind: type[ProviderError], code: str | None
) -> None:
    error = classify_error(_response(status, body), TABLE)
    assert type(error) is kind
    assert (error.provider, error.code, error.status) == ("acme", code, status)
    assert str(error) == f"acme: HTTP {status}" + (f", error {code}" if code else "")


def test_classify_error_waits_as_told_or_by_default() -> None:
    told = classify_error(_response(429, {}, {"Retry-After": "3"}), TABLE)
    assert isinstance(told, RateLimitedError) and told.retry_after == 3.0
    default = classify_error(_response(400, {"code": "20429"}), TABLE)
    assert isinstance(default, RateLimitedError) and default.retry_after == 7.0


def test_a_setup_flag_without_its_call_is_refused_at_class_definition() -> None:
    from carrier_adapters.base import CarrierAdapter
    from carrier_adapters.sandbox import SandboxCarrier

    class Sandboxed(SandboxCarrier):  # inherits the sandbox's own setup calls: accepted
        pass

    assert Sandboxed.can_point_webhooks
    with pytest.raises(TypeError, match="can_point_webhooks is set but point_webhooks"):

        class Broken(CarrierAdapter):  # noqa: F841 - defining it is the test
            can_point_webhooks = True
