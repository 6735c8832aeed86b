"""Jobber's OAuth 2.0 authorization-code flow, token refresh and app disconnect.

Everything here follows Jobber's App Authorization guide:
https://developer.getjobber.com/docs/building_your_app/app_authorization

- Authorize: ``GET https://api.getjobber.com/api/oauth/authorize?response_type=code&client_id=
  &redirect_uri=&state=``. Scopes are not URL parameters: they are set on the app in the
  Developer Center. A flow started from the App Marketplace's Connect button carries no state.
- Token: ``POST https://api.getjobber.com/api/oauth/token``, form-encoded, with ``client_id``,
  ``client_secret``, ``grant_type`` (``authorization_code`` with ``code`` and ``redirect_uri``, or
  ``refresh_token`` with ``refresh_token``). The answer holds ``access_token`` (a JWT whose
  ``exp`` is its expiry) and ``refresh_token``; newer answers add ``expires_at`` and, when
  something is off with rotation, a ``warning``.
- A refused refresh token ("The provided refresh token is not valid") means the installation is
  gone: disconnected, rotated away by a concurrent refresh, or the secret was rolled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests

from connector.core.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from connector.core.http import DEFAULT_TIMEOUT, retry_after_seconds
from crm_adapters.base import OAuthTokens
from crm_adapters.jobber.client import post_graphql
from crm_adapters.jobber.documents import ACCOUNT
from crm_adapters.jobber.errors import (
    MIN_WAIT_SECONDS,
    PROVIDER,
    ddos_window_wait,
    message_of,
    redact,
)
from crm_adapters.jobber.tokens import TokenRefusedError, jwt_claims, jwt_expiry
from crm_adapters.jobber.webhooks import JobberWebhookEvent, parse_webhook

AUTHORIZE_URL = "https://api.getjobber.com/api/oauth/authorize"
TOKEN_URL = "https://api.getjobber.com/api/oauth/token"  # noqa: S105 - a URL, not a secret
GRAPHQL_URL = "https://api.getjobber.com/api/graphql"

#: OAuth ``error`` codes that mean our request or our app credentials are wrong (fix the
#: configuration), as opposed to the grant itself being dead.
_CONFIGURATION_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_request", "unsupported_grant_type"}
)
#: JWT claims worth keeping with the tokens (Jobber's numeric ids and the granted scopes), kept
#: in ``OAuthTokens.extra`` under a ``jwt_`` prefix so they never overwrite what the connector
#: stores there (such as the account's EncodedId).
_KEPT_CLAIMS = ("account_id", "user_id", "app_id", "scope")

_LOG = logging.getLogger(__name__)

__all__ = [
    "AUTHORIZE_URL",
    "GRAPHQL_URL",
    "TOKEN_URL",
    "JobberAccount",
    "JobberWebhookEvent",
    "TokenRefusedError",
    "authorize_url",
    "exchange_code",
    "fetch_account",
    "parse_webhook",
    "refresh",
]


@dataclass(frozen=True)
class JobberAccount:
    """The connected Jobber account: ``id`` is the EncodedId webhooks carry as ``accountId``."""

    id: str
    name: str


def authorize_url(
    client_id: str, redirect_uri: str, state: str, *, endpoint: str = AUTHORIZE_URL
) -> str:
    """Where to send the admin to connect the app (step 1 of the authorization-code flow)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{endpoint}?{query}"


def exchange_code(
    session: requests.Session,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    token_url: str = TOKEN_URL,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> OAuthTokens:
    """Redeem the authorization code from the callback for the first token pair.

    Codes are single-use, so a lost answer (timeout, 5xx) is reported as ambiguous: start the
    install again rather than re-sending the code.
    """
    form = {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
    }
    return _token_request(session, token_url, form, "code exchange", timeout, (client_secret, code))


def refresh(
    session: requests.Session,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    token_url: str = TOKEN_URL,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> OAuthTokens:
    """Redeem a refresh token for a new pair; raises :class:`TokenRefusedError` when refused.

    Call it only under the token store's lock and save the result before using it (see
    :mod:`crm_adapters.jobber.tokens`). A timeout after sending is ambiguous: Jobber may have
    rotated the token, in which case the next attempt is refused and the install must be redone.
    """
    form = {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    }
    return _token_request(
        session, token_url, form, "token refresh", timeout, (client_secret, refresh_token)
    )


def fetch_account(
    session: requests.Session,
    access_token: str,
    *,
    graphql_url: str = GRAPHQL_URL,
    graphql_version: str | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> JobberAccount:
    """The account a fresh token belongs to (``query Account``), to key the installation on.

    Jobber recommends it right after the code exchange: the ``account`` query works for every
    app whatever its scopes, and its ``id`` is what the ``APP_DISCONNECT`` webhook names.
    """
    data = post_graphql(
        session,
        graphql_url,
        access_token,
        ACCOUNT,
        {},
        graphql_version=graphql_version,
        timeout=timeout,
        secrets=(access_token,),
    )
    account = data.get("account") or {}
    if not account.get("id"):
        raise PermanentProviderError("Jobber returned no account for the token", provider=PROVIDER)
    return JobberAccount(id=str(account["id"]), name=str(account.get("name") or ""))


def tokens_from_response(body: Mapping[str, Any]) -> OAuthTokens:
    """An :class:`OAuthTokens` from a token-endpoint answer (expiry from the JWT's ``exp``)."""
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise PermanentProviderError("Jobber token answer has no access_token", provider=PROVIDER)
    refresh_token = body.get("refresh_token")
    claims = jwt_claims(access)
    extra = {f"jwt_{k}": claims[k] for k in _KEPT_CLAIMS if k in claims}
    return OAuthTokens(
        access_token=access,
        refresh_token=str(refresh_token) if refresh_token else None,
        expires_at=jwt_expiry(access) or _parse_expires_at(body.get("expires_at")),
        extra=extra or None,
    )


def _parse_expires_at(value: Any) -> datetime | None:
    # The refresh answer's "expires_at": "2024-04-09 21:04:31 UTC".
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
    except ValueError:
        return None


def _token_request(
    session: requests.Session,
    url: str,
    form: Mapping[str, str],
    what: str,
    timeout: tuple[float, float],
    secrets: tuple[str, ...],
) -> OAuthTokens:
    try:
        response = session.post(
            url, data=dict(form), headers={"Accept": "application/json"}, timeout=timeout
        )
    except requests.RequestException as exc:
        never_sent = isinstance(exc, requests.ConnectionError) and not isinstance(
            exc, requests.ReadTimeout
        )
        _LOG.warning("jobber %s: transport failure %s", what, type(exc).__name__)
        raise TransientProviderError(
            f"Jobber {what} failed: {type(exc).__name__}", provider=PROVIDER, ambiguous=not never_sent
        ) from None
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, Mapping):
        body = {}
    if response.status_code >= 400:
        error = _token_error(response.status_code, body, response.headers.get("Retry-After"),
                             what, secrets)
        _LOG.info("jobber %s: HTTP %s (%s)", what, response.status_code, type(error).__name__)
        raise error
    if body.get("warning"):
        # Rotation is off, or an already-rotated refresh token was redeemed (older apps only).
        _LOG.warning("jobber %s: %s", what, redact(str(body["warning"]), secrets))
    return tokens_from_response(body)


def _token_error(
    status: int, body: Mapping[str, Any], retry_after: str | None, what: str, secrets: tuple[str, ...]
) -> ProviderError:
    code = str(body.get("error") or "") or None
    detail = redact(message_of(body), secrets)
    text = f"Jobber {what} failed (HTTP {status}{' ' + code if code else ''})"
    text += f": {detail}" if detail else ""
    common: dict[str, Any] = {"provider": PROVIDER, "code": code, "status": status}
    if status == 429:
        wait = retry_after_seconds(retry_after, ddos_window_wait())
        return RateLimitedError(text, retry_after=max(wait, MIN_WAIT_SECONDS), **common)
    if status >= 500:
        return TransientProviderError(text, ambiguous=True, **common)
    if status in (400, 401, 403):
        if code in _CONFIGURATION_ERRORS:
            return ProviderAuthError(text + " (check the app's client id, secret and redirect URI)",
                                     **common)
        return TokenRefusedError(text, **common)
    return PermanentProviderError(text, **common)
