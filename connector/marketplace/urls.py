"""The deployment's URLs a CRM's app is registered with, built from the web app's routes.

A bare Flask app with the blueprints that serve CRMs (OAuth install and callback, CRM webhooks,
the pages) is asked for each URL, so a moved route moves the manifests with it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from werkzeug.routing import MapAdapter

from connector.kernel.errors import ConfigurationError
from connector.web import crm_webhooks, hubspot_actions, oauth, pages
from crm_adapters.base import APP_WIDE, CrmAdapter

#: Where a per-account URL names the account: the admin puts the account's id there.
ACCOUNT_PLACEHOLDER = "ACCOUNT_ID"
#: Hosts a plain-http public URL may have (trying the flow on one machine).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})


def check_public_url(public_url: str) -> str:
    """``public_url`` without a trailing slash; :class:`ConfigurationError` unless it is an
    absolute https URL (http only for this machine) with no query or fragment."""
    parts = urlsplit(public_url.strip())
    local = parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError(
            f"the public URL must be an absolute https URL such as https://textback.example.com, "
            f"not {public_url!r}", field="--public-url")
    if parts.scheme == "http" and not local:
        raise ConfigurationError(
            "CRMs call only https URLs: give the https address of this deployment "
            f"(not {public_url!r})", field="--public-url")
    return public_url.strip().rstrip("/")


class AppUrls:
    """The URLs of one deployment, at ``public_url`` (scheme, host and optional path prefix)."""

    def __init__(self, public_url: str) -> None:
        self.public_url = check_public_url(public_url)
        parts = urlsplit(self.public_url)
        app = Flask(__name__)
        for blueprint in (crm_webhooks.bp, hubspot_actions.bp, oauth.bp, pages.bp):
            app.register_blueprint(blueprint)
        self._urls: MapAdapter = app.url_map.bind(
            parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)

    def build(self, endpoint: str, **values: str) -> str:
        """The absolute URL of ``endpoint`` with ``values`` in its placeholders."""
        return self._urls.build(endpoint, values, force_external=True)

    def oauth_callback(self, crm: type[CrmAdapter]) -> str:
        """The OAuth redirect URL registered with ``crm``'s app."""
        return self.build("oauth.callback", crm=crm.name)

    def webhook(self, crm: type[CrmAdapter]) -> str | None:
        """Where ``crm``'s app posts its webhooks: the one URL when the spec takes it; else
        the URL with :data:`ACCOUNT_PLACEHOLDER` where the account's id goes. None when the CRM
        sends no webhooks we accept."""
        spec = crm.webhook
        if spec is None:
            return None
        if spec.url == APP_WIDE or spec.takes_app_wide_url:
            return self.build("crm_webhooks.crm_webhook", crm=crm.name)
        return self.build("crm_webhooks.crm_webhook", crm=crm.name, account_id=ACCOUNT_PLACEHOLDER)

    def manage_app(self) -> str:
        """The page an admin manages the connection from (behind sign-in)."""
        return self.build("pages.dashboard")
