"""Housecall Pro error responses, classified into :mod:`connector.kernel.errors`.

Housecall Pro answers errors in five JSON shapes (its OpenAPI "Housecall v1 API" at
https://docs.housecallpro.com/, and responses observed by third-party integrations):

- ``{"message": "Unauthorized"}`` (every 401, whichever credential scheme failed)
- ``{"error": {"message": "..."}}`` (the spec's ``ErrorResponse``, e.g. "job not found")
- ``{"error": "..."}`` (e.g. ``PUT /pipeline/statuses`` with an unknown status)
- ``{"errors": {"field": ["is invalid"]}}`` (422 validation)
- ``{"message": "...", "attr": ["..."]}`` (400)

Messages keep Housecall Pro's own text (capped, with secrets and phone numbers masked) because it
is what the operator needs to fix a mapping. A 401 is always the same opaque body, so ours says
which scheme we sent and what to check instead.

Rate limits are not documented (https://docs.housecallpro.com/ has no limits page and no
``X-RateLimit-*`` headers were observed): a 429 honours ``Retry-After`` when sent and otherwise
asks for :data:`DEFAULT_RATE_LIMIT_WAIT`; the connector's one retry layer backs off from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from connector.kernel.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from connector.kernel.http import retry_after_seconds
from connector.kernel.redact import redact

PROVIDER = "housecallpro"

#: Seconds to wait after a 429 that carries no ``Retry-After`` (HCP publishes no limits).
DEFAULT_RATE_LIMIT_WAIT = 10.0
#: Floor for any wait, so ``Retry-After: 0`` never becomes a hot loop.
MIN_RATE_LIMIT_WAIT = 1.0
#: How much of Housecall Pro's error text a message keeps.
MAX_MESSAGE_CHARS = 300

#: Which credential scheme a request used; decides the wording of a 401.
SCHEME_API_KEY = "api_key"
SCHEME_OAUTH = "oauth"

AUTH_HINTS: Mapping[str, str] = {
    SCHEME_API_KEY: (
        "Housecall Pro refused the API key (sent as 'Authorization: Token ...'). Check that the "
        "key still exists under My Apps > App Store > API Key Management (a deleted or "
        "regenerated key stops working at once), that the company is on the plan with API "
        "access (MAX), and that crm.credentials.api_key holds an API key, not an OAuth access "
        "token (OAuth installs use client_id and client_secret instead)."
    ),
    SCHEME_OAUTH: (
        "Housecall Pro refused the OAuth access token (sent as 'Authorization: Bearer ...'). "
        "The token may have expired or been revoked (the app disabled or uninstalled for this "
        "company, or the partner credentials changed): reconnect Housecall Pro through "
        "/oauth/housecallpro/install. A company API key used as an OAuth token fails the same "
        "way; API keys belong in crm.credentials.api_key."
    ),
}
FORBIDDEN_HINTS: Mapping[str, str] = {
    SCHEME_API_KEY: (
        "the API key is valid but may not do this: check it is not a read-only key and that the "
        "operation is open to company API keys (some need partner OAuth)"
    ),
    SCHEME_OAUTH: (
        "the OAuth token is valid but may not do this: check the app is enabled for the company "
        "and was granted the scopes it needs"
    ),
}

def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_as_text(v) for v in value)
    return "" if value is None else str(value)


def error_text(body: Any) -> str:
    """Housecall Pro's human-readable message from any of its five error shapes ("" if none)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body) if body.strip() else {}
        except ValueError:
            return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return _as_text(error.get("message"))
    if isinstance(error, str):
        return error
    errors = body.get("errors")
    if isinstance(errors, dict):
        return "; ".join(f"{field} {_as_text(problems)}" for field, problems in errors.items())
    message = _as_text(body.get("message"))
    attrs = body.get("attr")
    if attrs:
        message += f" ({_as_text(attrs)})"
    return message


def api_error(
    status: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    operation: str,
    scheme: str,
    ambiguous: bool,
    secrets: Sequence[str] = (),
) -> ProviderError:
    """The :mod:`connector.kernel.errors` error for one non-2xx Housecall Pro response.

    ``ambiguous`` is true when the operation may have taken effect, for a 5xx.
    """
    raw = error_text(body).strip()[:MAX_MESSAGE_CHARS] or f"HTTP {status}"
    text = f"Housecall Pro {operation} failed ({status}): {redact(raw, secrets)}"
    common: dict[str, Any] = {"provider": PROVIDER, "status": status}
    if status == 429:
        wait = retry_after_seconds(headers.get("Retry-After"), DEFAULT_RATE_LIMIT_WAIT)
        return RateLimitedError(text, retry_after=max(wait, MIN_RATE_LIMIT_WAIT), **common)
    if status == 401:
        return ProviderAuthError(
            f"Housecall Pro {operation} failed (401 Unauthorized). {AUTH_HINTS[scheme]}",
            code="unauthorized",
            **common,
        )
    if status == 403:
        # Needs an admin, not a retry: the connector flags the installation for attention.
        return ProviderAuthError(f"{text} ({FORBIDDEN_HINTS[scheme]})", code="forbidden", **common)
    if status >= 500:
        return TransientProviderError(text, ambiguous=ambiguous, **common)
    return PermanentProviderError(text, **common)
