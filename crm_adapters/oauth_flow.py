"""The OAuth 2.0 authorization-code flow every OAuth CRM shares, run from its declaration.

A CRM adapter declares its endpoints as :attr:`CrmAdapter.oauth`
(:class:`~crm_adapters.base.OAuthEndpoints`); this module builds the authorize URL, trades the
callback's code for tokens, refreshes them and classifies what the token endpoint answers
(RFC 6749 sections 4.1 and 6, errors in section 5.2: https://www.rfc-editor.org/rfc/rfc6749).

- Every token request is one attempt, redirects not followed. A code is single-use and a
  rotating refresh token is spent as it is sent, so a lost answer (a read timeout, a 5xx) is
  reported as ambiguous: start the install again rather than re-sending the code.
- ``invalid_client``, ``unauthorized_client``, ``invalid_request`` and
  ``unsupported_grant_type`` mean our app's configuration is wrong: a
  :class:`~connector.kernel.errors.ProviderAuthError` naming what to check. Any other refusal
  (``invalid_grant`` above all) means the grant is dead, uninstalled or rotated away:
  :class:`TokenRefusedError`, on which the adapter marks the installation disconnected.
- Messages keep the provider's ``error_description`` but never a secret, code or token, nor a
  full phone number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from connector.kernel import clock
from connector.kernel.errors import (
    ConfigurationError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from connector.kernel.http import DEFAULT_TIMEOUT, new_session, retry_after_seconds, transport_error
from connector.kernel.redact import redact
from crm_adapters.base import CrmAdapter, OAuthEndpoints, OAuthTokens

_LOG = logging.getLogger(__name__)

#: OAuth ``error`` codes that mean our request or our app's credentials are wrong (fix the
#: configuration), as opposed to the grant itself being dead.
CONFIGURATION_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_request", "unsupported_grant_type",
     # HubSpot names the problem in ``status`` instead of ``error`` (``BAD_REFRESH_TOKEN`` is a
     # dead grant like ``invalid_grant``); these ones are our app's settings (inferred from the
     # codes its v1 token endpoint answers).
     "BAD_CLIENT_ID", "BAD_CLIENT_SECRET", "BAD_REDIRECT_URI", "BAD_GRANT_TYPE"}
)
#: Seconds to wait after a 429 without ``Retry-After``, and the floor of any wait.
DEFAULT_RATE_LIMIT_WAIT = 10.0
MIN_RATE_LIMIT_WAIT = 1.0
#: How much of the provider's error description a message keeps.
MAX_DETAIL_CHARS = 200


class TokenRefusedError(ProviderAuthError):
    """The token endpoint refused the code or the refresh token: the installation is gone."""


def _declared(crm: type[CrmAdapter]) -> OAuthEndpoints:
    if crm.oauth is None:
        raise ConfigurationError(f"{crm.display_name} has no OAuth install", field="crm.kind")
    return crm.oauth


def endpoint(crm: type[CrmAdapter], url: str, api_base_url: str | None) -> str:
    """``url`` (a declared endpoint) for an account whose ``crm.api_base_url`` is
    ``api_base_url``: unchanged for the adapter's default base, else on that base (its scheme,
    host and path prefix in place of the declared scheme and host)."""
    base = (api_base_url or "").rstrip("/")
    if not base or base == crm.default_api_base_url.rstrip("/"):
        return url
    parts = urlsplit(url)
    return base + parts.path + (f"?{parts.query}" if parts.query else "")


def token_url(crm: type[CrmAdapter], api_base_url: str | None) -> str:
    """Where ``crm`` trades codes and refresh tokens for an account on ``api_base_url``."""
    return endpoint(crm, _declared(crm).token_url, api_base_url)


def authorize_url(
    crm: type[CrmAdapter], client_id: str, redirect_uri: str, state: str,
    *, api_base_url: str | None = None,
) -> str:
    """Where to send the admin's browser to approve the app (step 1 of the flow)."""
    spec = _declared(crm)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "state": state}
    if spec.scopes:
        params["scope"] = " ".join(spec.scopes)
    if spec.optional_scopes:
        params["optional_scope"] = " ".join(spec.optional_scopes)
    return f"{endpoint(crm, spec.authorize_url, api_base_url)}?{urlencode(params)}"


def exchange_code(
    crm: type[CrmAdapter], client_id: str, client_secret: str, code: str, redirect_uri: str,
    *, token_url: str, session: requests.Session | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> OAuthTokens:
    """Redeem the callback's ``code`` for the first tokens (``grant_type=authorization_code``);
    ``redirect_uri`` is the one the authorize URL carried."""
    params = {"grant_type": "authorization_code", "client_id": client_id,
              "client_secret": client_secret, "code": code, "redirect_uri": redirect_uri}
    return _post_token(crm, token_url, params, "code exchange", session, timeout)


def refresh(
    crm: type[CrmAdapter], client_id: str, client_secret: str, refresh_token: str,
    *, token_url: str, session: requests.Session | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> OAuthTokens:
    """New tokens for ``refresh_token`` (``grant_type=refresh_token``); the old refresh token is
    kept when the answer carries none. Call it under the token store's lock and save the result
    before using it: a rotating refresh token is spent once sent."""
    params = {"grant_type": "refresh_token", "client_id": client_id,
              "client_secret": client_secret, "refresh_token": refresh_token}
    tokens = _post_token(crm, token_url, params, "token refresh", session, timeout)
    if tokens.refresh_token is None:
        tokens = OAuthTokens(tokens.access_token, refresh_token, tokens.expires_at, tokens.extra)
    return tokens


def install(
    crm: type[CrmAdapter], credentials: Mapping[str, Any], code: str, redirect_uri: str,
    *, api_base_url: str | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> tuple[OAuthTokens, str | None]:
    """The OAuth callback's work: the first tokens for ``code`` and the CRM's own id of the
    account they are for (:meth:`CrmAdapter.installed_account_id`)."""
    base = (api_base_url or crm.default_api_base_url).rstrip("/")
    with new_session() as session:
        tokens = exchange_code(
            crm, str(credentials["client_id"]), str(credentials["client_secret"]), code,
            redirect_uri, token_url=token_url(crm, api_base_url), session=session,
            timeout=timeout)
        account = crm.installed_account_id(tokens, api_base_url=base, session=session,
                                           timeout=timeout)
    return tokens, account


def read_tokens(crm: type[CrmAdapter], answer: Mapping[str, Any],
                *, now: datetime | None = None) -> OAuthTokens:
    """:class:`OAuthTokens` from a token endpoint's answer, completed by
    :meth:`CrmAdapter.oauth_tokens`.

    ``expires_at`` comes from ``expires_in`` (counted from Doorkeeper's ``created_at`` when the
    answer has one), else from an ``expires_at`` of the form ``2024-04-09 21:04:31 UTC`` (Jobber).
    """
    spec = _declared(crm)
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise PermanentProviderError(f"{crm.display_name} token answer has no access_token",
                                     provider=crm.name)
    refresh_token = answer.get("refresh_token")
    kept = (*spec.kept_fields, *((spec.account_id_field,) if spec.account_id_field else ()))
    extra = {k: answer[k] for k in kept if k in answer}
    return crm.oauth_tokens(OAuthTokens(
        access_token=access,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_at=_expiry(answer, now),
        extra=extra or None,
    ))


def _expiry(answer: Mapping[str, Any], now: datetime | None) -> datetime | None:
    issued = now or clock.now()
    created = answer.get("created_at")
    if isinstance(created, int | float) and not isinstance(created, bool):
        issued = datetime.fromtimestamp(float(created), UTC)
    try:
        return issued + timedelta(seconds=float(answer["expires_in"]))
    except (KeyError, TypeError, ValueError, OverflowError):
        pass
    stamp = answer.get("expires_at")
    if isinstance(stamp, str):
        try:
            return datetime.strptime(stamp.strip(), "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
        except ValueError:
            return None
    return None


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    return redact(text, secrets).strip()[:MAX_DETAIL_CHARS]


def _post_token(
    crm: type[CrmAdapter], url: str, params: Mapping[str, str], what: str,
    session: requests.Session | None, timeout: tuple[float, float],
) -> OAuthTokens:
    spec = _declared(crm)
    secrets = tuple(v for k, v in params.items() if k in ("client_secret", "code",
                                                         "refresh_token"))
    body: dict[str, Any] = ({"json": dict(params)} if spec.request_body == "json"
                            else {"data": dict(params)})
    http = session or new_session()
    try:
        response = http.post(url, headers={"Accept": "application/json"}, timeout=timeout,
                             allow_redirects=False, **body)
    except requests.RequestException as exc:
        _LOG.warning("%s %s: transport failure %s", crm.name, what, type(exc).__name__)
        raise transport_error(crm.name, exc) from None
    finally:
        if session is None:
            http.close()
    try:
        answer: Any = response.json()
    except ValueError:
        answer = None
    if not 200 <= response.status_code < 300:
        error = _token_error(crm, response, answer if isinstance(answer, Mapping) else {}, what,
                             secrets)
        _LOG.info("%s %s: HTTP %s (%s)", crm.name, what, response.status_code,
                  type(error).__name__)
        raise error
    if not isinstance(answer, Mapping):
        raise TransientProviderError(f"{crm.display_name} {what}: answer without JSON",
                                     provider=crm.name, ambiguous=True)
    if answer.get("warning"):
        # Jobber: rotation is off, or an already-rotated refresh token was redeemed.
        _LOG.warning("%s %s: %s", crm.name, what, _redact(str(answer["warning"]), secrets))
    return read_tokens(crm, answer)


def _token_error(
    crm: type[CrmAdapter], response: requests.Response, answer: Mapping[str, Any], what: str,
    secrets: tuple[str, ...],
) -> ProviderError:
    status = response.status_code
    code = str(answer.get("error") or "") or None
    hubspot_code = answer.get("status")  # {"status": "BAD_REFRESH_TOKEN", "message": ...}
    if code is None and isinstance(hubspot_code, str) and hubspot_code.isupper():
        code = hubspot_code
    described = answer.get("error_description") or answer.get("message")
    detail = _redact(str(described), secrets) if isinstance(described, str) else ""
    text = f"{crm.display_name} {what} failed (HTTP {status}{' ' + code if code else ''})"
    text += f": {detail}" if detail else ""
    common: dict[str, Any] = {"provider": crm.name, "code": code, "status": status}
    if status == 429:
        wait = retry_after_seconds(response.headers.get("Retry-After"), DEFAULT_RATE_LIMIT_WAIT)
        return RateLimitedError(text, retry_after=max(wait, MIN_RATE_LIMIT_WAIT), **common)
    if status >= 500:
        return TransientProviderError(text, ambiguous=True, **common)
    if code in CONFIGURATION_ERRORS:
        return ProviderAuthError(text + " (check the app's client id, secret and redirect URI)",
                                 **common)
    if status in (400, 401, 403):
        return TokenRefusedError(
            text + f" (the authorization is no longer valid: reconnect {crm.display_name} "
            f"through /oauth/{crm.name}/install)", **common)
    return PermanentProviderError(text, **common)
