"""One classification of carriers' API errors, driven by a table each carrier fills in.

Every carrier answers a failed request with an HTTP status and, often, an error code of its own
in the body. What the code means differs (Twilio's 21610 is an opt-out, Telnyx's 40300 too);
what we do with the meaning does not. A carrier describes its codes in an :class:`ErrorTable`;
:func:`classify_error` turns a failed response into the :mod:`connector.kernel.errors` error the
connector acts on:

1. a code the table lists as the recipient's refusal (below HTTP 500) is a
   :class:`RecipientRejectedError` with the table's reason (``opted_out``, ``not_mobile``,
   ``invalid``);
2. a code listed as a configuration problem is a :class:`PermanentProviderError`;
3. a code listed as bad credentials, or HTTP 401, is a :class:`ProviderAuthError`;
4. a code listed as throttling, or HTTP 429, is a :class:`RateLimitedError` whose wait is the
   carrier's ``Retry-After`` (or the table's default);
5. anything else goes by HTTP status (:func:`connector.kernel.http.classify_status`): 403 auth,
   5xx transient and ambiguous, other 4xx permanent.

Messages carry the carrier's name, the HTTP status and the code only: never the carrier's own
message text (it often quotes the phone number), the request body or a credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from connector.kernel.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    RecipientRejectedError,
)
from connector.kernel.http import (
    DEFAULT_TIMEOUT,
    classify_status,
    json_object,
    retry_after_seconds,
    transport_error,
)

#: Reads a carrier's error code out of its parsed JSON error body; None when there is none.
CodeReader = Callable[[Any], str | None]


def json_code(*path: str | int) -> CodeReader:
    """A :data:`CodeReader` that follows ``path`` (keys and list indexes) into the body.

    ``json_code("errors", 0, "code")`` reads Telnyx's ``{"errors": [{"code": "40300"}]}``. The
    value is returned as stripped text; a missing step, an empty value or a nested object
    gives None.
    """

    def read(body: Any) -> str | None:
        value = body
        for step in path:
            if isinstance(step, int):
                if not isinstance(value, list) or len(value) <= step:
                    return None
            elif not isinstance(value, dict):
                return None
            value = value[step] if isinstance(step, int) else value.get(step)
        if value is None or isinstance(value, dict | list | bool):
            return None
        return str(value).strip() or None

    return read


def first_code(*readers: CodeReader) -> CodeReader:
    """A :data:`CodeReader` giving the first code any of ``readers`` finds."""

    def read(body: Any) -> str | None:
        for reader in readers:
            code = reader(body)
            if code is not None:
                return code
        return None

    return read


def no_code(body: Any) -> str | None:
    """For carriers whose errors carry no code: the HTTP status alone decides."""
    return None


def retry_after_header(response: requests.Response) -> str | None:
    """The ``Retry-After`` header, the way most carriers say how long to wait."""
    return response.headers.get("Retry-After")


@dataclass(frozen=True)
class ErrorTable:
    """What a carrier's API error codes mean; :func:`classify_error` applies it.

    Each code set cites the carrier's error reference where the adapter declares it.
    """

    #: The carrier's name, as in ``ProviderError.provider``.
    provider: str
    #: Where the code is in the JSON error body.
    code: CodeReader = no_code
    #: Code -> :attr:`RecipientRejectedError.reason`, for refusals about the recipient.
    recipient: Mapping[str, str] = field(default_factory=dict)
    #: Codes meaning the credentials were refused.
    auth: frozenset[str] = frozenset()
    #: Codes meaning we were throttled.
    rate_limited: frozenset[str] = frozenset()
    #: Codes meaning the account or sender is misconfigured: permanent whatever the status.
    permanent: frozenset[str] = frozenset()
    #: Seconds to wait on throttling when the carrier does not say.
    default_wait: float = 1.0
    #: How the carrier says how long to wait (a ``Retry-After`` value in seconds or as a date).
    retry_after: Callable[[requests.Response], str | None] = retry_after_header
    #: Refusals told by the body rather than a code (Bandwidth's 400 whose field errors name
    #: ``to``): the response -> a reason, or None.
    recipient_check: Callable[[requests.Response], str | None] | None = None
    #: How the code is written after ``"<provider>: HTTP <status>"``.
    code_label: str = ", error {code}"


def error_code(response: requests.Response, table: ErrorTable) -> str | None:
    """The carrier's error code in ``response``'s JSON body per ``table``; None without one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return table.code(body)


def classify_error(response: requests.Response, table: ErrorTable) -> ProviderError:
    """The :mod:`connector.kernel.errors` error for a non-2xx response, per the carrier's table
    (the order is in the module docstring)."""
    status = response.status_code
    code = error_code(response, table)
    message = f"{table.provider}: HTTP {status}" + (
        table.code_label.format(code=code) if code is not None else ""
    )
    common: dict[str, Any] = {"provider": table.provider, "code": code, "status": status}
    if code is not None and status < 500 and code in table.recipient:
        return RecipientRejectedError(message, reason=table.recipient[code], **common)
    if table.recipient_check is not None and status < 500:
        reason = table.recipient_check(response)
        if reason is not None:
            return RecipientRejectedError(message, reason=reason, **common)
    if code in table.permanent:
        return PermanentProviderError(message, **common)
    if code in table.auth or status == 401:
        return ProviderAuthError(message, **common)
    retry_after = table.retry_after(response)
    if status == 429 or code in table.rate_limited:
        return RateLimitedError(
            message, retry_after=retry_after_seconds(retry_after, table.default_wait), **common
        )
    return classify_status(
        table.provider, status, message, code=code, retry_after=retry_after,
        default_wait=table.default_wait,
    )


def request_api(
    session: requests.Session, method: str, url: str, table: ErrorTable, **kwargs: Any
) -> requests.Response:
    """One request to a carrier's REST API, answered with a 2xx response or an error.

    A connection or timeout failure is :func:`connector.kernel.http.transport_error` (ambiguous:
    the request may have reached the carrier), a non-2xx answer is :func:`classify_error` per
    ``table``. Redirects are not followed: a redirect would carry the credential to another host.
    ``kwargs`` go to ``session.request`` (the carrier's ``auth`` or ``headers``, and the body).
    """
    try:
        response = session.request(
            method, url, timeout=DEFAULT_TIMEOUT, allow_redirects=False, **kwargs
        )
    except requests.RequestException as exc:
        raise transport_error(table.provider, exc) from None
    if not 200 <= response.status_code < 300:
        raise classify_error(response, table)
    return response


def request_json(
    session: requests.Session, method: str, url: str, table: ErrorTable, **kwargs: Any
) -> dict[str, Any]:
    """:func:`request_api` for a JSON object answer (the setup reads and updates)."""
    return json_object(request_api(session, method, url, table, **kwargs), table.provider)
