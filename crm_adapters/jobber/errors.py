"""Jobber's failure shapes translated into :mod:`connector.kernel.errors`.

Jobber fails in two layers (https://developer.getjobber.com/docs/using_jobbers_api/handling_api_errors):
HTTP statuses (401 bad token, 429 too many requests, 5xx) and, inside an HTTP 200, GraphQL
``errors`` (query cost ``THROTTLED``, a disconnected app, schema errors) or a mutation payload's
``userErrors`` (validation). Messages keep Jobber's own words but never a token, the client
secret or a full phone number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connector.kernel import clock
from connector.kernel.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from connector.kernel.http import retry_after_seconds
from connector.kernel.redact import redact as core_redact

PROVIDER = "jobber"

#: How much of Jobber's message an error keeps.
MAX_MESSAGE_CHARS = 300
#: Floor for any computed wait, so a nearly refilled bucket never turns into a hot loop.
MIN_WAIT_SECONDS = 1.0
#: Jobber's DDoS guard allows 2,500 requests per 300 s per app and account and answers 429 beyond
#: it. It is Rack::Attack, whose throttle counts in fixed windows aligned to multiples of the
#: period, so without a ``Retry-After`` we wait for the next 300 s boundary (inferred from
#: Rack::Attack's design; Jobber documents the limit, not the window alignment).
#: https://developer.getjobber.com/docs/using_jobbers_api/api_rate_limits#ddos-protection-middleware
DDOS_WINDOW_SECONDS = 300.0

#: The GraphQL error Jobber returns once the account has disconnected the app.
#: https://developer.getjobber.com/docs/building_your_app/app_lifecycle
DISCONNECTED_TEXT = "has disconnected this app"
#: The GraphQL error of a temporary outage (same page).
UNAVAILABLE_TEXT = "service temporarily unavailable"

class AppDisconnectedError(ProviderAuthError):
    """The account disconnected the app: Jobber has invalidated every token of the installation."""


class UnauthorizedError(ProviderAuthError):
    """HTTP 401 from the GraphQL endpoint: the access token was refused (expired or revoked)."""


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` capped, without any of ``secrets`` and without full phone numbers."""
    return core_redact(text, secrets).strip()[:MAX_MESSAGE_CHARS]


def ddos_window_wait(now: float | None = None) -> float:
    """Seconds until the next 300 s window of Jobber's request limit opens (at least 1 s)."""
    current = clock.timestamp() if now is None else now
    return max(DDOS_WINDOW_SECONDS - (current % DDOS_WINDOW_SECONDS), MIN_WAIT_SECONDS)


def throttle_status(body: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """``(requested, maximum, available, restore_rate)`` from a response's ``extensions.cost``.

    Shape: ``{"requestedQueryCost": 142, "actualQueryCost": 47, "throttleStatus":
    {"maximumAvailable": 10000, "currentlyAvailable": 9953, "restoreRate": 500}}``; the restore
    rate is points per second.
    https://developer.getjobber.com/docs/using_jobbers_api/api_rate_limits#response-format
    """
    cost = (body.get("extensions") or {}).get("cost") if isinstance(body, Mapping) else None
    if not isinstance(cost, Mapping):
        return None
    status = cost.get("throttleStatus")
    if not isinstance(status, Mapping):
        return None
    try:
        return (
            float(cost.get("requestedQueryCost") or 0),
            float(status["maximumAvailable"]),
            float(status["currentlyAvailable"]),
            float(status["restoreRate"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def throttle_wait(body: Mapping[str, Any]) -> float | None:
    """Seconds until the bucket holds the points the query asked for; None without a cost block.

    ``(requested - currentlyAvailable) / restoreRate``, at least :data:`MIN_WAIT_SECONDS`.
    """
    status = throttle_status(body)
    if status is None:
        return None
    requested, _maximum, available, rate = status
    if rate <= 0:
        return None
    return max((requested - available) / rate, MIN_WAIT_SECONDS)


def message_of(body: Any) -> str:
    """The first human-readable message in a Jobber error body (GraphQL, OAuth or plain)."""
    if not isinstance(body, Mapping):
        return ""
    for error in body.get("errors") or []:
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
    for key in ("error_description", "message", "error"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])
    return ""


def error_codes(body: Any) -> list[str]:
    """``extensions.code`` of every GraphQL error in ``body``."""
    if not isinstance(body, Mapping):
        return []
    codes = []
    for error in body.get("errors") or []:
        ext = error.get("extensions") if isinstance(error, Mapping) else None
        if isinstance(ext, Mapping) and ext.get("code"):
            codes.append(str(ext["code"]))
    return codes


def http_error(
    status: int,
    body: Any,
    retry_after: str | None,
    *,
    operation: str,
    ambiguous: bool,
    secrets: Sequence[str] = (),
) -> ProviderError:
    """Classify a non-2xx answer from the GraphQL endpoint."""
    text = f"Jobber {operation} failed (HTTP {status})"
    detail = redact(message_of(body), secrets)
    if detail:
        text += f": {detail}"
    common: dict[str, Any] = {"provider": PROVIDER, "status": status}
    if status == 429:
        # Jobber documents no Retry-After; honour one if it comes, else the cost block, else the
        # next window of the request limit.
        default = throttle_wait(body) if isinstance(body, Mapping) else None
        wait = retry_after_seconds(retry_after, default or ddos_window_wait())
        return RateLimitedError(text, retry_after=max(wait, MIN_WAIT_SECONDS), **common)
    if DISCONNECTED_TEXT in message_of(body).lower():
        return AppDisconnectedError(text, **common)
    if status == 401:
        # "Invalid Token Error" / "invalid_request": expired or revoked; the caller renews once.
        return UnauthorizedError(text, **common)
    if status == 403:
        # A scope the app lacks; Jobber grants scopes only at authorisation: re-install.
        return ProviderAuthError(text, **common)
    if status >= 500:
        return TransientProviderError(text, ambiguous=ambiguous, **common)
    return PermanentProviderError(text, **common)


def graphql_error(
    body: Mapping[str, Any], *, operation: str, ambiguous: bool, secrets: Sequence[str] = ()
) -> ProviderError:
    """Classify GraphQL ``errors`` inside an HTTP 200."""
    message = message_of(body)
    text = f"Jobber {operation} failed: {redact(message, secrets) or 'GraphQL error'}"
    codes = error_codes(body)
    common: dict[str, Any] = {"provider": PROVIDER, "code": codes[0] if codes else None}
    if "THROTTLED" in codes:
        # The query asked for more points than the bucket holds. A query dearer than the whole
        # bucket never runs, so that one is permanent (a bug in our document).
        status = throttle_status(body)
        if status is not None and status[0] > status[1]:
            return PermanentProviderError(text + " (query costs more than the maximum)", **common)
        return RateLimitedError(text, retry_after=throttle_wait(body) or MIN_WAIT_SECONDS, **common)
    lowered = message.lower()
    if DISCONNECTED_TEXT in lowered:
        return AppDisconnectedError(text, **common)
    if UNAVAILABLE_TEXT in lowered:
        return TransientProviderError(text, ambiguous=ambiguous, **common)
    return PermanentProviderError(text, **common)


def user_errors(
    payload: Mapping[str, Any] | None, *, operation: str, secrets: Sequence[str] = ()
) -> PermanentProviderError | None:
    """A permanent error carrying Jobber's ``userErrors`` messages, or None when there are none.

    Every mutation payload has ``userErrors: [MutationErrors!]!`` (``message`` and ``path``).
    """
    found = list((payload or {}).get("userErrors") or [])
    if not found:
        return None
    parts = []
    for error in found:
        if not isinstance(error, Mapping):
            continue
        path = ".".join(str(p) for p in error.get("path") or [])
        message = str(error.get("message") or "invalid")
        parts.append(f"{message} ({path})" if path else message)
    text = redact("; ".join(parts), secrets) or "userErrors"
    return PermanentProviderError(
        f"Jobber {operation} refused: {text}", provider=PROVIDER, code="USER_ERROR"
    )
