"""The marketplace install flow of each OAuth CRM, behind one small interface.

The connector's ``/oauth/<crm>/install`` and ``/oauth/<crm>/callback`` routes use
:data:`OAUTH_PROVIDERS`; each entry wraps that CRM's own ``oauth`` module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from connector.core.http import new_session
from crm_adapters.base import OAuthTokens
from crm_adapters.housecallpro import oauth as hcp_oauth
from crm_adapters.housecallpro.adapter import HousecallProCrm
from crm_adapters.jobber import oauth as jobber_oauth
from crm_adapters.jobber.adapter import DEFAULT_GRAPHQL_VERSION, JobberCrm


class OAuthProvider(Protocol):
    """One CRM's authorization-code flow."""

    def authorize_url(self, credentials: Mapping[str, Any], redirect_uri: str, state: str) -> str:
        """Where to send the admin to approve the app."""

    def exchange(
        self, credentials: Mapping[str, Any], code: str, redirect_uri: str, api_base_url: str | None
    ) -> tuple[OAuthTokens, str | None]:
        """The first tokens for ``code``, and the CRM's own id for the installing account."""


@dataclass(frozen=True)
class JobberOAuth:
    """Jobber: https://developer.getjobber.com/docs/building_your_app/app_authorization"""

    def authorize_url(self, credentials: Mapping[str, Any], redirect_uri: str, state: str) -> str:
        return jobber_oauth.authorize_url(str(credentials["client_id"]), redirect_uri, state)

    def exchange(
        self, credentials: Mapping[str, Any], code: str, redirect_uri: str, api_base_url: str | None
    ) -> tuple[OAuthTokens, str | None]:
        base = (api_base_url or JobberCrm.default_api_base_url).rstrip("/")
        session = new_session()
        tokens = jobber_oauth.exchange_code(
            session, str(credentials["client_id"]), str(credentials["client_secret"]), code,
            redirect_uri, token_url=f"{base}/api/oauth/token",
        )
        account = jobber_oauth.fetch_account(
            session, tokens.access_token, graphql_url=f"{base}/api/graphql",
            graphql_version=DEFAULT_GRAPHQL_VERSION,
        )
        return tokens, str(account.id)


@dataclass(frozen=True)
class HousecallProOAuth:
    """Housecall Pro partner apps (approved partners only; endpoints configurable)."""

    def authorize_url(self, credentials: Mapping[str, Any], redirect_uri: str, state: str) -> str:
        return hcp_oauth.authorize_url(str(credentials["client_id"]), redirect_uri, state)

    def exchange(
        self, credentials: Mapping[str, Any], code: str, redirect_uri: str, api_base_url: str | None
    ) -> tuple[OAuthTokens, str | None]:
        base = (api_base_url or HousecallProCrm.default_api_base_url).rstrip("/")
        tokens = hcp_oauth.exchange_code(
            str(credentials["client_id"]), str(credentials["client_secret"]), code, redirect_uri,
            token_endpoint=f"{base}/oauth/token",
        )
        return tokens, None


OAUTH_PROVIDERS: dict[str, OAuthProvider] = {
    "jobber": JobberOAuth(),
    "housecallpro": HousecallProOAuth(),
}
