"""HubSpot's marketplace install, end to end against the local HubSpot stub: the authorize
redirect, the code exchange at the 2026-03 token endpoint, the portal's account, the token
refresh at expiry with two workers, reinstall, uninstall (in HubSpot and from textback), a forged
or expired state, and two portals side by side."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import responses
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from connector.kernel import clock
from connector.kernel.errors import ProviderAuthError, TransientProviderError
from connector.reporting.explain import explain
from connector.runtime import Runtime
from connector.storage.accounts import import_account
from connector.storage.db import upgrade
from connector.storage.installations import connection_state, open_tokens
from connector.storage.models import (
    Account,
    AccountMember,
    Call,
    Installation,
    UsedNonce,
    User,
    WebhookReceipt,
)
from connector.storage.users import add_user
from connector.web import create_app
from crm_adapters.hubspot.contacts import UNIQUE_PHONE_PROPERTY
from crm_adapters.hubspot.oauth import ENDPOINTS
from crm_adapters.hubspot.optout import OPT_OUT_PROPERTY
from crm_adapters.hubspot.webhooks import signature_v3
from tests.conftest import SUITE_INSTANT, make_settings
from tests.connector.helpers import missed, post
from tests.stubs.hubspot_stub import HubSpotStub, deploy_app_events

CLIENT_ID = "3f1c9a52-0d4e-4c5b-9e63-6b1f2a7c8d90"
CLIENT_SECRET = "9b2e7c41-5a3d-4f8e-b6c0-d1e2f3a4b5c6"
ACME, FIXIT = 62515, 73001
ACME_ACCOUNT, FIXIT_ACCOUNT = f"hubspot-{ACME}", f"hubspot-{FIXIT}"
OWNER = "owner@acme.example"


@pytest.fixture
def hubspot() -> Iterator[HubSpotStub]:
    with HubSpotStub() as stub:
        stub.enable_oauth(CLIENT_ID, CLIENT_SECRET)
        stub.set_portal(ACME, domain="acme.example", time_zone="America/Chicago")
        stub.set_portal(FIXIT, domain="fixit.example", time_zone="America/Denver")
        yield stub


@pytest.fixture
def settings(tmp_path, hubspot):  # type: ignore[no-untyped-def]
    """Settings with the marketplace app, HubSpot being the stub."""
    return make_settings(tmp_path, hubspot_client_id=CLIENT_ID,
                         hubspot_client_secret=CLIENT_SECRET, hubspot_api_base_url=hubspot.url)


def _start(client: Any, hubspot: HubSpotStub) -> str:
    """Open the install: the authorize URL the browser is sent to."""
    answer = client.get("/oauth/hubspot/install")
    assert answer.status_code == 302
    return str(answer.headers["Location"])


def _install(client: Any, hubspot: HubSpotStub, hub_id: int = ACME, user: str = OWNER) -> Any:
    """The whole install in one browser: the callback's answer."""
    callback = urlsplit(hubspot.approve(_start(client, hubspot), hub_id=hub_id, user=user))
    return client.get(f"{callback.path}?{callback.query}")


def _installation(runtime: Runtime, account_id: str = ACME_ACCOUNT) -> Installation | None:
    with runtime.db.session() as s:
        row = s.get(Installation, (account_id, "hubspot"))
        if row is not None:
            s.expunge(row)
        return row


def _signed_in(client: Any) -> bool:
    return client.get("/conversations").status_code == 200


def _give_number(runtime: Runtime, account_id: str, number: str) -> str:
    """What the setup pages do for the carrier: a business number on the account's sandbox
    carrier; the carrier's webhook secret."""
    with runtime.db.session() as s:
        account = s.get(Account, account_id)
        assert account is not None
        account.settings = {**account.settings,
                            "carrier": {**account.settings["carrier"], "numbers": [number]}}
        return str(runtime.box.open(account.carrier_credentials)["webhook_secret"])


# -- the install ---------------------------------------------------------------------------------


def test_the_install_redirects_to_hubspot_with_the_apps_scopes_and_a_signed_state(app, hubspot):
    target = urlsplit(_start(app.test_client(), hubspot))
    query = parse_qs(target.query)
    # The deployment's HubSpot base (the stub) serves the authorize page too.
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{hubspot.url}/oauth/authorize"
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == ["https://hooks.example.test/oauth/hubspot/callback"]
    assert query["scope"][0].split(" ") == list(ENDPOINTS.scopes)
    assert "oauth" in query["scope"][0].split(" ")
    assert len(query["state"][0]) > 40 and "." in query["state"][0]


def test_a_new_portal_gets_its_account_installation_properties_and_admin(app, runtime, hubspot):
    client = app.test_client()
    answer = _install(client, hubspot)
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/accounts/{ACME_ACCOUNT}/setup"

    # The code was traded at the 2026-03 endpoint, every parameter in the form body.
    [exchange] = hubspot.token_requests
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["client_id"] == CLIENT_ID and exchange["client_secret"] == CLIENT_SECRET
    assert exchange["redirect_uri"] == "https://hooks.example.test/oauth/hubspot/callback"
    token_calls = [r for r in hubspot.requests if r.path.startswith("/oauth/")]
    assert [(r.method, r.path, dict(r.query)) for r in token_calls] == [
        ("POST", "/oauth/2026-03/token", {}), ("POST", "/oauth/2026-03/token/introspect", {})]

    with runtime.db.session() as s:
        account = s.get(Account, ACME_ACCOUNT)
        assert account is not None
        assert (account.name, account.timezone, account.crm_kind, account.crm_auth) == (
            "acme.example", "America/Chicago", "hubspot", "oauth")
        # Only the app's client id is kept with the account; the secret stays in the settings.
        assert runtime.box.open(account.crm_credentials) == {"client_id": CLIENT_ID}
        mapping = account.settings["crm"]["mapping"]
        assert mapping["record_url"] == (
            f"https://app.hubspot.com/contacts/{ACME}/record/0-1/{{contact_id}}")
        assert (mapping["pipeline"], mapping["stage"]) == ("default", "appointmentscheduled")
        assert account.settings["carrier"]["numbers"] == []
        row = s.get(Installation, (ACME_ACCOUNT, "hubspot"))
        assert row is not None and row.external_id == str(ACME) and row.status == "active"
        tokens = open_tokens(runtime.box, row.tokens)  # sealed: neither token shows as stored
        assert tokens.access_token.startswith("at-") and tokens.refresh_token
        assert tokens.access_token not in row.tokens and tokens.refresh_token not in row.tokens
        user = s.scalar(select(User).where(User.email == OWNER))
        assert user is not None and user.role == "admin" and not user.all_accounts
        assert s.get(AccountMember, (user.id, ACME_ACCOUNT)) is not None
        state = connection_state(s, ACME_ACCOUNT)
    assert state.status == "connected" and state.connected_by == OWNER
    assert state.token_expires_at is not None
    assert timedelta(minutes=29) < state.token_expires_at - clock.now() <= timedelta(minutes=30)
    # Made at install, not on the first missed call.
    assert {UNIQUE_PHONE_PROPERTY, OPT_OUT_PROPERTY} <= hubspot.property_names(ACME)
    assert _signed_in(client)


def test_opening_the_install_again_signs_the_admin_in_again(app, runtime, hubspot):
    assert _install(app.test_client(), hubspot).status_code == 302
    other_browser = app.test_client()
    assert not _signed_in(other_browser)
    answer = _install(other_browser, hubspot)
    assert answer.headers["Location"] == f"/accounts/{ACME_ACCOUNT}/setup"
    assert _signed_in(other_browser)
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Account)) == 1


def test_someone_the_account_has_not_added_reconnects_but_is_not_signed_in(app, runtime,
                                                                          hubspot):
    assert _install(app.test_client(), hubspot).status_code == 302
    stranger = app.test_client()
    answer = _install(stranger, hubspot, user="intern@acme.example")
    assert answer.status_code == 302 and not _signed_in(stranger)
    with runtime.db.session() as s:
        assert s.scalar(select(User).where(User.email == "intern@acme.example")) is None


def test_reinstall_re_attaches_the_portals_account_with_new_tokens(app, runtime, hubspot):
    client = app.test_client()
    _install(client, hubspot)
    first = _installation(runtime)
    hubspot.uninstall(ACME)  # removed in HubSpot, then installed again
    answer = _install(client, hubspot)
    assert answer.headers["Location"] == f"/accounts/{ACME_ACCOUNT}/setup"
    second = _installation(runtime)
    assert first is not None and second is not None
    assert second.tokens != first.tokens and second.status == "active"
    with runtime.db.session() as s:
        assert s.scalars(select(Account.id)).all() == [ACME_ACCOUNT]
    assert hubspot.installed(ACME)


def test_a_private_app_account_moves_to_the_marketplace_app(app, runtime, hubspot):
    from tests.connector.test_accounts import TWILIO_HUBSPOT
    from tests.connector.test_setup_pages import PASSWORD, sign_in

    doc = json.loads(json.dumps(TWILIO_HUBSPOT))
    doc["crm"]["api_base_url"] = hubspot.url
    with runtime.db.session() as s:
        import_account(s, runtime.box, doc)
        add_user(s, OWNER, "Owner", PASSWORD, "acme-plumbing", role="admin")
        assert connection_state(s, "acme-plumbing").status == "private token"
    admin = sign_in(app, OWNER)
    start = admin.get("/oauth/hubspot/install?account=acme-plumbing")
    assert start.status_code == 302
    callback = urlsplit(hubspot.approve(start.headers["Location"], hub_id=ACME, user=OWNER))
    done = admin.get(f"{callback.path}?{callback.query}")
    assert done.headers["Location"] == "/accounts/acme-plumbing/setup"
    with runtime.db.session() as s:
        account = s.get(Account, "acme-plumbing")
        assert account is not None and account.crm_auth == "oauth"
        assert runtime.box.open(account.crm_credentials) == {"client_id": CLIENT_ID}
        assert connection_state(s, "acme-plumbing").status == "connected"
        assert s.scalars(select(Account.id)).all() == ["acme-plumbing"]  # no second account
        s.expunge(account)
    # The CRM work now goes through the installation's token, into the portal.
    runtime.crm_for(account).find_or_create_contact("+13125550134")
    assert len(hubspot.records("contacts", hub_id=ACME)) == 1


def test_the_install_is_refused_without_the_marketplace_app(tmp_path):
    settings = make_settings(tmp_path)
    upgrade(settings.database_url)
    rt = Runtime(settings, immediate_queue=True)
    try:
        client = create_app(rt).test_client()
        answer = client.get("/oauth/hubspot/install")
        assert answer.status_code == 403 and b"setup page" in answer.data
    finally:
        rt.close()


# -- forged or expired state -------------------------------------------------------------------


def _nothing_installed(runtime: Runtime) -> bool:
    with runtime.db.session() as s:
        return s.scalar(select(func.count()).select_from(Account)) == 0 and \
            s.scalar(select(func.count()).select_from(Installation)) == 0


@pytest.mark.parametrize("forge", ["garbage", "tampered", "other-key"])
def test_a_forged_state_is_refused_and_changes_nothing(app, runtime, hubspot, forge):
    from itsdangerous import URLSafeTimedSerializer

    client = app.test_client()
    callback = urlsplit(hubspot.approve(_start(client, hubspot), hub_id=ACME, user=OWNER))
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    if forge == "garbage":
        query["state"] = "not-a-state"
    elif forge == "tampered":
        query["state"] = query["state"][:-3] + ("AAA" if query["state"][-3:] != "AAA" else "BBB")
    else:
        query["state"] = URLSafeTimedSerializer("x" * 40, salt="textback-oauth-state").dumps(
            {"account": None, "crm": "hubspot", "nonce": "n" * 22, "browser": "b"})
    answer = client.get(f"{callback.path}?code={query['code']}&state={query['state']}")
    assert answer.status_code == 403
    assert hubspot.token_requests == []  # the code was never traded
    assert _nothing_installed(runtime)
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(UsedNonce)) == 0


def test_an_expired_state_is_refused_and_changes_nothing(app, runtime, hubspot, frozen_clock):
    client = app.test_client()
    callback = urlsplit(hubspot.approve(_start(client, hubspot), hub_id=ACME, user=OWNER))
    frozen_clock.shift(timedelta(minutes=16))
    answer = client.get(f"{callback.path}?{callback.query}")
    assert answer.status_code == 403 and b"expired" in answer.data
    assert hubspot.token_requests == [] and _nothing_installed(runtime)


def test_a_replayed_callback_changes_nothing(app, runtime, hubspot):
    client = app.test_client()
    callback = urlsplit(hubspot.approve(_start(client, hubspot), hub_id=ACME, user=OWNER))
    assert client.get(f"{callback.path}?{callback.query}").status_code == 302
    before = _installation(runtime)
    again = client.get(f"{callback.path}?{callback.query}")
    assert again.status_code == 403 and len(hubspot.token_requests) == 1
    after = _installation(runtime)
    assert before is not None and after is not None and after.tokens == before.tokens


# -- tokens: refresh at expiry, with two workers --------------------------------------------------


def test_the_access_token_is_refreshed_at_expiry_once_for_two_workers(app, settings, hubspot,
                                                                      frozen_clock):
    assert _install(app.test_client(), hubspot).status_code == 302
    installed = _installation(app.extensions["textback"])
    assert installed is not None
    frozen_clock.shift(timedelta(minutes=26))  # within 5 minutes of the 30-minute expiry
    workers = [Runtime(settings, immediate_queue=True) for _ in range(2)]
    try:
        adapters = []
        for rt in workers:
            with rt.db.session() as s:
                account = s.get(Account, ACME_ACCOUNT)
                assert account is not None
                s.expunge(account)
            adapters.append(rt.crm_for(account))
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def work(crm: Any, number: str) -> None:
            barrier.wait()
            try:
                crm.find_or_create_contact(number)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(crm, number)) for crm, number in
                   zip(adapters, ("+13125550134", "+13125550177"), strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert errors == []
    finally:
        for rt in workers:
            rt.close()
    refreshes = [r for r in hubspot.token_requests if r["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1
    renewed = _installation(app.extensions["textback"])
    assert renewed is not None and renewed.tokens != installed.tokens
    assert renewed.expires_at is not None and installed.expires_at is not None
    assert renewed.expires_at > installed.expires_at
    assert len(hubspot.records("contacts", hub_id=ACME)) == 2


# -- uninstall ------------------------------------------------------------------------------------


def test_uninstalled_in_hubspot_the_crm_work_waits_with_its_reason_and_texts_go_on(
        app, runtime, hubspot, frozen_clock):
    client = app.test_client()
    _install(client, hubspot)
    secret = _give_number(runtime, ACME_ACCOUNT, "+13125550100")
    hubspot.uninstall(ACME)
    frozen_clock.shift(timedelta(minutes=40))  # the access token is due: the refresh is refused
    answer = post(client, ACME_ACCOUNT, "voice", missed(to="+13125550100"), secret)
    assert answer.status_code == 200
    with runtime.db.session() as s:
        call = s.scalar(select(Call).where(Call.account_id == ACME_ACCOUNT))
        assert call is not None
        assert call.state == "texted" and call.crm_state == "needs_reauth"
        state = connection_state(s, ACME_ACCOUNT)
        call_id = call.id
    trail = explain(runtime, call_id)
    assert state.status == "disconnected"
    assert state.disconnected_reason == "HubSpot refused the refresh token (BAD_REFRESH_TOKEN)"
    assert "needs_reauth" in trail and "invalid refresh token" in trail
    assert "reconnect HubSpot through /oauth/hubspot/install" in trail

    # Later calls wait at once, naming why, without asking HubSpot again.
    before = len(hubspot.requests)
    post(client, ACME_ACCOUNT, "voice", missed("CALL2", caller="+13125550177", to="+13125550100"),
         secret)
    with runtime.db.session() as s:
        second = s.scalar(select(Call).where(Call.event_id == "CALL2"))
        assert second is not None and second.state == "texted"
        assert second.crm_state == "needs_reauth"
        second_id = second.id
    assert "disconnected from account" in explain(runtime, second_id)
    assert "HubSpot refused the refresh token" in explain(runtime, second_id)
    assert len(hubspot.requests) == before
    assert hubspot.records("calls", hub_id=ACME) == []

    # Installed again: the installation is connected, and the next call reaches HubSpot.
    _install(client, hubspot)
    with runtime.db.session() as s:
        assert connection_state(s, ACME_ACCOUNT).status == "connected"


def _portal_crm(runtime: Runtime) -> Any:
    with runtime.db.session() as s:
        account = s.get(Account, ACME_ACCOUNT)
        assert account is not None
        s.expunge(account)
    return runtime.crm_for(account)


def test_an_uninstall_is_found_at_the_first_refused_call(app, runtime, hubspot):
    _install(app.test_client(), hubspot)
    hubspot.uninstall(ACME)  # the access token still has 30 minutes on the clock
    with pytest.raises(ProviderAuthError):
        _portal_crm(runtime).find_or_create_contact("+13125550134")
    with runtime.db.session() as s:
        state = connection_state(s, ACME_ACCOUNT)
    assert state.status == "disconnected" and "BAD_REFRESH_TOKEN" in str(state.disconnected_reason)


def test_a_revoked_access_token_is_renewed_and_the_next_try_works(app, runtime, hubspot):
    _install(app.test_client(), hubspot)
    hubspot.expire_access_tokens()  # revoked early; the refresh token still works
    crm = _portal_crm(runtime)
    with pytest.raises(TransientProviderError) as refused:
        crm.find_or_create_contact("+13125550134")
    assert refused.value.ambiguous is False
    crm.find_or_create_contact("+13125550134")
    assert len([r for r in hubspot.token_requests if r["grant_type"] == "refresh_token"]) == 1
    assert len(hubspot.records("contacts", hub_id=ACME)) == 1
    with runtime.db.session() as s:
        assert connection_state(s, ACME_ACCOUNT).status == "connected"


def test_an_admin_disconnects_from_textback(frozen_clock, app, runtime, hubspot):
    frozen_clock.move_to(SUITE_INSTANT)  # the times asserted below are this instant's
    client = app.test_client()
    _install(client, hubspot)
    page = client.get(f"/accounts/{ACME_ACCOUNT}/setup/crm")
    assert page.status_code == 200 and b"Disconnect HubSpot" in page.data
    assert f'action="/accounts/{ACME_ACCOUNT}/crm/disconnect"'.encode() in page.data
    assert client.post(f"/accounts/{ACME_ACCOUNT}/crm/disconnect",
                       data={}).status_code == 400  # no CSRF token: nothing happens
    assert hubspot.installed(ACME)
    answer = client.post(f"/accounts/{ACME_ACCOUNT}/crm/disconnect",
                         data={"csrf": _csrf(page.data)})
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"/accounts/{ACME_ACCOUNT}/setup"
    assert any(r.method == "DELETE" and r.path == "/appinstalls/v3/external-install"
               for r in hubspot.requests)
    assert not hubspot.installed(ACME)
    with runtime.db.session() as s:
        state = connection_state(s, ACME_ACCOUNT)
    assert state.status == "disconnected"
    assert state.disconnected_reason == f"disconnected from textback by {OWNER}"
    page = client.get(f"/accounts/{ACME_ACCOUNT}/setup/crm")
    shown = f"<strong>disconnected: disconnected from textback by {OWNER} (installed 2026-06-15 "
    assert (shown + "07:00 CDT").encode() in page.data  # in the account's time zone
    assert b"Disconnect HubSpot" not in page.data


def test_only_a_signed_in_admin_of_the_account_disconnects(app, runtime, hubspot):
    _install(app.test_client(), hubspot)
    _install(app.test_client(), hubspot, hub_id=FIXIT, user="boss@fixit.example")
    stranger = app.test_client()
    assert stranger.post(f"/accounts/{ACME_ACCOUNT}/crm/disconnect").status_code == 403
    fixit_admin = app.test_client()
    _install(fixit_admin, hubspot, hub_id=FIXIT, user="boss@fixit.example")
    with fixit_admin.session_transaction() as browser:
        browser["csrf"] = "t"
    answer = fixit_admin.post(f"/accounts/{ACME_ACCOUNT}/crm/disconnect", data={"csrf": "t"})
    assert answer.status_code == 403 and hubspot.installed(ACME)


# -- the marketplace app's webhooks: one URL for every portal -------------------------------------


def _app_webhook(app: Any, events: list[dict[str, Any]], secret: str = CLIENT_SECRET) -> Any:
    path = "/webhooks/crm/hubspot"
    body = json.dumps(events).encode()
    stamp = str(int(clock.timestamp() * 1000))
    return app.test_client().post(path, data=body, headers={
        "X-HubSpot-Signature-v3": signature_v3(secret, "POST", "https://hooks.example.test" + path,
                                               body, stamp),
        "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"})


def _task_done(portal: int, event_id: int = 7) -> dict[str, Any]:
    return {"eventId": event_id, "portalId": portal, "subscriptionType": "object.propertyChange",
            "objectId": 9001, "propertyName": "hs_task_status", "propertyValue": "COMPLETED"}


def test_the_apps_webhooks_reach_the_portals_account_on_one_url(app, runtime, hubspot):
    _install(app.test_client(), hubspot, ACME, OWNER)
    _install(app.test_client(), hubspot, FIXIT, "boss@fixit.example")
    assert _app_webhook(app, [_task_done(FIXIT)]).status_code == 200
    assert _app_webhook(app, [_task_done(ACME, 8)], secret="not-the-app-secret").status_code == 403
    assert _app_webhook(app, [_task_done(99999)]).status_code == 403  # no such installation
    # A delivery naming two portals is never acted on for either.
    assert _app_webhook(app, [_task_done(ACME, 9), _task_done(FIXIT, 10)]).status_code == 400
    with runtime.db.session() as s:
        receipts = [(r.account_id, r.event_id) for r in s.scalars(
            select(WebhookReceipt).where(WebhookReceipt.kind == "crm"))]
    assert receipts == [(FIXIT_ACCOUNT, "7")]


# -- two portals side by side ---------------------------------------------------------------------


def test_two_portals_never_see_each_others_data(app, runtime, hubspot):
    acme_browser, fixit_browser = app.test_client(), app.test_client()
    _install(acme_browser, hubspot, ACME, OWNER)
    _install(fixit_browser, hubspot, FIXIT, "boss@fixit.example")
    acme_secret = _give_number(runtime, ACME_ACCOUNT, "+13125550100")
    fixit_secret = _give_number(runtime, FIXIT_ACCOUNT, "+17205550100")
    assert post(acme_browser, ACME_ACCOUNT, "voice",
                missed("CA-acme", caller="+13125550111", to="+13125550100"),
                acme_secret).status_code == 200
    assert post(fixit_browser, FIXIT_ACCOUNT, "voice",
                missed("CA-fixit", caller="+17205550122", to="+17205550100"),
                fixit_secret).status_code == 200
    # Each portal holds only its own caller's contact and call.
    acme_contacts = hubspot.records("contacts", hub_id=ACME)
    fixit_contacts = hubspot.records("contacts", hub_id=FIXIT)
    assert [c["properties"][UNIQUE_PHONE_PROPERTY] for c in acme_contacts] == ["+13125550111"]
    assert [c["properties"][UNIQUE_PHONE_PROPERTY] for c in fixit_contacts] == ["+17205550122"]
    assert len(hubspot.records("calls", hub_id=ACME)) == 1
    assert len(hubspot.records("calls", hub_id=FIXIT)) == 1
    # A secret of one account does not post to the other.
    assert post(acme_browser, FIXIT_ACCOUNT, "voice", missed("CA-x", to="+17205550100"),
                acme_secret).status_code == 403
    # Each admin sees their own account only.
    with runtime.db.session() as s:
        members = {(m.user_id, m.account_id) for m in s.scalars(select(AccountMember))}
        owners = {u.email: u.id for u in s.scalars(select(User))}
    assert members == {(owners[OWNER], ACME_ACCOUNT),
                       (owners["boss@fixit.example"], FIXIT_ACCOUNT)}
    with runtime.db.session() as s:
        acme, fixit = (connection_state(s, a) for a in (ACME_ACCOUNT, FIXIT_ACCOUNT))
    assert acme.connected_by == OWNER and fixit.connected_by == "boss@fixit.example"


# -- done when: from "Install" to the first texted missed call, through the public routes --------


def _csrf(page: bytes) -> str:
    match = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert match is not None, "the page has no form"
    return match.group(1).decode()


def test_a_new_portal_goes_from_install_to_its_first_texted_missed_call(app, runtime, hubspot):
    """Nobody edits a file: HubSpot's install creates the account and signs its admin in, the
    setup pages connect Twilio and the business number, and a missed call is texted back and
    written into the new portal."""
    from tests.carrier_adapters.test_twilio import ACCOUNT_SID, AUTH_TOKEN, fixture_body
    from tests.connector.test_end_to_end_twilio_hubspot import (
        BUSINESS,
        CALLER,
        MESSAGES,
        TWILIO_API,
        message_json,
    )
    from tests.connector.test_hubspot_app_events import declared_event_types

    deploy_app_events(hubspot, declared_event_types())  # the app's project, as HubSpot holds it
    admin = app.test_client()
    installed = _install(admin, hubspot)
    setup = installed.headers["Location"]
    assert setup == f"/accounts/{ACME_ACCOUNT}/setup" and admin.get(setup).status_code == 200

    with responses.RequestsMock(assert_all_requests_are_fired=False) as twilio:
        twilio.add_passthru(hubspot.url)  # textback's plain-HTTP calls to HubSpot (app events)
        account_url = f"{TWILIO_API}/2010-04-01/Accounts/{ACCOUNT_SID}"
        twilio.add(responses.GET, f"{account_url}.json",
                   json={"sid": ACCOUNT_SID, "status": "active"})
        twilio.add(responses.GET, f"{account_url}/IncomingPhoneNumbers.json",
                   json={"incoming_phone_numbers": [
                       {"sid": "PN" + "1" * 32, "phone_number": BUSINESS,
                        "friendly_name": "Main line",
                        "capabilities": {"voice": True, "sms": True, "mms": False}}],
                       "next_page_uri": None})
        twilio.add(responses.POST, MESSAGES, json=message_json(), status=201)

        # The business number first (the account's document needs one), then Twilio.
        page = admin.get(f"{setup}/carrier")
        assert page.status_code == 200
        numbers = admin.post(f"{setup}/carrier", data={
            "csrf": _csrf(page.data), "action": "numbers", "typed_numbers": BUSINESS})
        assert numbers.status_code == 302
        page = admin.get(f"{setup}/carrier?kind=twilio")
        connected = admin.post(f"{setup}/carrier", data={
            "csrf": _csrf(page.data), "action": "credentials", "kind": "twilio",
            "cred_account_sid": ACCOUNT_SID, "cred_auth_token": AUTH_TOKEN,
            "api_base_url": TWILIO_API})
        assert connected.status_code == 302, re.findall(rb'class="error"[^>]*>[^<]*<',
                                                        connected.data)

        # The carrier's webhook for a call nobody answered, as Twilio signs it.
        path = f"/webhooks/twilio/{ACME_ACCOUNT}/voice"
        body = fixture_body("voice_dial_no_answer")
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            "https://hooks.example.test" + path, params)
        answer = app.test_client().post(path, data=body, headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200
        sends = [c for c in twilio.calls if c.request.url == MESSAGES]

    assert len(sends) == 1
    text = parse_qs(sends[0].request.body)
    assert text["To"] == [CALLER] and text["From"] == [BUSINESS]
    # The records are in the new portal, and it is the only portal that has any.
    [contact] = hubspot.records("contacts", hub_id=ACME)
    assert contact["properties"][UNIQUE_PHONE_PROPERTY] == CALLER
    assert len(hubspot.records("calls", hub_id=ACME)) == 1
    assert len(hubspot.records("communications", hub_id=ACME)) == 1
    assert len(hubspot.records("deals", hub_id=ACME)) == 1
    assert len(hubspot.records("tasks", hub_id=ACME)) == 1
    assert hubspot.records("contacts") == []
    assert "textback_missed_call" in {e["eventTypeName"] for e in hubspot.app_events}
    with runtime.db.session() as s:
        call = s.scalar(select(Call).where(Call.account_id == ACME_ACCOUNT))
        assert call is not None
        assert call.state == "texted" and call.crm_state == "done"


def test_the_install_in_a_browser_lands_signed_in_on_the_setup_pages(live_server, browser,
                                                                     hubspot):
    """The marketplace install as a person clicks through it; the CRM page shows the connection
    and its Disconnect button (screenshots ``hubspot-install-*`` at 1280 and 390 px)."""
    from tests.browser import check_page

    # HubSpot sends the browser back to our public address; here that is the local server.
    hubspot.approve_in_browser(hub_id=ACME, user=OWNER, reach=live_server)
    page = browser.new_page()
    page.goto(f"{live_server}/oauth/hubspot/install")
    page.wait_for_url(f"{live_server}/accounts/{ACME_ACCOUNT}/setup")
    check_page(page, "hubspot-install-setup")
    page.goto(f"{live_server}/accounts/{ACME_ACCOUNT}/setup/crm")
    assert "connected since" in page.inner_text("main") and OWNER in page.inner_text("main")
    check_page(page, "hubspot-install-crm")
    page.get_by_role("button", name="Disconnect HubSpot").click()
    page.wait_for_url(f"{live_server}/accounts/{ACME_ACCOUNT}/setup")
    page.goto(f"{live_server}/accounts/{ACME_ACCOUNT}/setup/crm")
    assert "disconnected: disconnected from textback by" in page.inner_text("main")
    check_page(page, "hubspot-install-crm-disconnected")
    assert not hubspot.installed(ACME)
