"""Marketplace installs: ``GET /oauth/<crm>/install`` and ``GET /oauth/<crm>/callback``.

An install starts from a signed link made by ``textback accounts install-link ACCOUNT`` (setup
pages with logins are not built yet, so the signature is what proves the admin sent it). The
OAuth ``state`` is signed too and expires after 15 minutes, so a callback can only complete an
install this connector started, for the account it started it for.

The state is also one use only and bound to the browser that opened the install link: the install
keeps a random value in that browser's (signed) session cookie and puts it in the state, and the
callback refuses a state whose value is not the one in the session it arrives with, before it
spends anything. A state is spent (``used_nonces``, scope ``oauth-state``) before the code is
traded, so a replayed callback, or two racing ones, never reach the stored installation.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template_string,
    request,
    session,
)
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from connector.kernel.errors import ProviderError
from connector.kernel.signing import constant_time_equals
from connector.runtime import Runtime
from connector.storage.installations import save_installation
from connector.storage.models import Account
from connector.storage.nonces import spend
from crm_adapters import oauth_flow
from crm_adapters.oauth import OAUTH_PROVIDERS

bp = Blueprint("oauth", __name__)
log = logging.getLogger(__name__)

INSTALL_LINK_MAX_AGE = 7 * 24 * 3600
STATE_MAX_AGE = 15 * 60
STATE_SCOPE = "oauth-state"
#: The session key of the browser's random value that its OAuth states carry.
BROWSER_KEY = "oauth_browser"

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


def _browser_value() -> str:
    """This browser's random value for OAuth states, kept in its session (made on first use)."""
    value = session.get(BROWSER_KEY)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(24)
        session[BROWSER_KEY] = value
    return value


def _same_browser(state: dict[str, Any]) -> bool:
    """True when the callback arrives in the browser session that started the install."""
    expected, given = session.get(BROWSER_KEY), state.get("browser")
    if not isinstance(expected, str) or not expected or not isinstance(given, str):
        return False
    return constant_time_equals(expected, given)


def _read_state(runtime: Runtime, state: str) -> tuple[dict[str, Any], datetime] | None:
    """The signed state and when it was made, or None when it is forged, expired or malformed."""
    try:
        data, issued = _serializer(runtime, "oauth-state").loads(
            state, max_age=STATE_MAX_AGE, return_timestamp=True)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("nonce"), str):
        return None
    return data, issued


@bp.get("/oauth/<crm>/install")
def install(crm: str) -> Response | tuple[str, int]:
    """Check the signed install link, then send the admin to the CRM to approve the app."""
    runtime: Runtime = current_app.extensions["textback"]
    adapter = OAUTH_PROVIDERS.get(crm)
    if adapter is None:
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
        api_base_url = account.settings["crm"].get("api_base_url")
    if not credentials.get("client_id") or not credentials.get("client_secret"):
        return _page("Nothing to install", "This account connects to the CRM with an API key, "
                     "not through an app install.", 404)
    state = _serializer(runtime, "oauth-state").dumps(
        {"account": account.id, "crm": crm, "nonce": secrets.token_urlsafe(16),
         "browser": _browser_value()})
    return redirect(oauth_flow.authorize_url(adapter, str(credentials["client_id"]),
                                             redirect_uri(runtime, crm), state,
                                             api_base_url=api_base_url))


@bp.get("/oauth/<crm>/callback")
def callback(crm: str) -> tuple[str, int]:
    """Trade the code for tokens and store the installation for the account in ``state``.

    Only once per state, and only in the browser session that started the install.
    """
    runtime: Runtime = current_app.extensions["textback"]
    adapter = OAUTH_PROVIDERS.get(crm)
    if adapter is None:
        abort(404)
    if request.args.get("error") or not request.args.get("code"):
        return _page("Not connected", "The connection was not approved, so nothing changed.", 400)
    if not request.args.get("state"):
        # Jobber's marketplace "Connect" button starts the flow without our state: we cannot tell
        # which account it is for, so nothing is stored.
        return _page("Start from textback", "Open your install link from textback to connect "
                     "this CRM to your account.", 400)
    read = _read_state(runtime, request.args["state"])
    if read is None:
        return _page("Connection expired", "Start again from your install link.", 403)
    data, issued = read
    if data.get("crm") != crm:
        return _page("Not connected", "This approval was for another CRM.", 403)
    if not _same_browser(data):
        return _page("Not connected", "Finish the connection in the browser where you opened "
                     "the install link, or start again from your install link.", 403)
    with runtime.db.session() as s:
        if not spend(s, STATE_SCOPE, data["nonce"], issued + timedelta(seconds=STATE_MAX_AGE)):
            log.warning("oauth state replayed crm=%s account=%s", crm, data.get("account"))
            return _page("Already used", "This approval was already used; nothing changed. "
                         "Start again from your install link.", 403)
        account = s.get(Account, data["account"])
        if account is None or account.crm_kind != crm:
            return _page("Unknown account", "The account no longer uses this CRM.", 404)
        credentials = runtime.box.open(account.crm_credentials)
        api_base_url = account.settings["crm"].get("api_base_url")
        name = account.name
    try:
        tokens, external_id = oauth_flow.install(adapter, credentials, request.args["code"],
                                                 redirect_uri(runtime, crm),
                                                 api_base_url=api_base_url)
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
