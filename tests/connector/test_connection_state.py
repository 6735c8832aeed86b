"""Each account's CRM connection state: ``connection_state`` and ``textback accounts list``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.kernel import clock
from connector.storage.installations import (
    ConnectionState,
    DbTokenStore,
    connection_state,
    save_installation,
)
from connector.storage.models import Account
from crm_adapters.base import OAuthTokens
from tests.conftest import SUITE_INSTANT
from tests.connector.helpers import add_account, sandbox_account
from tests.connector.test_accounts import TWILIO_HUBSPOT


def _with_crm(runtime, account_id: str, crm: dict[str, object]) -> str:  # type: ignore[no-untyped-def]
    doc = sandbox_account(account_id, "w" * 24)
    doc["crm"] = crm
    add_account(runtime, doc)
    return account_id


def _state(runtime, account_id: str) -> ConnectionState:  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        return connection_state(s, account_id)


def test_a_private_app_token_is_a_private_token(runtime):
    add_account(runtime, TWILIO_HUBSPOT)
    state = _state(runtime, "acme-plumbing")
    assert state == ConnectionState(crm="hubspot", status="private token")
    assert state.describe() == "private token"


def test_an_api_key_is_a_private_token_and_an_app_without_install_is_not_connected(runtime):
    _with_crm(runtime, "keyed", {"kind": "housecallpro", "credentials": {"api_key": "k" * 20}})
    _with_crm(runtime, "partner", {"kind": "housecallpro",
                                   "credentials": {"client_id": "cid", "client_secret": "cs"}})
    _with_crm(runtime, "jobber", {"kind": "jobber",
                                  "credentials": {"client_id": "cid", "client_secret": "cs"}})
    assert _state(runtime, "keyed").status == "private token"
    assert _state(runtime, "partner").status == "not connected"
    assert _state(runtime, "jobber") == ConnectionState(crm="jobber", status="not connected")


def test_an_install_is_connected_when_and_by_whom_then_disconnected_and_why(frozen_clock, runtime):
    frozen_clock.move_to(SUITE_INSTANT)  # the times asserted below are this instant's
    _with_crm(runtime, "acme", {"kind": "jobber",
                                "credentials": {"client_id": "cid", "client_secret": "cs"}})
    expires = clock.now() + timedelta(minutes=60)
    save_installation(runtime.db, runtime.box, "acme", "jobber",
                      OAuthTokens("access", "refresh", expires), "JOB-1",
                      connected_by="owner@acme.example")
    state = _state(runtime, "acme")
    assert state.status == "connected"
    assert state.connected_at is not None
    assert abs((state.connected_at - clock.now()).total_seconds()) < 5
    assert state.connected_by == "owner@acme.example"
    assert state.token_expires_at is not None
    assert abs((state.token_expires_at - expires).total_seconds()) < 1
    assert "connected since 2026-06-15 12:00 UTC by owner@acme.example" in state.describe()
    assert "token expires 2026-06-15 13:00 UTC" in state.describe()

    DbTokenStore(runtime.db, runtime.box, "acme", "jobber").mark_disconnected(
        "Jobber refused the refresh token")
    state = _state(runtime, "acme")
    assert state.status == "disconnected"
    assert state.disconnected_reason == "Jobber refused the refresh token"
    assert state.connected_by == "owner@acme.example"
    assert state.describe() == ("disconnected: Jobber refused the refresh token (installed "
                                "2026-06-15 12:00 UTC by owner@acme.example)")
    assert state.describe("America/Chicago").endswith("07:00 CDT by owner@acme.example)")


def test_accounts_stored_before_the_auth_was_recorded_fall_back_on_the_crm(runtime):
    _with_crm(runtime, "old-jobber", {"kind": "jobber",
                                      "credentials": {"client_id": "c", "client_secret": "s"}})
    add_account(runtime, TWILIO_HUBSPOT)
    with runtime.db.session() as s:
        for row in s.query(Account):
            row.crm_auth = None
    assert _state(runtime, "old-jobber").status == "not connected"
    assert _state(runtime, "acme-plumbing").status == "private token"


def test_an_unknown_account_is_a_lookup_error(runtime):
    with runtime.db.session() as s, pytest.raises(LookupError):
        connection_state(s, "nobody")
