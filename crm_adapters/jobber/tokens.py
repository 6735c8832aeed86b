"""Access-token renewal with Jobber's rotating refresh tokens.

With Refresh Token Rotation on (required for the App Marketplace) every refresh returns a new
refresh token and invalidates the one sent; for apps created after 2024-01-02 the old one stops
working at once. Two workers refreshing with the same token therefore log the installation out:
the second is refused. So a refresh happens only inside the token store's per-installation lock
(honoured across processes and machines), after re-reading the tokens, and only when they are
still stale; the new pair is saved before it is used.
https://developer.getjobber.com/docs/building_your_app/refresh_token_rotation

The access token is a JWT whose ``exp`` claim is its expiry (about 60 minutes); we read it without
verifying the signature (only Jobber can) and renew :data:`REFRESH_SKEW_SECONDS` early.
https://developer.getjobber.com/docs/building_your_app/app_authorization#step-4-application-requests-access-token
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import jwt

from connector.kernel.errors import ProviderAuthError
from crm_adapters.base import OAuthTokens, TokenStore
from crm_adapters.jobber.errors import PROVIDER
from crm_adapters.oauth_flow import TokenRefusedError

#: Renew when the access token has less than this many seconds left.
REFRESH_SKEW_SECONDS = 60.0

_LOG = logging.getLogger(__name__)


def jwt_claims(token: str) -> Mapping[str, Any]:
    """The payload of a JWT, unverified; an empty mapping when ``token`` is not a JWT.

    Only Jobber holds the key its tokens are signed with, and the token came straight from its
    token endpoint, so the signature is not checked, and neither are the claims (an expired
    token still says when it expired).
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def jwt_expiry(token: str) -> datetime | None:
    """When a JWT access token expires (its ``exp`` claim), or None when it carries none."""
    exp = jwt_claims(token).get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return datetime.fromtimestamp(float(exp), tz=UTC)


def expires_at(tokens: OAuthTokens) -> datetime | None:
    """The access token's expiry: the JWT's ``exp``, else what the store recorded."""
    return jwt_expiry(tokens.access_token) or tokens.expires_at


class TokenManager:
    """Hands out a usable access token for one installation, renewing it when needed.

    ``refresher`` redeems a refresh token for a new :class:`OAuthTokens` (one HTTP request; it
    raises :class:`~crm_adapters.oauth_flow.TokenRefusedError` when Jobber refuses the grant).
    ``clock`` returns Unix seconds.
    """

    def __init__(
        self,
        store: TokenStore,
        refresher: Callable[[str], OAuthTokens],
        *,
        skew: float = REFRESH_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._refresher = refresher
        self._skew = skew
        self._clock = clock

    def __repr__(self) -> str:
        return "<TokenManager>"

    def stale(self, tokens: OAuthTokens) -> bool:
        """True when the access token expires within the skew (unknown expiry counts as fresh)."""
        expiry = expires_at(tokens)
        if expiry is None:
            return False  # nothing to go by: use it, a 401 renews it
        return expiry.timestamp() - self._clock() <= self._skew

    def access_token(self) -> str:
        """A token that is valid for at least the skew; renews under the lock when it is not."""
        tokens = self._store.load()
        if not self.stale(tokens):
            return tokens.access_token
        return self._renew(rejected=None)

    def renew_after_401(self, rejected: str) -> str:
        """Jobber refused ``rejected``: renew once (unless another worker already did)."""
        return self._renew(rejected=rejected)

    def mark_disconnected(self, reason: str) -> None:
        """Tell the store the installation is gone."""
        self._store.mark_disconnected(reason)

    def current_secrets(self) -> tuple[str, ...]:
        """The stored token values, for scrubbing error messages (empty when unreadable)."""
        try:
            tokens = self._store.load()
        except Exception:  # noqa: BLE001 - only used to scrub messages
            return ()
        return tuple(t for t in (tokens.access_token, tokens.refresh_token) if t)

    def _renew(self, *, rejected: str | None) -> str:
        with self._store.locked():
            # Another worker may have renewed while we waited for the lock: read again.
            tokens = self._store.load()
            if rejected is None and not self.stale(tokens):
                return tokens.access_token
            if rejected is not None and tokens.access_token != rejected:
                return tokens.access_token
            if not tokens.refresh_token:
                reason = "no refresh token stored; reinstall the Jobber app"
                self._store.mark_disconnected(reason)
                raise ProviderAuthError(f"Jobber: {reason}", provider=PROVIDER)
            try:
                fresh = self._refresher(tokens.refresh_token)
            except TokenRefusedError as exc:
                # Refused for good (disconnected, rotated away, secret rolled): stop calling.
                self._store.mark_disconnected("Jobber refused the refresh token")
                _LOG.warning("jobber: refresh token refused; installation marked disconnected")
                raise exc from None
            extra = {**(tokens.extra or {}), **(fresh.extra or {})}
            renewed = OAuthTokens(
                access_token=fresh.access_token,
                # With rotation off Jobber returns the same token; keep ours if none came back.
                refresh_token=fresh.refresh_token or tokens.refresh_token,
                expires_at=fresh.expires_at or jwt_expiry(fresh.access_token),
                extra=extra or None,
            )
            # Saved before use: the old refresh token is already dead at Jobber.
            self._store.save(renewed)
            _LOG.info("jobber: access token renewed")
            return renewed.access_token
