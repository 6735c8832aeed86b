"""Marketplace installs: ``GET /oauth/<crm>/install`` and ``GET /oauth/<crm>/callback``.

An install starts from a signed link made by ``textback accounts install-link ACCOUNT`` (setup
pages with logins are not built yet, so the signature is what proves the admin sent it). The
OAuth ``state`` is signed too and expires after 15 minutes, so a callback can only complete an
install this connector started, for the account it started it for.
"""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, redirect, render_template_string, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from connector.errors import ProviderError
from connector.installations import save_installation
from connector.runtime import Runtime
from connector.storage.models import Account
from crm_adapters.oauth import OAUTH_PROVIDERS

bp = Blueprint("oauth", __name__)
log = logging.getLogger(__name__)

INSTALL_LINK_MAX_AGE = 7 * 24 * 3600
STATE_MAX_AGE = 15 * 60

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>textback</title>
<style>body{font:16px system-ui,sans-serif;max-width:38rem;margin:3rem auto;padding:0 1rem}</style>
</head><body><h1>{{ title }}</h1><p>{{ message }}</p></body></html>"""


def _serializer(runtime: Runtime, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(runtime.settings.secret_key, salt=f"textback-{purpose}")


def install_link(runtime: Runtime, account_id: str, crm: str) -> str:
    """The signed URL an admin opens to connect the account's CRM."""
    token = _serializer(runtime, "install").dumps({"account": account_id, "crm": crm})
    return f"{runtime.settings.public_url}/oauth/{crm}/install?token={token}"


def redirect_uri(runtime: Runtime, crm: str) -> str:
    """Our callback URL, as registered with the CRM's app."""
    return f"{runtime.settings.public_url}/oauth/{crm}/callback"


def _page(title: str, message: str, status: int = 200) -> tuple[str, int]:
    return render_template_string(PAGE, title=title, message=message), status


@bp.get("/oauth/<crm>/install")
def install(crm: str) -> Response | tuple[str, int]:
    """Check the signed install link, then send the admin to the CRM to approve the app."""
    runtime: Runtime = current_app.extensions["textback"]
    provider = OAUTH_PROVIDERS.get(crm)
    if provider is None:
        abort(404)
    try:
        data = _serializer(runtime, "install").loads(request.args.get("token", ""),
                                                     max_age=INSTALL_LINK_MAX_AGE)
    except SignatureExpired:
        return _page("Install link expired", "Ask for a new link (textback accounts "
                     "install-link).", 403)
    except BadSignature:
        return _page("Install link not valid", "Open the link exactly as it was given.", 403)
    if data.get("crm") != crm:
        return _page("Install link not valid", "This link is for another CRM.", 403)
    with runtime.db.session() as s:
        account = s.get(Account, data["account"])
        if account is None or account.crm_kind != crm:
            return _page("Unknown account", "The account no longer uses this CRM.", 404)
        credentials = runtime.box.open(account.crm_credentials)
    state = _serializer(runtime, "oauth-state").dumps(
        {"account": account.id, "crm": crm, "nonce": secrets.token_urlsafe(8)})
    return redirect(provider.authorize_url(credentials, redirect_uri(runtime, crm), state))


@bp.get("/oauth/<crm>/callback")
def callback(crm: str) -> tuple[str, int]:
    """Trade the code for tokens and store the installation for the account in ``state``."""
    runtime: Runtime = current_app.extensions["textback"]
    provider = OAUTH_PROVIDERS.get(crm)
    if provider is None:
        abort(404)
    if request.args.get("error") or not request.args.get("code"):
        return _page("Not connected", "The connection was not approved, so nothing changed.", 400)
    if not request.args.get("state"):
        # Jobber's marketplace "Connect" button starts the flow without our state: we cannot tell
        # which account it is for, so nothing is stored.
        return _page("Start from textback", "Open your install link from textback to connect "
                     "this CRM to your account.", 400)
    try:
        data = _serializer(runtime, "oauth-state").loads(request.args["state"],
                                                         max_age=STATE_MAX_AGE)
    except (BadSignature, SignatureExpired):
        return _page("Connection expired", "Start again from your install link.", 403)
    if data.get("crm") != crm:
        return _page("Not connected", "This approval was for another CRM.", 403)
    with runtime.db.session() as s:
        account = s.get(Account, data["account"])
        if account is None or account.crm_kind != crm:
            return _page("Unknown account", "The account no longer uses this CRM.", 404)
        credentials = runtime.box.open(account.crm_credentials)
        api_base_url = account.settings["crm"].get("api_base_url")
        name = account.name
    try:
        tokens, external_id = provider.exchange(credentials, request.args["code"],
                                                redirect_uri(runtime, crm), api_base_url)
    except ProviderError as exc:
        log.warning("oauth code exchange failed crm=%s account=%s: %s", crm, data["account"],
                    type(exc).__name__)
        return _page("Not connected", "The CRM refused the connection; try the link again.", 502)
    save_installation(runtime.db, runtime.box, data["account"], crm, tokens, external_id)
    with runtime.db.session() as s:
        stored = s.get(Account, data["account"])
        if stored is not None:
            stored.crm_needs_reauth = False
    log.info("crm installed crm=%s account=%s", crm, data["account"])
    return _page("Connected", f"{name} is now connected to {crm}. You can close this page.")
