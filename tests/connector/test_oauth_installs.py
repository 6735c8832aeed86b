"""Marketplace installs end to end on a fake Jobber: install link, callback, a missed call
written through the installation's tokens, the APP_DISCONNECT webhook; and the cross-process
lock that guards rotating refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import multiprocessing
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from connector.kernel import clock
from connector.storage.db import Database
from connector.storage.installations import DbTokenStore, connection_state
from connector.storage.locks import named_lock
from connector.storage.models import Installation, UsedNonce, WebhookReceipt
from connector.storage.users import add_user
from connector.web.oauth import install_link
from tests.connector.helpers import add_account, missed, post, sandbox_account
from tests.fixtures.jobber.fake_jobber import ACCOUNT_ID, URL, FakeJobber

CLIENT_ID = "jobber-client-id-e2e"
CLIENT_SECRET = "jobber-client-secret-e2e-0042"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jobber"


@pytest.fixture
def jobber():  # type: ignore[no-untyped-def]
    with FakeJobber(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture
def acme(runtime, webhook_secret):  # type: ignore[no-untyped-def]
    doc = sandbox_account("acme", webhook_secret)
    doc["crm"] = {"kind": "jobber", "api_base_url": URL,
                  "credentials": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                  "mapping": {"owner_id": "Z2lkOi8vSm9iYmVyL1VzZXIvMQ=="}}
    add_account(runtime, doc)
    return "acme"


def _start(client, runtime) -> str:  # type: ignore[no-untyped-def]
    """Open acme's install link in ``client``; the state Jobber would send back."""
    link = install_link(runtime, "acme", "jobber")
    start = client.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert start.status_code == 302
    target = urlsplit(start.headers["Location"])
    query = parse_qs(target.query)
    # The account's api_base_url (the fake) serves the authorize page too.
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{URL}/api/oauth/authorize"
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == ["https://hooks.example.test/oauth/jobber/callback"]
    return query["state"][0]


def _callback(client, state: str):  # type: ignore[no-untyped-def]
    return client.get(f"/oauth/jobber/callback?code=good-code&state={state}")


def _install(app, runtime) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    done = _callback(client, _start(client, runtime))
    assert done.status_code == 200 and b"Connected" in done.data


def _installation(runtime) -> tuple[str, object, object] | None:  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        row = s.get(Installation, ("acme", "jobber"))
        return None if row is None else (row.tokens, row.updated_at, row.status)


def _token_calls(jobber) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for call in jobber.calls if call.kind == "token")


def _signed_jobber(body: bytes, secret: str = CLIENT_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"X-Jobber-Hmac-SHA256": base64.b64encode(digest).decode(),
            "Content-Type": "application/json"}


def test_install_then_missed_call_then_disconnect(app, runtime, acme, jobber, webhook_secret):
    _install(app, runtime)
    with runtime.db.session() as s:
        row = s.get(Installation, ("acme", "jobber"))
        assert row.status == "active" and row.external_id == ACCOUNT_ID
        assert "rt-" not in row.tokens and "eyJ" not in row.tokens  # sealed, not plain

    client = app.test_client()
    assert post(client, "acme", "voice", missed(), webhook_secret).status_code == 200
    assert len(jobber.clients) == 1 and len(jobber.requests) == 1
    assert len(jobber.tasks) == 1 and len(jobber.notes) >= 2

    body = (FIXTURES / "webhook_app_disconnect.json").read_bytes()
    assert client.post("/webhooks/crm/jobber", data=body,
                       headers=_signed_jobber(body, "wrong")).status_code == 403
    for _ in range(2):  # Jobber may deliver twice
        answer = client.post("/webhooks/crm/jobber", data=body, headers=_signed_jobber(body))
        assert answer.status_code == 200
    with runtime.db.session() as s:
        assert s.get(Installation, ("acme", "jobber")).status == "disconnected"
        assert len(s.scalars(select(WebhookReceipt).where(WebhookReceipt.kind == "crm")).all()) == 1


def test_webhook_for_an_unknown_installation_is_refused(app, acme, jobber):
    body = (FIXTURES / "webhook_app_disconnect.json").read_bytes()
    answer = app.test_client().post("/webhooks/crm/jobber", data=body,
                                    headers=_signed_jobber(body))
    assert answer.status_code == 403


@pytest.mark.parametrize("query", ["token=forged", ""])
def test_a_forged_install_link_is_refused(app, acme, query):
    assert app.test_client().get(f"/oauth/jobber/install?{query}").status_code == 403


def test_callback_needs_our_state_and_a_code(app, runtime, acme, jobber):
    client = app.test_client()
    assert client.get("/oauth/jobber/callback?code=good-code&state=forged").status_code == 403
    assert client.get("/oauth/jobber/callback?code=good-code").status_code == 400
    assert client.get("/oauth/jobber/callback?error=access_denied&state=x").status_code == 400
    with runtime.db.session() as s:
        assert s.scalars(select(Installation)).all() == []


def test_a_state_works_once_and_a_replay_changes_nothing(app, runtime, acme, jobber,
                                                        frozen_clock):
    client = app.test_client()
    state = _start(client, runtime)
    assert _callback(client, state).status_code == 200
    exchanges = _token_calls(jobber)
    frozen_clock.shift(timedelta(minutes=1))  # well within the state's 15 minutes
    with runtime.db.session() as s:  # as if Jobber had been disconnected meanwhile
        s.get(Installation, ("acme", "jobber")).status = "disconnected"
    stored = _installation(runtime)
    replay = _callback(client, state)
    assert replay.status_code == 403 and b"Already used" in replay.data
    assert _installation(runtime) == stored  # not replaced, not reactivated
    assert _token_calls(jobber) == exchanges  # the code was not even traded


def test_a_callback_without_the_install_session_is_refused_and_spends_nothing(
    app, runtime, acme, jobber
):
    admin = app.test_client()
    state = _start(admin, runtime)
    stranger = app.test_client()  # no session cookie at all
    answer = _callback(stranger, state)
    assert answer.status_code == 403
    assert _installation(runtime) is None and _token_calls(jobber) == 0
    with runtime.db.session() as s:
        assert s.scalars(select(UsedNonce)).all() == []
    assert _callback(admin, state).status_code == 200  # the admin's own browser still can


def test_a_callback_in_another_browser_session_is_refused(app, runtime, acme, jobber):
    admin, other = app.test_client(), app.test_client()
    state = _start(admin, runtime)
    _start(other, runtime)  # a session of its own, with its own value
    assert _callback(other, state).status_code == 403
    assert _installation(runtime) is None


def test_two_installs_in_one_browser_both_work_once(app, runtime, acme, jobber):
    client = app.test_client()
    first, second = _start(client, runtime), _start(client, runtime)
    assert first != second
    assert _callback(client, second).status_code == 200
    assert _callback(client, first).status_code == 200
    assert _callback(client, first).status_code == 403


def test_a_state_expires_after_fifteen_minutes(app, runtime, acme, jobber, frozen_clock):
    client = app.test_client()
    state = _start(client, runtime)
    frozen_clock.shift(timedelta(minutes=16))
    assert _callback(client, state).status_code == 403
    assert _installation(runtime) is None


def test_missed_call_without_an_installation_waits_for_reauthorisation(
    app, runtime, acme, jobber, webhook_secret
):
    from connector.storage.models import Account, Call

    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    with runtime.db.session() as s:
        call = s.scalar(select(Call))
        assert call.state == "texted" and call.crm_state == "needs_reauth"
        assert s.get(Account, "acme").crm_needs_reauth is True


def test_token_store_round_trip(runtime, acme):
    from connector.storage.installations import save_installation
    from crm_adapters.base import OAuthTokens

    save_installation(runtime.db, runtime.box, "acme", "jobber",
                      OAuthTokens("access-1", "refresh-1"), "ext-1")
    store = DbTokenStore(runtime.db, runtime.box, "acme", "jobber")
    with store.locked():
        assert store.load().refresh_token == "refresh-1"
        store.save(OAuthTokens("access-2", "refresh-2"))
    assert store.load().access_token == "access-2"
    store.mark_disconnected("test")
    assert not store.is_active()


def _hold(url: str, name: str, log: str, delay: float) -> None:
    db = Database(url)
    with named_lock(db.engine, name):
        with open(log, "a") as f:
            f.write(f"in {time.monotonic()}\n")
        time.sleep(delay)
        with open(log, "a") as f:
            f.write(f"out {time.monotonic()}\n")
    db.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_named_lock_holds_across_processes(request, tmp_path, backend):
    url = (f"sqlite:///{tmp_path / 'lock.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    log = str(tmp_path / "log")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_hold, args=(url, "installation:acme:jobber", log, 0.3))
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    events = [line.split() for line in Path(log).read_text().splitlines()]
    assert [kind for kind, _ in events] == ["in", "out"] * 3  # never two inside at once


def test_housecallpro_webhook_is_verified_per_account_and_deduplicated(app, runtime,
                                                                        webhook_secret):
    from crm_adapters.housecallpro.webhooks import signature

    doc = sandbox_account("hcp-acme", webhook_secret)
    doc["crm"] = {"kind": "housecallpro", "credentials": {
        "api_key": "hcp-api-key-0123456789", "webhook_signing_secret": "hcp-signing-secret-42"}}
    add_account(runtime, doc)
    # The one event acted on, so the one that leaves a receipt; others are only acknowledged.
    body = b'{"event": "lead.converted", "lead": {"id": "lea_9"}}'
    stamp = str(int(clock.timestamp()))

    def send(secret: str):  # type: ignore[no-untyped-def]
        return app.test_client().post(
            "/webhooks/crm/housecallpro/hcp-acme", data=body,
            headers={"Api-Timestamp": stamp, "Api-Signature": signature(secret, stamp, body),
                     "Content-Type": "application/json"})

    assert send("wrong-secret").status_code == 403
    assert send("hcp-signing-secret-42").status_code == 200
    assert send("hcp-signing-secret-42").status_code == 200
    with runtime.db.session() as s:
        receipts = s.scalars(select(WebhookReceipt).where(WebhookReceipt.kind == "crm")).all()
        assert [r.account_id for r in receipts] == ["hcp-acme"]
    assert app.test_client().post("/webhooks/crm/housecallpro/nobody", data=body).status_code == 404


def test_housecallpro_converted_lead_is_recorded_and_other_events_are_acknowledged(
    app, runtime, webhook_secret
):
    import json as _json

    from connector.storage.models import Call, CallEvent, CrmLink
    from crm_adapters.housecallpro.webhooks import signature

    doc = sandbox_account("hcp-acme", webhook_secret)
    doc["crm"] = {"kind": "housecallpro", "credentials": {
        "api_key": "hcp-api-key-0123456789", "webhook_signing_secret": "hcp-signing-secret-42"}}
    add_account(runtime, doc)
    with runtime.db.session() as s:
        s.add(Call(id="e" * 32, account_id="hcp-acme", carrier="sandbox", event_id="E1",
                   caller="+14155550123", called="+14155550100", outcome="no-answer",
                   occurred_at=clock.now(), state="texted", crm_state="done"))
        s.flush()
        s.add(CrmLink(account_id="hcp-acme", crm="housecallpro", object_type="lead",
                      local_key="+14155550123", crm_id="lea_9"))
    stamp = str(int(clock.timestamp()))

    def send(payload: dict) -> int:  # type: ignore[type-arg]
        body = _json.dumps(payload).encode()
        return app.test_client().post(
            "/webhooks/crm/housecallpro/hcp-acme", data=body,
            headers={"Api-Timestamp": stamp, "Content-Type": "application/json",
                     "Api-Signature": signature("hcp-signing-secret-42", stamp, body)}).status_code

    assert send({"event": "job.created", "job": {"id": "job_1"}}) == 200
    assert send({"event": "lead.converted", "lead": {"id": "lea_9"}}) == 200
    with runtime.db.session() as s:
        steps = s.scalars(select(CallEvent.step).where(CallEvent.call_id == "e" * 32)).all()
    assert steps == ["lead_moved"]


# -- the OAuth declarations ------------------------------------------------------------------


def test_oauth_crms_are_those_declaring_an_install() -> None:
    from crm_adapters.oauth import OAUTH_PROVIDERS

    assert sorted(OAUTH_PROVIDERS) == ["housecallpro", "hubspot", "jobber"]
    assert all(cls.oauth is not None for cls in OAUTH_PROVIDERS.values())


def _hcp_account(runtime, webhook_secret, credentials, **crm):  # type: ignore[no-untyped-def]
    doc = sandbox_account("hcp-acme", webhook_secret)
    doc["crm"] = {"kind": "housecallpro", "credentials": credentials, **crm}
    add_account(runtime, doc)


def test_the_authorize_url_follows_the_accounts_api_base_url(app, runtime, webhook_secret):
    _hcp_account(runtime, webhook_secret, {"client_id": "hcp-client-id-1",
                                           "client_secret": "hcp-client-secret-0042"},
                 api_base_url="https://hcp-staging.example.test/")
    link = install_link(runtime, "hcp-acme", "housecallpro")
    answer = app.test_client().get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert answer.status_code == 302
    target = urlsplit(answer.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == (
        "https://hcp-staging.example.test/oauth/authorize")
    assert parse_qs(target.query)["client_id"] == ["hcp-client-id-1"]


def test_an_api_key_account_has_nothing_to_install(app, runtime, webhook_secret):
    _hcp_account(runtime, webhook_secret, {"api_key": "hcp-api-key-0123456789"})
    link = install_link(runtime, "hcp-acme", "housecallpro")
    answer = app.test_client().get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert answer.status_code == 404 and b"API key" in answer.data


def test_hubspots_marketplace_install_is_its_declaration() -> None:
    """HubSpot's marketplace OAuth: every parameter in the form body of
    ``POST /oauth/2026-03/token``, the portal id (``hub_id``) in the answer; the authorize URL
    carries the one scope declaration (``oauth`` plus the private app's scopes)."""
    import responses

    from crm_adapters import oauth_flow
    from crm_adapters.hubspot import HubSpotCrm

    url = oauth_flow.authorize_url(HubSpotCrm, "app-1", "https://tb/cb", "st8")
    assert url.startswith("https://app.hubspot.com/oauth/authorize?")
    scopes = parse_qs(urlsplit(url).query)["scope"][0].split(" ")
    assert scopes == ["oauth", "timeline", "automation", *HubSpotCrm.required_scopes]
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, "https://api.hubapi.com/oauth/2026-03/token",
                 json={"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 1800,
                       "hub_id": 62515, "token_type": "bearer"})
        tokens, portal = oauth_flow.install(
            HubSpotCrm, {"client_id": "app-1", "client_secret": "secret-0042"}, "code-1",
            "https://tb/cb")
        sent = parse_qs(mock.calls[0].request.body)
        assert mock.calls[0].request.url == "https://api.hubapi.com/oauth/2026-03/token"
    assert sent == {"grant_type": ["authorization_code"], "client_id": ["app-1"],
                    "client_secret": ["secret-0042"], "code": ["code-1"],
                    "redirect_uri": ["https://tb/cb"]}
    assert portal == "62515" and tokens.refresh_token == "rt-1"


# -- an install started from the web by a signed-in admin --------------------------------------


def _signed_in(app, runtime, email: str, role: str, account: str = "acme"):  # type: ignore[no-untyped-def]
    from tests.connector.test_setup_pages import PASSWORD, sign_in

    with runtime.db.session() as s:
        add_user(s, email, email.split("@")[0], PASSWORD, account, role=role)
    return sign_in(app, email)


def test_a_signed_in_admin_connects_jobber_from_the_web(app, runtime, acme, jobber):
    admin = _signed_in(app, runtime, "ana@acme.test", "admin")
    start = admin.get("/oauth/jobber/install?account=acme")
    assert start.status_code == 302
    target = urlsplit(start.headers["Location"])
    # The account's api_base_url (the fake) serves the authorize page too.
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{URL}/api/oauth/authorize"
    state = parse_qs(target.query)["state"][0]
    done = _callback(admin, state)
    assert done.status_code == 302 and done.headers["Location"] == "/accounts/acme/setup"
    with runtime.db.session() as s:
        state_now = connection_state(s, "acme")
    assert state_now.status == "connected" and state_now.connected_by == "ana@acme.test"


@pytest.mark.parametrize("who", ["rep", "stranger", "nobody"])
def test_only_an_admin_of_the_account_starts_its_install_from_the_web(app, runtime, acme,
                                                                     webhook_secret, who):
    add_account(runtime, sandbox_account("other", webhook_secret))
    if who == "rep":
        client = _signed_in(app, runtime, "rey@acme.test", "rep")
    elif who == "stranger":
        client = _signed_in(app, runtime, "sam@other.test", "admin", account="other")
    else:
        client = app.test_client()
    answer = client.get("/oauth/jobber/install?account=acme")
    assert answer.status_code == 403 and b"Sign in" in answer.data


def test_a_kill_after_jobbers_task_create_leaves_one_task(
        app, runtime, acme, jobber, webhook_secret, frozen_clock, monkeypatch):  # type: ignore[no-untyped-def]
    from connector.jobs.sweeper import sweep
    from connector.storage.models import Call, CrmLink
    from crm_adapters.jobber import activities

    class Killed(BaseException):
        """Stands for kill -9 between Jobber's answer and our record of it."""

    real_create = activities.create_task

    def create_then_die(*args, **kwargs):  # type: ignore[no-untyped-def]
        real_create(*args, **kwargs)
        raise Killed

    _install(app, runtime)
    monkeypatch.setattr(activities, "create_task", create_then_die)
    with pytest.raises(Killed):
        post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    monkeypatch.undo()
    assert len(jobber.tasks) == 1

    # Past the lease, and past the first task's 15-minute slot: a retry asking for its own
    # "now + 15 min" would list another moment's tasks.
    frozen_clock.shift(20 * 60)
    sweep(runtime)
    assert len(jobber.tasks) == 1  # found at the first attempt's due time, not made again
    with runtime.db.session() as s:
        assert s.scalar(select(Call.crm_state)) == "done"
        linked = s.scalar(select(CrmLink.crm_id).where(CrmLink.object_type == "task"))
    assert linked == next(iter(jobber.tasks))
