"""Housecall Pro partner OAuth: the authorize URL, the code exchange and the refresh.

OAuth is for approved integration partners only: the client id and secret come from Housecall
Pro after review (``apideveloper@housecallpro.com``). Companies without a partner app use a
company API key instead (``Authorization: Token``), which needs none of this.

What is confirmed and what is inferred:

- The endpoints are those of Housecall Pro's authentication guide as third-party clients cite
  it (https://docs.housecallpro.com/docs/housecall-public-api/b87d37ae48a0d-authentication):
  authorize at ``https://pro.housecallpro.com/oauth/authorize``, exchange and refresh at
  ``POST https://api.housecallpro.com/oauth/token``. The OpenAPI document itself declares the
  OAuth scheme with empty URLs, so both are keyword arguments here and can be overridden.
- The token request is a JSON body (``grant_type``, ``client_id``, ``client_secret``, ``code``,
  ``redirect_uri`` / ``refresh_token``), as the working third-party clients send it; the server
  is Rails Doorkeeper, which also accepts the standard form encoding. No PKCE.
- The response is the standard OAuth 2 shape (``access_token``, ``refresh_token``,
  ``expires_in``, ``token_type``, ``scope``, Doorkeeper's ``created_at``). Access tokens last
  about 30 days (``expires_in`` around 2,592,000). Whether the refresh token rotates is not
  documented: :func:`refresh` keeps the old one when the answer carries none, and the adapter
  refreshes under :meth:`~crm_adapters.base.TokenStore.locked` so a rotating one is used once.
- Scopes beyond the example ``public`` are undocumented; by default none is requested and
  Housecall Pro applies the app's default scopes *(inferred)*. No revoke endpoint is documented.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from connector.core import clock
from connector.core.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from connector.core.http import DEFAULT_TIMEOUT, new_session, retry_after_seconds, transport_error
from crm_adapters.base import OAuthTokens
from crm_adapters.housecallpro.errors import PROVIDER, redact

AUTHORIZE_URL = "https://pro.housecallpro.com/oauth/authorize"
TOKEN_URL = "https://api.housecallpro.com/oauth/token"  # noqa: S105 (a URL, not a secret)
#: Refresh an access token this long before it expires.
REFRESH_MARGIN = timedelta(minutes=10)
#: OAuth error codes (RFC 6749 section 5.2) meaning the grant or the app is no longer valid.
REVOKED_GRANT_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_token"}
)
#: Provider fields worth keeping in :attr:`OAuthTokens.extra`.
EXTRA_FIELDS = ("scope", "token_type", "created_at", "company_id")


def authorize_url(
    client_id: str,
    redirect_uri: str,
    state: str,
    *,
    scope: str | None = None,
    authorize_endpoint: str = AUTHORIZE_URL,
) -> str:
    """Where ``GET /oauth/housecallpro/install`` sends the admin's browser.

    ``state`` is the connector's CSRF token, checked again on the callback.
    """
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
    }
    if scope:
        params["scope"] = scope
    return f"{authorize_endpoint}?{urlencode(params)}"


def tokens_from_response(payload: Mapping[str, Any], *, now: datetime | None = None) -> OAuthTokens:
    """:class:`OAuthTokens` from a token endpoint answer; ``expires_at`` from ``expires_in``.

    Doorkeeper's ``created_at`` (epoch seconds) anchors the lifetime when present.
    """
    access = payload.get("access_token")
    if not isinstance(access, str) or not access:
        raise PermanentProviderError(
            "Housecall Pro token endpoint answered without an access_token", provider=PROVIDER
        )
    issued = now or clock.now()
    created = payload.get("created_at")
    if isinstance(created, int | float) and not isinstance(created, bool):
        issued = datetime.fromtimestamp(float(created), UTC)
    expires_at = None
    try:
        lifetime = float(payload["expires_in"])
    except (KeyError, TypeError, ValueError):
        lifetime = None
    if lifetime is not None:
        expires_at = issued + timedelta(seconds=lifetime)
    refresh_token = payload.get("refresh_token")
    extra = {k: payload[k] for k in EXTRA_FIELDS if k in payload}
    return OAuthTokens(
        access_token=access,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_at=expires_at,
        extra=extra,
    )


def needs_refresh(tokens: OAuthTokens, *, now: datetime | None = None) -> bool:
    """True when the access token expires within :data:`REFRESH_MARGIN` (and can be refreshed).

    A token without ``expires_at`` is used until Housecall Pro refuses it.
    """
    if tokens.expires_at is None or not tokens.refresh_token:
        return False
    return tokens.expires_at - (now or clock.now()) <= REFRESH_MARGIN


def _token_error(response: requests.Response, secrets: tuple[str, ...]) -> ProviderError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = str(body.get("error") or "") or None
    description = redact(str(body.get("error_description") or "")[:200], secrets)
    text = f"Housecall Pro token request failed ({status} {code or 'no error code'})"
    text += f": {description}" if description else ""
    common: dict[str, Any] = {"provider": PROVIDER, "code": code, "status": status}
    if status == 429:
        wait = retry_after_seconds(response.headers.get("Retry-After"), 10.0)
        return RateLimitedError(text, retry_after=max(wait, 1.0), **common)
    if status >= 500:
        return TransientProviderError(text, ambiguous=True, **common)
    if code in REVOKED_GRANT_ERRORS or status == 401:
        return ProviderAuthError(
            text + " (the authorization is no longer valid: reconnect Housecall Pro through "
            "/oauth/housecallpro/install, and check client_id and client_secret)",
            **common,
        )
    return PermanentProviderError(text, **common)


def _post_token(
    body: dict[str, str],
    *,
    token_endpoint: str,
    session: requests.Session | None,
    timeout: tuple[float, float],
    now: datetime | None,
) -> OAuthTokens:
    http = session or new_session()
    secrets = tuple(v for k, v in body.items() if k in ("client_secret", "code", "refresh_token"))
    try:
        response = http.post(
            token_endpoint,
            json=body,
            headers={"Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise transport_error(PROVIDER, exc) from None
    finally:
        if session is None:
            http.close()
    if not 200 <= response.status_code < 300:
        raise _token_error(response, secrets)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise TransientProviderError(
            "Housecall Pro token endpoint answered without JSON", provider=PROVIDER, ambiguous=True
        )
    return tokens_from_response(payload, now=now)


def exchange_code(
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    *,
    token_endpoint: str = TOKEN_URL,
    session: requests.Session | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    now: datetime | None = None,
) -> OAuthTokens:
    """Trade the callback's ``code`` for tokens (``grant_type=authorization_code``).

    ``redirect_uri`` must be the one sent to :func:`authorize_url`. The caller saves the result
    in the installation's :class:`~crm_adapters.base.TokenStore`.
    """
    body = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    return _post_token(
        body, token_endpoint=token_endpoint, session=session, timeout=timeout, now=now
    )


def refresh(
    client_id: str,
    client_secret: str,
    refresh_token: str,
    *,
    token_endpoint: str = TOKEN_URL,
    session: requests.Session | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    now: datetime | None = None,
) -> OAuthTokens:
    """New tokens from a refresh token (``grant_type=refresh_token``).

    When the answer carries no new refresh token the old one is kept. Raises
    :class:`~connector.core.errors.ProviderAuthError` when the grant is gone (app uninstalled).
    """
    body = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    tokens = _post_token(
        body, token_endpoint=token_endpoint, session=session, timeout=timeout, now=now
    )
    if tokens.refresh_token is None:
        tokens = OAuthTokens(tokens.access_token, refresh_token, tokens.expires_at, tokens.extra)
    return tokens
