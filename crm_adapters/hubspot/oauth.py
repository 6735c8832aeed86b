"""What is HubSpot's own in its marketplace install: endpoints, scopes, who installed, uninstall.

The flow is the shared one (:mod:`crm_adapters.oauth_flow`, run from :data:`ENDPOINTS`); the
token endpoint is the date-versioned one, as the v1 endpoint is deprecated for 2027-02-16:
https://developers.hubspot.com/docs/api-reference/latest/authentication/manage-oauth-tokens

- Authorize: ``GET https://app.hubspot.com/oauth/authorize?client_id=&redirect_uri=&scope=
  &optional_scope=&state=`` (scopes space-separated).
- Token: ``POST https://api.hubapi.com/oauth/2026-03/token``, every parameter form-encoded in the
  body (never the query string). The answer holds ``access_token`` (30 minutes, ``expires_in``),
  ``refresh_token`` (lives until the app is uninstalled; it does not rotate), ``hub_id`` (the
  portal, which keys the installation) and ``user_id``. A dead refresh token is answered 400.
- Introspect: ``POST /oauth/2026-03/token/introspect`` (``client_id``, ``client_secret``,
  ``token``) says which user installed (``user``: their email) and the portal's ``hub_domain``.
- Account details: ``GET /account-info/2026-03/details`` (scope ``oauth``): the portal's
  ``timeZone``.
- Uninstall from our side: ``DELETE /appinstalls/v3/external-install`` with the portal's access
  token answers 204, and HubSpot emails the portal's admins.
  https://developers.hubspot.com/docs/api-reference/latest/app-management/app-uninstalls/guide
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from connector.kernel.errors import ProviderError, TransientProviderError
from connector.kernel.http import DEFAULT_TIMEOUT, new_session
from crm_adapters.base import OAuthEndpoints
from crm_adapters.hubspot import app_events, workflow_actions
from crm_adapters.hubspot.client import PROVIDER, api_error, transport_error

_LOG = logging.getLogger(__name__)

#: Scopes only the marketplace app has: ``oauth`` lets it read the portal's details and
#: uninstall itself; app events (``timeline``) and the workflow action (``automation``) belong
#: to an app install.
APP_ONLY_SCOPES = ("oauth", *app_events.SCOPES, *workflow_actions.SCOPES)

#: The marketplace app's one scope declaration: :data:`APP_ONLY_SCOPES`, and the CRM scopes a
#: missed call writes with (engagements - calls, communications, tasks - go under the contacts
#: scopes) and the unique phone property made at install (``crm.schemas.contacts.write``).
ENDPOINTS = OAuthEndpoints(
    authorize_url="https://app.hubspot.com/oauth/authorize",
    token_url="https://api.hubapi.com/oauth/2026-03/token",  # noqa: S106 - a URL, not a secret
    scopes=(
        *APP_ONLY_SCOPES,
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.deals.read",
        "crm.objects.deals.write",
        "crm.objects.owners.read",
        "crm.schemas.contacts.write",
    ),
    request_body="form",
    account_id_field="hub_id",
    kept_fields=("user_id", "scopes", "token_type"),
)
INTROSPECT_PATH = "/oauth/2026-03/token/introspect"
DETAILS_PATH = "/account-info/2026-03/details"
UNINSTALL_PATH = "/appinstalls/v3/external-install"
#: Renew the 30-minute access token this many seconds before it expires.
REFRESH_SKEW_SECONDS = 300.0


@dataclass(frozen=True)
class Portal:
    """The HubSpot portal an install is for, and who installed it.

    ``installer`` is the installing user's email (HubSpot's ``user``) when HubSpot says it;
    ``time_zone`` is the portal's own (an IANA name, or None when unknown).
    """

    hub_id: str
    domain: str | None
    installer: str | None
    time_zone: str | None


def _call(
    session: requests.Session, method: str, url: str, operation: str, *,
    secrets: tuple[str, ...], timeout: tuple[float, float], **kwargs: Any,
) -> requests.Response:
    try:
        response = session.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        _LOG.warning("hubspot %s: transport failure %s", operation, type(exc).__name__)
        raise transport_error(exc, operation=operation, ambiguous=False) from None
    if not 200 <= response.status_code < 300:
        error = api_error(response.status_code, response.content, response.headers,
                          operation=operation, ambiguous=False, secrets=secrets)
        _LOG.info("hubspot %s: HTTP %s (%s)", operation, response.status_code,
                  type(error).__name__)
        raise error
    return response


def _json(response: requests.Response, operation: str) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        raise TransientProviderError(f"HubSpot {operation}: answer without a JSON object",
                                     provider=PROVIDER)
    return body


def portal(
    access_token: str, hub_id: str, *, client_id: str, client_secret: str, api_base_url: str,
    session: requests.Session | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> Portal:
    """Who installed the app in portal ``hub_id`` and the portal's domain and time zone.

    Both reads are for people (the admin's sign-in, the account's name and zone): when either
    fails the install goes on without what it would have said.
    """
    base = api_base_url.rstrip("/")
    secrets = (access_token, client_secret)
    http = session or new_session()
    info: Mapping[str, Any] = {}
    details: Mapping[str, Any] = {}
    try:
        try:
            info = _json(_call(http, "POST", base + INTROSPECT_PATH, "token introspection",
                               secrets=secrets, timeout=timeout,
                               data={"client_id": client_id, "client_secret": client_secret,
                                     "token": access_token,
                                     "token_type_hint": "access_token"}),
                         "token introspection")
        except ProviderError as exc:
            _LOG.warning("hubspot: token introspection failed (%s); installer unknown",
                         type(exc).__name__)
        try:
            details = _json(_call(http, "GET", base + DETAILS_PATH, "account details",
                                  secrets=secrets, timeout=timeout,
                                  headers={"Authorization": f"Bearer {access_token}"}),
                            "account details")
        except ProviderError as exc:
            _LOG.warning("hubspot: account details failed (%s); time zone unknown",
                         type(exc).__name__)
    finally:
        if session is None:
            http.close()
    user, domain, zone = info.get("user"), info.get("hub_domain"), details.get("timeZone")
    return Portal(hub_id=hub_id,
                  domain=domain if isinstance(domain, str) and domain else None,
                  installer=user.strip().lower() if isinstance(user, str) and "@" in user
                  else None,
                  time_zone=zone if isinstance(zone, str) and zone else None)


def uninstall(
    access_token: str, *, api_base_url: str, session: requests.Session | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> None:
    """Uninstall the app from the token's portal (``DELETE /appinstalls/v3/external-install``)."""
    http = session or new_session()
    try:
        _call(http, "DELETE", api_base_url.rstrip("/") + UNINSTALL_PATH, "app uninstall",
              secrets=(access_token,), timeout=timeout,
              headers={"Authorization": f"Bearer {access_token}"})
    finally:
        if session is None:
            http.close()
