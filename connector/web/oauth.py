"""CRM installs: ``GET /oauth/<crm>/install``, ``GET /oauth/<crm>/callback`` and an admin's
``POST /accounts/<account_id>/crm/disconnect``.

An install starts one of three ways:

- HubSpot's marketplace app (``TEXTBACK_HUBSPOT_CLIENT_ID``/``_SECRET`` set): anyone may open
  ``/oauth/hubspot/install``. The callback creates the account for the portal (``hub_id``), or
  re-attaches the portal's account on a reinstall, creates what the app needs in the portal and
  signs the installing HubSpot user in as that account's admin ("sign in with HubSpot": opening
  the install again later signs them in again). Then it sends them to the account's setup page.
- A signed-in admin of an account opens ``/oauth/<crm>/install?account=<id>`` (the "Connect"
  button of the account's pages) to connect the account's CRM app.
- A signed link made by ``textback accounts install-link ACCOUNT`` (its signature is what proves
  an operator sent it; it expires after 7 days).

The OAuth ``state`` is signed and expires after 15 minutes, so a callback can only complete an
install this connector started, for the account it started it for. It is also one use only and
bound to the browser that started the install: the install keeps a random value in that
browser's (signed) session cookie and puts it in the state, and the callback refuses a state
whose value is not the one in the session it arrives with, before it spends anything. A state is
spent (``used_nonces``, scope ``oauth-state``) before the code is traded, so a replayed callback,
or two racing ones, never reach the stored installation.
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

from connector.kernel.errors import ProviderAuthError, ProviderError
from connector.kernel.signing import constant_time_equals
from connector.runtime import Runtime
from connector.storage.accounts import new_install_account
from connector.storage.installations import (
    DbTokenStore,
    installation_for_external_id,
    installer_user,
    save_installation,
)
from connector.storage.models import Account, User
from connector.storage.nonces import spend
from connector.storage.users import user_accounts
from connector.web.pages import _start_session, check_csrf
from crm_adapters import oauth_flow
from crm_adapters.base import CrmAdapter
from crm_adapters.hubspot import oauth as hubspot_oauth
from crm_adapters.oauth import OAUTH_PROVIDERS

bp = Blueprint("oauth", __name__)
log = logging.getLogger(__name__)

INSTALL_LINK_MAX_AGE = 7 * 24 * 3600
STATE_MAX_AGE = 15 * 60
STATE_SCOPE = "oauth-state"
#: The session key of the browser's random value that its OAuth states carry.
BROWSER_KEY = "oauth_browser"
#: The CRM whose marketplace app installs for any portal (the deployment's own app).
MARKETPLACE_CRM = "hubspot"

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>textback</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:38rem;margin:3rem auto;padding:0 1rem;
color:#1a1a1a}</style></head><body><h1>{{ title }}</h1><p>{{ message }}</p></body></html>"""


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["textback"]
    return runtime


def _serializer(runtime: Runtime, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(runtime.settings.secret_key, salt=f"textback-{purpose}")


def install_link(runtime: Runtime, account_id: str, crm: str) -> str:
    """The signed URL an admin opens to connect the account's CRM."""
    token = _serializer(runtime, "install").dumps({"account": account_id, "crm": crm})
    return f"{runtime.settings.public_url}/oauth/{crm}/install?token={token}"


def redirect_uri(runtime: Runtime, crm: str) -> str:
    """Our callback URL, as registered with the CRM's app."""
    return f"{runtime.settings.public_url}/oauth/{crm}/callback"


def setup_path(account_id: str) -> str:
    """Where an admin goes after connecting: the account's setup page."""
    return f"/accounts/{account_id}/setup"


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


def _signed_in_admin(runtime: Runtime, account_id: str) -> User | None:
    """The signed-in user when they are an admin of ``account_id`` (None otherwise)."""
    user_id = session.get("user_id")
    if user_id is None:
        return None
    with runtime.db.session() as s:
        user = s.get(User, user_id)
        if user is None or session.get("epoch") != user.session_epoch:
            return None
        if user.role != "admin" or account_id not in user_accounts(s, user):
            return None
        s.expunge(user)
        return user


def _app_credentials(runtime: Runtime, crm: str, account: Account | None) -> dict[str, Any]:
    """The OAuth app's client id and secret for an install of ``crm`` (for ``account``, or a new
    portal's): the account's own app, else the deployment's marketplace app."""
    settings = runtime.settings
    marketplace = {"client_id": settings.hubspot_client_id,
                   "client_secret": settings.hubspot_client_secret}
    if account is None:
        return marketplace
    credentials = runtime.with_app_credentials(crm, runtime.box.open(account.crm_credentials))
    if _marketplace_ready(runtime, crm) and not credentials.get("client_id"):
        return marketplace  # a private app's account moves to the marketplace app
    return credentials


def can_install(runtime: Runtime, account: Account) -> bool:
    """True when the account's CRM connects through an app install this deployment can start
    (its own app's credentials, or the deployment's HubSpot marketplace app)."""
    if account.crm_kind not in OAUTH_PROVIDERS:
        return False
    credentials = _app_credentials(runtime, account.crm_kind, account)
    return bool(credentials.get("client_id") and credentials.get("client_secret"))


def _api_base(runtime: Runtime, account: Account | None) -> str | None:
    if account is None:
        return runtime.settings.hubspot_api_base_url
    base = account.settings["crm"].get("api_base_url")
    return str(base) if base else None


def _marketplace_ready(runtime: Runtime, crm: str) -> bool:
    return crm == MARKETPLACE_CRM and runtime.settings.hubspot_app


@bp.get("/oauth/<crm>/install")
def install(crm: str) -> Response | tuple[str, int]:
    """Send the admin to the CRM to approve the app, with a signed state for the callback."""
    runtime = _runtime()
    adapter = OAUTH_PROVIDERS.get(crm)
    if adapter is None:
        abort(404)
    account_id: str | None
    if request.args.get("token"):
        try:
            data = _serializer(runtime, "install").loads(request.args["token"],
                                                         max_age=INSTALL_LINK_MAX_AGE)
        except SignatureExpired:
            return _page("Install link expired", "Ask for a new link (textback accounts "
                         "install-link).", 403)
        except BadSignature:
            return _page("Install link not valid", "Open the link exactly as it was given.", 403)
        if data.get("crm") != crm:
            return _page("Install link not valid", "This link is for another CRM.", 403)
        account_id = str(data["account"])
    elif request.args.get("account"):
        account_id = request.args["account"]
        if _signed_in_admin(runtime, account_id) is None:
            return _page("Sign in first", "Sign in as an admin of this account, then connect "
                         "its CRM from the account's setup page.", 403)
    elif _marketplace_ready(runtime, crm):
        account_id = None  # a portal's install from the marketplace, or "sign in with HubSpot"
    else:
        return _page("Start from textback", "Connect this CRM from your account's setup page, "
                     "or open the install link you were given.", 403)
    account: Account | None = None
    if account_id is not None:
        with runtime.db.session() as s:
            account = s.get(Account, account_id)
            if account is None or account.crm_kind != crm:
                return _page("Unknown account", "The account no longer uses this CRM.", 404)
            s.expunge(account)
    credentials = _app_credentials(runtime, crm, account)
    if not credentials.get("client_id") or not credentials.get("client_secret"):
        return _page("Nothing to install", "This account connects to the CRM with a token or "
                     "API key, not through an app install.", 404)
    state = _serializer(runtime, "oauth-state").dumps(
        {"account": account_id, "crm": crm, "nonce": secrets.token_urlsafe(16),
         "browser": _browser_value()})
    return redirect(oauth_flow.authorize_url(adapter, str(credentials["client_id"]),
                                             redirect_uri(runtime, crm), state,
                                             api_base_url=_api_base(runtime, account)))


@bp.get("/oauth/<crm>/callback")
def callback(crm: str) -> Response | tuple[str, int]:
    """Trade the code for tokens and store the installation (creating the account for a new
    marketplace portal); only once per state, and only in the browser session that started it.
    """
    runtime = _runtime()
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
        return _page("Not connected", "Finish the connection in the browser where you started "
                     "it, or start again.", 403)
    account_id = data.get("account")
    with runtime.db.session() as s:
        if not spend(s, STATE_SCOPE, data["nonce"], issued + timedelta(seconds=STATE_MAX_AGE)):
            log.warning("oauth state replayed crm=%s account=%s", crm, account_id)
            return _page("Already used", "This approval was already used; nothing changed. "
                         "Start again.", 403)
        account: Account | None = None
        if account_id is not None:
            account = s.get(Account, account_id)
            if account is None or account.crm_kind != crm:
                return _page("Unknown account", "The account no longer uses this CRM.", 404)
            s.expunge(account)
    if account is None and not _marketplace_ready(runtime, crm):
        return _page("Not connected", "This deployment has no marketplace app for this CRM.",
                     404)
    credentials = _app_credentials(runtime, crm, account)
    api_base_url = _api_base(runtime, account)
    try:
        tokens, external_id = oauth_flow.install(adapter, credentials, request.args["code"],
                                                 redirect_uri(runtime, crm),
                                                 api_base_url=api_base_url)
    except ProviderError as exc:
        log.warning("oauth code exchange failed crm=%s account=%s: %s", crm, account_id,
                    type(exc).__name__)
        return _page("Not connected", "The CRM refused the connection; start again.", 502)
    if crm == MARKETPLACE_CRM:
        return _hubspot_installed(runtime, adapter, account, credentials, tokens, external_id)
    assert account is not None  # noqa: S101 - only HubSpot installs without an account
    admin = _signed_in_admin(runtime, account.id)
    _store(runtime, account.id, crm, tokens, external_id, admin.email if admin else None)
    if admin is not None:
        return redirect(setup_path(account.id))
    return _page("Connected", f"{account.name} is now connected to {adapter.display_name}. "
                 "You can close this page.")


def _store(runtime: Runtime, account_id: str, crm: str, tokens: Any, external_id: str | None,
           connected_by: str | None) -> None:
    save_installation(runtime.db, runtime.box, account_id, crm, tokens, external_id,
                      connected_by=connected_by)
    with runtime.db.session() as s:
        stored = s.get(Account, account_id)
        if stored is not None:
            stored.crm_needs_reauth = False
    log.info("crm installed crm=%s account=%s", crm, account_id)


def _hubspot_installed(runtime: Runtime, adapter: type[CrmAdapter], account: Account | None,
                       credentials: dict[str, Any], tokens: Any, hub_id: str | None
                       ) -> Response | tuple[str, int]:
    """The portal's account (created, or found again on a reinstall), its installation, the
    properties the app needs, and the installer signed in; then the account's setup page."""
    if not hub_id:
        return _page("Not connected", "HubSpot did not say which portal this is; start again.",
                     502)
    base = _api_base(runtime, account) or adapter.default_api_base_url
    portal = hubspot_oauth.portal(tokens.access_token, hub_id,
                                  client_id=str(credentials["client_id"]),
                                  client_secret=str(credentials["client_secret"]),
                                  api_base_url=base)
    owner = installation_for_external_id(runtime.db, MARKETPLACE_CRM, hub_id)
    if account is not None and owner is not None and owner != account.id:
        return _page("Already connected elsewhere", f"HubSpot portal {hub_id} is connected to "
                     "another textback account; nothing changed.", 409)
    created = False
    with runtime.db.session() as s:
        account_id = account.id if account is not None else owner
        if account_id is None or s.get(Account, account_id) is None:
            record = f"https://app.hubspot.com/contacts/{hub_id}/record/0-1/{{contact_id}}"
            made = new_install_account(
                s, runtime.box, crm=MARKETPLACE_CRM, external_id=hub_id,
                name=portal.domain or f"HubSpot portal {hub_id}",
                timezone=portal.time_zone or "UTC",
                credentials={"client_id": credentials["client_id"]},
                api_base_url=runtime.settings.hubspot_api_base_url,
                # HubSpot's default deal pipeline and its first stage have these ids in
                # every portal; the setup pages offer the portal's own.
                mapping={"record_url": record, "pipeline": "default",
                         "stage": "appointmentscheduled"})
            account_id, created = made.id, True
        else:
            stored = s.get(Account, account_id)
            assert stored is not None  # noqa: S101 - checked above
            if runtime.box.open(stored.crm_credentials).get("access_token"):
                # A private app's account installed the marketplace app: its token gives way.
                stored.crm_credentials = runtime.box.seal({"client_id": credentials["client_id"]})
                stored.crm_auth = "oauth"
    _store(runtime, account_id, MARKETPLACE_CRM, tokens, hub_id, portal.installer)
    _prepare_portal(runtime, account_id)
    with runtime.db.session() as s:
        user = installer_user(s, portal.installer, account_id, created=created)
        if user is not None:
            s.flush()
            _start_session(user)
    log.info("hubspot portal installed account=%s created=%s signed_in=%s", account_id, created,
             user is not None)
    return redirect(setup_path(account_id))


def _prepare_portal(runtime: Runtime, account_id: str) -> None:
    """Create the unique phone and opt-out properties now; should HubSpot fail, the adapter
    creates them before its first contact write instead."""
    with runtime.db.session() as s:
        account = s.get(Account, account_id)
        assert account is not None  # noqa: S101 - just stored
        s.expunge(account)
    crm = runtime.crm_for(account)
    prepare = getattr(crm, "prepare_portal", None)
    if prepare is None:
        return
    try:
        prepare()
    except ProviderError as exc:
        log.warning("hubspot properties not created at install account=%s: %s", account_id,
                    type(exc).__name__)


@bp.post("/accounts/<account_id>/crm/disconnect")
def disconnect(account_id: str) -> Response | tuple[str, int]:
    """An admin disconnects the account's CRM app from our side: the CRM is told (HubSpot:
    ``DELETE /appinstalls/v3/external-install``; Jobber: ``appDisconnect``) and the
    installation is marked disconnected, so CRM work waits (texts go on)."""
    runtime = _runtime()
    admin = _signed_in_admin(runtime, account_id)
    if admin is None:
        abort(403)
    check_csrf()
    with runtime.db.session() as s:
        account = s.get(Account, account_id)
        if account is None or account.crm_kind not in OAUTH_PROVIDERS:
            abort(404)
        s.expunge(account)
    store = DbTokenStore(runtime.db, runtime.box, account.id, account.crm_kind)
    if not store.is_active():
        return redirect(setup_path(account.id))
    try:
        runtime.crm_for(account).uninstall()
    except ProviderAuthError:
        pass  # the CRM already considers it gone
    except ProviderError as exc:
        log.warning("crm disconnect failed crm=%s account=%s: %s", account.crm_kind, account.id,
                    type(exc).__name__)
        return _page("Not disconnected", f"{account.crm_kind} could not be reached; nothing "
                     "changed. Try again in a minute.", 502)
    store.mark_disconnected(f"disconnected from textback by {admin.email}")
    log.info("crm disconnected from textback crm=%s account=%s", account.crm_kind, account.id)
    return redirect(setup_path(account.id))
