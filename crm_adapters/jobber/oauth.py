"""What is Jobber's own in its OAuth install: the endpoints, the JWT access token, the account.

The flow is the shared one (:mod:`crm_adapters.oauth_flow`, run from :attr:`JobberCrm.oauth`);
Jobber's App Authorization guide says:
https://developer.getjobber.com/docs/building_your_app/app_authorization

- Authorize: ``GET https://api.getjobber.com/api/oauth/authorize?response_type=code&client_id=
  &redirect_uri=&state=``. Scopes are not URL parameters: they are set on the app in the
  Developer Center. A flow started from the App Marketplace's Connect button carries no state.
- Token: ``POST https://api.getjobber.com/api/oauth/token``, form-encoded, ``client_id`` and
  ``client_secret`` in the body. The answer holds ``access_token`` (a JWT whose ``exp`` is its
  expiry) and ``refresh_token``; newer answers add ``expires_at`` and, when something is off
  with rotation, a ``warning``.
- A refused refresh token ("The provided refresh token is not valid") means the installation is
  gone: disconnected, rotated away by a concurrent refresh, or the secret was rolled.
- The installation is keyed on the account's EncodedId (``query Account`` right after the code
  exchange, which works whatever the scopes); it is what webhooks carry as ``accountId``.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from connector.kernel.errors import PermanentProviderError
from connector.kernel.http import DEFAULT_TIMEOUT
from crm_adapters.base import OAuthEndpoints, OAuthTokens
from crm_adapters.jobber.client import post_graphql
from crm_adapters.jobber.documents import ACCOUNT
from crm_adapters.jobber.errors import PROVIDER
from crm_adapters.jobber.tokens import jwt_claims, jwt_expiry

ENDPOINTS = OAuthEndpoints(
    authorize_url="https://api.getjobber.com/api/oauth/authorize",
    token_url="https://api.getjobber.com/api/oauth/token",  # noqa: S106 - a URL, not a secret
    request_body="form",
)

#: JWT claims worth keeping with the tokens (Jobber's numeric ids and the granted scopes), kept
#: in ``OAuthTokens.extra`` under a ``jwt_`` prefix so they never overwrite what the connector
#: stores there (such as the account's EncodedId).
_KEPT_CLAIMS = ("account_id", "user_id", "app_id", "scope")


@dataclass(frozen=True)
class JobberAccount:
    """The connected Jobber account: ``id`` is the EncodedId webhooks carry as ``accountId``."""

    id: str
    name: str


def with_claims(tokens: OAuthTokens) -> OAuthTokens:
    """``tokens`` with the expiry and the kept claims of the JWT access token."""
    claims = jwt_claims(tokens.access_token)
    extra = {**(tokens.extra or {}),
             **{f"jwt_{k}": claims[k] for k in _KEPT_CLAIMS if k in claims}}
    return OAuthTokens(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=jwt_expiry(tokens.access_token) or tokens.expires_at,
        extra=extra or None,
    )


def fetch_account(
    session: requests.Session,
    access_token: str,
    *,
    graphql_url: str,
    graphql_version: str | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> JobberAccount:
    """The account a fresh token belongs to (``query Account``), to key the installation on."""
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
