"""CRM webhooks: ``POST /webhooks/crm/<crm>`` and ``POST /webhooks/crm/<crm>/<account_id>``.

Jobber posts every installation's events to one app-wide URL and names its own account id in the
payload, which maps to our account through the installation. Housecall Pro webhooks are set up
per company, so their URL carries our account id (``/webhooks/crm/<crm>/<account>``, because
Housecall Pro's payload names no account we can verify against). Every delivery is verified
before anything is stored, de-duplicated, and answered at once (Jobber allows 1 s).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app
from sqlalchemy.exc import IntegrityError

from connector.core import safe_json
from connector.core.errors import (
    MalformedWebhookError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.jobs.conversation import lead_stage_changed, task_completed_in_crm
from connector.runtime import Runtime
from connector.storage.installations import DbTokenStore, installation_for_external_id
from connector.storage.models import Account, WebhookReceipt
from connector.web.health import count
from connector.web.webhooks import webhook_request
from crm_adapters.jobber.webhooks import parse_webhook as parse_jobber_webhook

bp = Blueprint("crm_webhooks", __name__)
log = logging.getLogger(__name__)


def _text(body: str, status: int) -> Response:
    return Response(body + "\n", status=status, content_type="text/plain")


def _first_delivery(runtime: Runtime, account_id: str, crm: str, key: str) -> bool:
    try:
        with runtime.db.session() as s:
            s.add(WebhookReceipt(account_id=account_id, provider=crm, kind="crm",
                                 event_id=key[:200]))
    except IntegrityError:
        return False
    return True


@bp.post("/webhooks/crm/jobber")
def jobber_webhook() -> Response:
    """Jobber: verify with the app's client secret, de-duplicate, act on APP_DISCONNECT."""
    runtime: Runtime = current_app.extensions["textback"]
    req = webhook_request(runtime)
    try:
        event = parse_jobber_webhook(req)  # only to find whose secret to check it against
    except MalformedWebhookError:
        count("textback_webhooks_total", provider="jobber", kind="crm", status="400")
        return _text("malformed webhook", 400)
    account_id = installation_for_external_id(runtime.db, "jobber", event.account_id)
    if account_id is None:
        count("textback_webhooks_total", provider="jobber", kind="crm", status="403")
        return _text("unknown installation", 403)
    with runtime.db.session() as s:
        account = s.get(Account, account_id)
        assert account is not None  # noqa: S101 - installations cascade with accounts
        adapter = runtime.crm_for(account)
    try:
        adapter.verify_request(req)
    except WebhookVerificationError:
        count("textback_webhooks_total", provider="jobber", kind="crm", status="403")
        return _text("forbidden", 403)
    if _first_delivery(runtime, account_id, "jobber", event.dedupe_key):
        if event.topic == "APP_DISCONNECT":
            DbTokenStore(runtime.db, runtime.box, account_id, "jobber").mark_disconnected(
                "Jobber APP_DISCONNECT webhook")
            with runtime.db.session() as s:
                stored = s.get(Account, account_id)
                if stored is not None:
                    stored.crm_needs_reauth = True
            log.info("jobber disconnected account=%s", account_id)
    count("textback_webhooks_total", provider="jobber", kind="crm", status="200")
    return _text("ok", 200)


@bp.post("/webhooks/crm/housecallpro/<account_id>")
def housecallpro_webhook(account_id: str) -> Response:
    """Housecall Pro: verify ``Api-Signature`` with the account's signing secret, de-duplicate.

    Lead and customer events are recorded once; a converted lead (to an estimate or a job) counts
    as the lead moving past its first stage. Other resources answer 200 and are not stored.
    """
    runtime: Runtime = current_app.extensions["textback"]
    with runtime.db.session() as s:
        account = s.get(Account, account_id)
        if account is None or account.crm_kind != "housecallpro":
            abort(404)
        adapter = runtime.crm_for(account)
    req = webhook_request(runtime)
    try:
        adapter.verify_request(req)
        event = adapter.parse_webhook(req)  # type: ignore[attr-defined]
    except WebhookVerificationError:
        count("textback_webhooks_total", provider="housecallpro", kind="crm", status="403")
        return _text("forbidden", 403)
    except MalformedWebhookError:
        count("textback_webhooks_total", provider="housecallpro", kind="crm", status="400")
        return _text("malformed webhook", 400)
    except UnsupportedEventError:  # authentic, but nothing we act on (jobs, invoices ...)
        count("textback_webhooks_total", provider="housecallpro", kind="crm", status="200")
        return _text("ok", 200)
    first = _first_delivery(runtime, account_id, "housecallpro", event.dedupe_key)
    if first and event.event == "lead.converted":
        # Converted to an estimate or a job: the lead moved past its first stage.
        lead_stage_changed(runtime, account_id, "housecallpro", event.object_id, "converted")
    count("textback_webhooks_total", provider="housecallpro", kind="crm", status="200")
    return _text("ok", 200)


@bp.post("/webhooks/crm/hubspot/<account_id>")
def hubspot_webhook(account_id: str) -> Response:
    """HubSpot: signature v3 with the app's client secret; a completed task is a human response.

    HubSpot posts a JSON array of events; two are acted on: a task's ``hs_task_status`` changing
    to COMPLETED (a human response), and a deal we made moving to another ``dealstage`` (the lead
    moved past its first stage: a saved conversation). Subscribe the app to
    ``object.propertyChange`` on tasks (``hs_task_status``) and deals (``dealstage``).
    https://developers.hubspot.com/docs/api/webhooks
    """
    runtime: Runtime = current_app.extensions["textback"]
    with runtime.db.session() as s:
        account = s.get(Account, account_id)
        if account is None or account.crm_kind != "hubspot":
            abort(404)
        adapter = runtime.crm_for(account)
    req = webhook_request(runtime)
    try:
        adapter.verify_request(req)
        events = safe_json.loads(req.body, what="hubspot: webhook body")
        if not isinstance(events, list):
            raise MalformedWebhookError("hubspot: webhook body is not a JSON array")
    except WebhookVerificationError:
        count("textback_webhooks_total", provider="hubspot", kind="crm", status="403")
        return _text("forbidden", 403)
    except MalformedWebhookError as exc:
        log.warning("malformed webhook provider=hubspot: %s", exc)
        count("textback_webhooks_total", provider="hubspot", kind="crm", status="400")
        return _text("malformed webhook", 400)
    for event in events:
        if not isinstance(event, dict) or not _first_delivery(
                runtime, account_id, "hubspot", str(event.get("eventId", ""))):
            continue
        if (event.get("propertyName") == "hs_task_status"
                and event.get("propertyValue") == "COMPLETED" and event.get("objectId")):
            task_completed_in_crm(runtime, account_id, "hubspot", str(event["objectId"]))
        elif event.get("propertyName") == "dealstage" and event.get("objectId"):
            lead_stage_changed(runtime, account_id, "hubspot", str(event["objectId"]),
                               str(event.get("propertyValue") or ""))
    count("textback_webhooks_total", provider="hubspot", kind="crm", status="200")
    return _text("ok", 200)
