"""CRM webhooks: one view for every CRM, ``POST /webhooks/crm/<crm>[/<account_id>]``.

Each adapter declares how its URL names the account (:attr:`CrmAdapter.webhook`): a per-account
URL carries our account id (HubSpot, Housecall Pro); an app-wide one (Jobber) carries none, and
the delivery names the CRM's own account, which leads to ours through the OAuth installation.

The view resolves the account (404 for a URL naming no account of that CRM; 403 for an app-wide
delivery naming no installation, as there is no secret to check it with), verifies the signature
(403, nothing stored), reads the normalised events (400 for a payload that cannot be read), keeps
one receipt per event id so a redelivery is acknowledged without acting twice, and hands each
event to the one handler for its type. Authentic deliveries we do not act on are answered 200.
CRMs want a quick answer (Jobber allows 1 s): every handler is a few database writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, current_app
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from connector.jobs.conversation import lead_stage_changed, task_completed_in_crm
from connector.kernel.errors import (
    MalformedWebhookError,
    ProviderAuthError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.runtime import Runtime
from connector.storage.installations import DbTokenStore, installation_for_external_id
from connector.storage.models import Account, WebhookReceipt
from connector.web.health import count
from connector.web.webhooks import PARSE_ERRORS, webhook_request
from crm_adapters import CRMS
from crm_adapters.base import (
    APP_WIDE,
    AppDisconnected,
    CrmAdapter,
    CrmEvent,
    LeadStageChanged,
    TaskCompleted,
)

bp = Blueprint("crm_webhooks", __name__)
log = logging.getLogger(__name__)


# -- what each event does ----------------------------------------------------------------------


def _task_completed(runtime: Runtime, account_id: str, crm: str, event: TaskCompleted) -> None:
    """A completed task is a human response: settle the call it belongs to."""
    task_completed_in_crm(runtime, account_id, crm, event.task_id)


def _lead_stage_changed(runtime: Runtime, account_id: str, crm: str,
                        event: LeadStageChanged) -> None:
    """A lead past its first stage is a saved conversation: note it on the caller's call."""
    lead_stage_changed(runtime, account_id, crm, event.lead_id, event.stage)


def _app_disconnected(runtime: Runtime, account_id: str, crm: str,
                      event: AppDisconnected) -> None:
    """The CRM uninstalled our app: stop calling it and ask for a new install."""
    try:
        DbTokenStore(runtime.db, runtime.box, account_id, crm).mark_disconnected(
            f"{crm} said the app was disconnected (webhook)")
    except ProviderAuthError:
        pass  # no installation stored: nothing to disconnect
    with runtime.db.session() as s:
        stored = s.get(Account, account_id)
        if stored is not None:
            stored.crm_needs_reauth = True
    log.info("crm disconnected crm=%s account=%s", crm, account_id)


#: The one handler of each event type. A new event type adds its class in ``crm_adapters.base``
#: and a line here.
HANDLERS: dict[type[CrmEvent], Callable[[Runtime, str, str, Any], None]] = {
    TaskCompleted: _task_completed,
    LeadStageChanged: _lead_stage_changed,
    AppDisconnected: _app_disconnected,
}


# -- the view ------------------------------------------------------------------------------------


def _answer(crm: str, status: int, body: str) -> Response:
    count("textback_webhooks_total", provider=crm, kind="crm", status=str(status))
    return Response(body + "\n", status=status, content_type="text/plain")


@bp.post("/webhooks/crm/<crm>")
@bp.post("/webhooks/crm/<crm>/<account_id>")
def crm_webhook(crm: str, account_id: str | None = None) -> Response:
    """Every CRM webhook: resolve the account, verify, parse, de-duplicate, act, answer."""
    runtime: Runtime = current_app.extensions["textback"]
    cls = CRMS.get(crm)
    spec = cls.webhook if cls is not None else None
    if spec is None or (account_id is None and not spec.takes_app_wide_url) or (
            account_id is not None and spec.url == APP_WIDE):
        # Label only CRMs we know: a stranger's URL must not mint a new time series.
        count("textback_webhooks_total", provider=crm if cls else "unknown", kind="crm",
              status="404")
        abort(404)
    req = webhook_request(runtime)
    if account_id is None:
        assert spec.account_of is not None  # noqa: S101 - checked above
        try:
            external_id = spec.account_of(req)  # only to find whose secret to check it with
        except MalformedWebhookError as exc:
            log.warning("malformed webhook crm=%s: %s", crm, exc)
            return _answer(crm, 400, "malformed webhook")
        account_id = installation_for_external_id(runtime.db, crm, external_id)
        if account_id is None:
            return _answer(crm, 403, "unknown installation")
    assert account_id is not None  # noqa: S101 - a per-account URL names it, else resolved above
    account = runtime.account(account_id)
    if account is None or account.crm_kind != crm:
        count("textback_webhooks_total", provider=crm, kind="crm", status="404")
        abort(404)
    adapter: CrmAdapter = runtime.crm_for(account)
    try:
        adapter.verify_request(req)
    except WebhookVerificationError:
        log.warning("webhook signature refused crm=%s account=%s", crm, account_id)
        return _answer(crm, 403, "forbidden")
    try:
        events = adapter.parse_webhook(req)
    except UnsupportedEventError:
        events = []  # authentic, but nothing we act on
    except MalformedWebhookError as exc:
        log.warning("malformed webhook crm=%s account=%s: %s", crm, account_id, exc)
        return _answer(crm, 400, "malformed webhook")
    except PARSE_ERRORS as exc:
        log.warning("malformed webhook crm=%s account=%s: payload cannot be read (%s)", crm,
                    account_id, type(exc).__name__)
        return _answer(crm, 400, "malformed webhook")
    for event in events:
        _dispatch(runtime, account_id, crm, event)
    return _answer(crm, 200, "ok")


def _dispatch(runtime: Runtime, account_id: str, crm: str, event: CrmEvent) -> None:
    """Act on ``event`` unless an earlier delivery did. Should acting fail, the receipt goes
    again (the CRM retries the 500 and the retry acts)."""
    handler = HANDLERS.get(type(event))
    key = event.event_id[:200]
    if handler is None or not _first_delivery(runtime, account_id, crm, key):
        return
    try:
        handler(runtime, account_id, crm, event)
    except Exception:
        _forget(runtime, account_id, crm, key)
        raise


def _first_delivery(runtime: Runtime, account_id: str, crm: str, key: str) -> bool:
    """Store the event's receipt; False when one was stored before (a redelivery)."""
    try:
        with runtime.db.session() as s:
            s.add(WebhookReceipt(account_id=account_id, provider=crm, kind="crm", event_id=key))
    except IntegrityError:
        return False
    return True


def _forget(runtime: Runtime, account_id: str, crm: str, key: str) -> None:
    """Remove a receipt whose event was not acted on; best effort."""
    try:
        with runtime.db.session() as s:
            s.execute(delete(WebhookReceipt).where(
                WebhookReceipt.account_id == account_id, WebhookReceipt.provider == crm,
                WebhookReceipt.kind == "crm", WebhookReceipt.event_id == key))
    except Exception:  # noqa: BLE001 - the handler's error is the one to report
        log.exception("could not remove a CRM webhook receipt; a redelivery will be ignored")
