"""A usable OAuth access token for one installation, renewed under the installation's lock.

Every OAuth CRM (HubSpot, Jobber, Housecall Pro) hands its requests a token through one
:class:`TokenKeeper`:

- The stored token is used while it has more than ``skew`` seconds left (an unknown expiry counts
  as fresh: the CRM's refusal says when it is not).
- A renewal happens only inside the token store's per-installation lock (honoured by every
  ``textback worker`` process on every machine), after reading the tokens again: when another
  worker renewed meanwhile, its token is used and no second refresh is sent. A rotating refresh
  token (Jobber, perhaps Housecall Pro) is spent as it is sent, so two refreshes with one token
  would log the installation out; HubSpot's does not rotate, but its 30-minute access tokens
  would otherwise be renewed by every worker at once.
- The new pair is saved before it is used; a refresh token the answer leaves out is kept.
- A refresh the CRM refuses for good (``invalid_grant``: uninstalled, revoked, rotated away)
  marks the installation disconnected, so CRM work waits for a new install instead of retrying.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from connector.kernel import clock
from connector.kernel.errors import ProviderAuthError
from crm_adapters.base import OAuthTokens, TokenStore
from crm_adapters.oauth_flow import TokenRefusedError

_LOG = logging.getLogger(__name__)


def stored_expiry(tokens: OAuthTokens) -> datetime | None:
    """The expiry the store recorded with the tokens."""
    return tokens.expires_at


class TokenKeeper:
    """Hands out a usable access token for one installation, renewing it when needed.

    ``refresher`` redeems a refresh token for new :class:`OAuthTokens` (one request; it raises
    :class:`~crm_adapters.oauth_flow.TokenRefusedError` when the CRM refuses the grant).
    ``provider`` and ``display_name`` name the CRM in errors and logs; ``expiry`` reads when an
    access token stops working (the stored expiry unless the token itself says, as Jobber's JWT
    does); ``skew`` is how many seconds early to renew.
    """

    def __init__(
        self,
        store: TokenStore,
        refresher: Callable[[str], OAuthTokens],
        *,
        provider: str,
        display_name: str,
        skew: float,
        expiry: Callable[[OAuthTokens], datetime | None] = stored_expiry,
    ) -> None:
        self._store = store
        self._refresher = refresher
        self._provider = provider
        self._display_name = display_name
        self._skew = skew
        self._expiry = expiry

    def __repr__(self) -> str:
        return f"<TokenKeeper {self._provider}>"

    def stale(self, tokens: OAuthTokens) -> bool:
        """True when the access token expires within the skew (unknown expiry counts as fresh)."""
        expiry = self._expiry(tokens)
        if expiry is None:
            return False  # nothing to go by: use it, a refusal renews it
        return expiry.timestamp() - clock.timestamp() <= self._skew

    def access_token(self) -> str:
        """A token valid for at least the skew; renewed under the lock when it is not."""
        tokens = self._store.load()
        if not self.stale(tokens):
            return tokens.access_token
        return self._renew(rejected=None)

    def renew_after_401(self, rejected: str) -> str:
        """The CRM refused ``rejected``: renew once (unless another worker already did)."""
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
                reason = f"no refresh token stored; install the {self._display_name} app again"
                self._store.mark_disconnected(reason)
                raise ProviderAuthError(f"{self._display_name}: {reason}",
                                        provider=self._provider)
            try:
                fresh = self._refresher(tokens.refresh_token)
            except TokenRefusedError as exc:
                # Refused for good (uninstalled, revoked, rotated away): stop calling.
                reason = f"{self._display_name} refused the refresh token"
                self._store.mark_disconnected(f"{reason} ({exc.code})" if exc.code else reason)
                _LOG.warning("%s: refresh token refused; installation marked disconnected",
                             self._provider)
                raise exc from None
            extra = {**(tokens.extra or {}), **(fresh.extra or {})}
            renewed = OAuthTokens(
                access_token=fresh.access_token,
                refresh_token=fresh.refresh_token or tokens.refresh_token,
                expires_at=fresh.expires_at,
                extra=extra or None,
            )
            # Saved before use: a rotated refresh token is already dead at the CRM.
            self._store.save(renewed)
            _LOG.info("%s: access token renewed", self._provider)
            return renewed.access_token
