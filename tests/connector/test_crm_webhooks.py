"""The one CRM webhook view: account resolution, verification, parsing, de-duplication and the
handler of each normalised event, whichever CRM posts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from connector.kernel import clock
from connector.kernel.signing import hmac_hex
from connector.storage.installations import save_installation
from connector.storage.models import Account, Call, CallEvent, CrmLink, Installation, WebhookReceipt
from connector.web import crm_webhooks
from crm_adapters import CRMS
from crm_adapters.base import APP_WIDE, OAuthTokens, TaskCompleted
from crm_adapters.hubspot.webhooks import signature_v3
from crm_adapters.jobber.webhooks import signature as jobber_signature
from crm_adapters.sandbox import SIGNATURE_HEADER as SANDBOX_SIGNATURE
from tests.connector.helpers import BUSINESS, CALLER, add_account, sandbox_account

PUBLIC = "https://hooks.example.test"
HUBSPOT_SECRET = "hubspot-app-secret-0042"
JOBBER_SECRET = "jobber-client-secret-0042"
JOBBER_ACCOUNT = "Z2lkOi8vSm9iYmVyL0FjY291bnQvNDMwMTE0"


@pytest.fixture
def hub(runtime: Any, webhook_secret: str) -> str:
    """A HubSpot account with one missed call whose task (9001) and deal (5005) we made."""
    doc = sandbox_account("hub", webhook_secret)
    doc["crm"] = {"kind": "hubspot", "credentials": {"access_token": "pat-na1-test-token-1",
                                                     "client_secret": HUBSPOT_SECRET},
                  "mapping": {"pipeline": "default", "stage": "appointmentscheduled"}}
    add_account(runtime, doc)
    with runtime.db.session() as s:
        s.add(Call(id="c" * 32, account_id="hub", carrier="sandbox", event_id="E1", caller=CALLER,
                   called=BUSINESS, outcome="no-answer", occurred_at=clock.now(), state="texted",
                   crm_state="done"))
        s.flush()
        s.add(CrmLink(account_id="hub", crm="hubspot", object_type="task", local_key="c" * 32,
                      crm_id="9001"))
        s.add(CrmLink(account_id="hub", crm="hubspot", object_type="lead", local_key=CALLER,
                      crm_id="5005"))
    return "hub"


def hubspot(app: Any, events: Any, *, secret: str = HUBSPOT_SECRET, account: str = "hub") -> Any:
    """POST ``events`` to the account's HubSpot URL, signed (v3) with ``secret``."""
    path = f"/webhooks/crm/hubspot/{account}"
    body = json.dumps(events).encode()
    stamp = str(int(clock.timestamp() * 1000))
    return app.test_client().post(path, data=body, headers={
        "X-HubSpot-Signature-v3": signature_v3(secret, "POST", PUBLIC + path, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"})


def task_done(event_id: int = 7) -> dict[str, Any]:
    return {"eventId": event_id, "subscriptionType": "object.propertyChange", "objectId": 9001,
            "propertyName": "hs_task_status", "propertyValue": "COMPLETED"}


def deal_moved(event_id: int, stage: str) -> dict[str, Any]:
    return {"eventId": event_id, "subscriptionType": "object.propertyChange", "objectId": 5005,
            "propertyName": "dealstage", "propertyValue": stage}


def receipts(runtime: Any) -> list[tuple[str, str, str]]:
    with runtime.db.session() as s:
        return [(r.account_id, r.provider, r.event_id) for r in s.scalars(
            select(WebhookReceipt).where(WebhookReceipt.kind == "crm"))]


def call_steps(runtime: Any) -> list[str]:
    with runtime.db.session() as s:
        return list(s.scalars(select(CallEvent.step).where(CallEvent.call_id == "c" * 32)))


def responded(runtime: Any) -> bool:
    with runtime.db.session() as s:
        return s.scalar(select(Call.human_responded_at)) is not None


# -- resolving the account -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/webhooks/crm/hubspot/nobody", "/webhooks/crm/hubspot/acme",
                                  "/webhooks/crm/nocrm/hub", "/webhooks/crm/nocrm",
                                  "/webhooks/crm/jobber/hub"])
def test_a_url_naming_no_account_of_that_crm_is_a_404(app: Any, runtime: Any, hub: str,
                                                      webhook_secret: str, path: str) -> None:
    add_account(runtime, sandbox_account("acme", webhook_secret))  # a sandbox-CRM account
    body = json.dumps([task_done()]).encode()
    answer = app.test_client().post(path, data=body, content_type="application/json")
    assert answer.status_code == 404
    assert receipts(runtime) == [] and not responded(runtime)


def test_every_crm_with_webhooks_has_its_url_shape() -> None:
    declared = {name: cls.webhook.url for name, cls in CRMS.items() if cls.webhook is not None}
    assert declared == {"sandbox": "per-account", "hubspot": "per-account",
                        "housecallpro": "per-account", "jobber": APP_WIDE}


# -- verification, parsing, de-duplication -------------------------------------------------------


@pytest.mark.parametrize("secret", ["wrong-secret-0042", ""])
def test_a_bad_signature_is_a_403_and_stores_nothing(app: Any, runtime: Any, hub: str,
                                                     secret: str) -> None:
    answer = hubspot(app, [task_done(), deal_moved(8, "qualifiedtobuy")], secret=secret)
    assert answer.status_code == 403
    assert receipts(runtime) == [] and not responded(runtime) and call_steps(runtime) == []


def test_a_completed_task_settles_the_call_once_however_often_it_is_delivered(
        app: Any, runtime: Any, hub: str) -> None:
    for _ in range(2):
        assert hubspot(app, [task_done()]).status_code == 200
    assert responded(runtime)
    assert receipts(runtime) == [("hub", "hubspot", "7")]
    assert call_steps(runtime).count("human_responded") == 1


def test_a_duplicate_inside_one_delivery_is_acted_on_once(app: Any, runtime: Any,
                                                          hub: str) -> None:
    answer = hubspot(app, [deal_moved(3, "qualifiedtobuy"), deal_moved(3, "qualifiedtobuy")])
    assert answer.status_code == 200
    assert call_steps(runtime) == ["lead_moved"] and len(receipts(runtime)) == 1


def test_events_nobody_acts_on_are_acknowledged_without_a_receipt(app: Any, runtime: Any,
                                                                  hub: str) -> None:
    unsupported = [{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 123},
                   {"eventId": 2, "objectId": 9001, "propertyName": "hs_task_status",
                    "propertyValue": "IN_PROGRESS"}, "not an object", 42]
    assert hubspot(app, unsupported).status_code == 200
    assert hubspot(app, []).status_code == 200
    assert receipts(runtime) == [] and not responded(runtime)


@pytest.mark.parametrize("body", [{"not": "an array"}, "text", None])
def test_an_authentic_payload_we_cannot_read_is_a_400(app: Any, runtime: Any, hub: str,
                                                      body: Any) -> None:
    assert hubspot(app, body).status_code == 400
    assert receipts(runtime) == []


def test_a_failing_handler_leaves_no_receipt_so_the_retry_acts(
        app: Any, runtime: Any, hub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setitem(crm_webhooks.HANDLERS, TaskCompleted, broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert hubspot(app, [task_done()]).status_code == 500
    assert receipts(runtime) == []
    monkeypatch.undo()
    assert hubspot(app, [task_done()]).status_code == 200
    assert responded(runtime) and len(receipts(runtime)) == 1


# -- an app-wide URL: Jobber -----------------------------------------------------------------


@pytest.fixture
def pipes(runtime: Any, webhook_secret: str) -> str:
    """A Jobber account with an active installation."""
    doc = sandbox_account("pipes", webhook_secret)
    doc["crm"] = {"kind": "jobber", "credentials": {"client_id": "jobber-client-id",
                                                    "client_secret": JOBBER_SECRET}}
    add_account(runtime, doc)
    save_installation(runtime.db, runtime.box, "pipes", "jobber",
                      OAuthTokens("access-1", "refresh-1"), external_id=JOBBER_ACCOUNT)
    return "pipes"


def jobber(app: Any, topic: str, *, account: str = JOBBER_ACCOUNT,
           secret: str = JOBBER_SECRET) -> Any:
    body = json.dumps({"data": {"webHookEvent": {
        "topic": topic, "appId": "app-1", "accountId": account, "itemId": account,
        "occurredAt": "2026-09-01T08:31:36-06:00"}}}).encode()
    return app.test_client().post("/webhooks/crm/jobber", data=body, headers={
        "X-Jobber-Hmac-SHA256": jobber_signature(secret, body),
        "Content-Type": "application/json"})


def installation(runtime: Any) -> tuple[str, bool]:
    with runtime.db.session() as s:
        row = s.get(Installation, ("pipes", "jobber"))
        account = s.get(Account, "pipes")
        return row.status, account.crm_needs_reauth


def test_jobber_finds_the_account_through_the_installation(app: Any, runtime: Any,
                                                           pipes: str) -> None:
    assert jobber(app, "CLIENT_CREATE").status_code == 200  # acknowledged, not acted on
    assert installation(runtime) == ("active", False) and receipts(runtime) == []
    assert jobber(app, "APP_DISCONNECT", secret="wrong-secret").status_code == 403
    assert installation(runtime) == ("active", False)
    for _ in range(2):
        assert jobber(app, "APP_DISCONNECT").status_code == 200
    assert installation(runtime) == ("disconnected", True)
    assert len(receipts(runtime)) == 1


def test_jobber_naming_no_installation_is_refused(app: Any, runtime: Any, pipes: str) -> None:
    assert jobber(app, "APP_DISCONNECT", account="Z2lkOi8vSm9iYmVyL0FjY291bnQvOTk=").status_code \
        == 403
    answer = app.test_client().post("/webhooks/crm/jobber", data=b'{"data": {}}',
                                    content_type="application/json")
    assert answer.status_code == 400
    assert installation(runtime) == ("active", False) and receipts(runtime) == []


# -- the sandbox CRM: verified, acknowledged ---------------------------------------------------


def test_the_sandbox_crm_verifies_and_acknowledges(app: Any, runtime: Any,
                                                   webhook_secret: str) -> None:
    add_account(runtime, sandbox_account("acme", webhook_secret))
    body = b'{"event": "ping"}'
    client = app.test_client()
    signed = client.post("/webhooks/crm/sandbox/acme", data=body,
                         headers={SANDBOX_SIGNATURE: hmac_hex(webhook_secret, body)})
    assert signed.status_code == 200
    forged = client.post("/webhooks/crm/sandbox/acme", data=body,
                         headers={SANDBOX_SIGNATURE: hmac_hex("not-the-secret", body)})
    assert forged.status_code == 403
    assert receipts(runtime) == []
