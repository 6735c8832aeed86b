"""HubSpot's workflow action "Send a text with textback": ``POST /hubspot/workflow-actions/send-text``
and its options URL, ``POST /hubspot/workflow-actions/send-text/options``.

One URL for every installed HubSpot account: the request's ``origin.portalId`` leads to ours
through the OAuth installation, whose app secret checks the v3 signature (403 for an unknown
portal or a bad signature, nothing stored; 400 for a body that cannot be read). A run that sends
nothing (opted out, quiet hours, landline, cooldown, a mistake in the action's settings) is
answered at once with ``status`` and ``reason``; one that sends is answered "wait" (HubSpot's
BLOCK) and completed through HubSpot's callback API once the carrier has the text, so a slow
carrier never holds HubSpot's request. See :mod:`connector.jobs.workflow_text`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify

from connector.jobs import workflow_text
from connector.jobs.compose import account_texts
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
from connector.kernel.http import WebhookRequest
from connector.kernel.phone import region_of, to_e164
from connector.runtime import Runtime
from connector.settings.account_settings import account_settings
from connector.storage.installations import installation_for_external_id
from connector.storage.models import Account
from connector.web.health import count
from connector.web.webhooks import PARSE_ERRORS, webhook_request
from crm_adapters.hubspot import workflow_actions as actions

bp = Blueprint("hubspot_actions", __name__)
T = TypeVar("T")
log = logging.getLogger(__name__)

ACTION_PATH = "/hubspot/workflow-actions/send-text"
OPTIONS_PATH = ACTION_PATH + "/options"
CRM = "hubspot"
#: Texts that answer a keyword, not ones a workflow should send.
COMPLIANCE_TEXTS = frozenset({"opt_out_confirmation", "opt_in_confirmation", "help"})


def _refuse(status: int, body: str) -> Response:
    count("textback_webhooks_total", provider=CRM, kind="workflow_action", status=str(status))
    return Response(body + "\n", status=status, content_type="text/plain")


def _verified(runtime: Runtime, req: WebhookRequest) -> Account | Response:
    """The account whose HubSpot install sent ``req``, once its signature checks out."""
    try:
        portal = actions.portal_of(req)
    except (MalformedWebhookError, *PARSE_ERRORS):
        return _refuse(400, "malformed request")
    account_id = installation_for_external_id(runtime.db, CRM, portal)
    account = runtime.account(account_id) if account_id else None
    if account is None or account.crm_kind != CRM:
        log.warning("workflow action from a portal with no installation")
        return _refuse(403, "unknown installation")
    try:
        runtime.crm_for(account).verify_request(req)
    except WebhookVerificationError:
        log.warning("workflow action signature refused account=%s", account.id)
        return _refuse(403, "forbidden")
    return account


def _verified_read(read: Callable[[WebhookRequest], T]) -> tuple[Runtime, Account, T] | Response:
    """The request's account (verified) and what ``read`` makes of its body, or the refusal."""
    runtime: Runtime = current_app.extensions["textback"]
    req = webhook_request(runtime)
    account = _verified(runtime, req)
    if isinstance(account, Response):
        return account
    try:
        return runtime, account, read(req)
    except (MalformedWebhookError, *PARSE_ERRORS) as exc:
        log.warning("malformed workflow action request account=%s: %s", account.id,
                    type(exc).__name__)
        return _refuse(400, "malformed request")


def _number(runtime: Runtime, account: Account, execution: actions.Execution) -> str | None:
    """The contact's number: from the properties HubSpot sent (read in the region of the
    account's first number), else the one textback linked the contact to."""
    numbers = account_settings(account).carrier.numbers
    region = (region_of(numbers[0]) if numbers else None) or "US"
    for name in actions.PHONE_PROPERTIES:
        number = to_e164(execution.properties.get(name), region)
        if number:
            return number
    with runtime.db.session() as s:
        return workflow_text.number_of_contact(s, account.id, CRM, execution.contact_id)


@bp.post(ACTION_PATH)
def send_text() -> Response | tuple[Response, int]:
    """Run the action for one enrolled contact."""
    read = _verified_read(actions.read_execution)
    if isinstance(read, Response):
        return read
    runtime, account, execution = read
    inputs = execution.inputs
    result = workflow_text.start(runtime, account.id, workflow_text.TextRequest(
        crm=CRM, callback_id=execution.callback_id, contact_id=execution.contact_id,
        number=_number(runtime, account, execution),
        template=inputs.get(actions.TEMPLATE) or None,
        message=inputs.get(actions.MESSAGE) or None,
        business_number=to_e164(inputs.get(actions.BUSINESS_NUMBER)) or None,
        respect_cooldown=inputs.get(actions.COOLDOWN, "respect") != "ignore"))
    count("textback_webhooks_total", provider=CRM, kind="workflow_action", status="200")
    if isinstance(result, workflow_text.Outcome):
        return jsonify({"outputFields": result.outputs()})
    runtime.enqueuer.submit(lambda: runtime.jobs.enqueue_workflow_text(result))
    return jsonify({"outputFields": {"hs_execution_state": "BLOCK",
                                     "hs_expiration_duration": actions.BLOCK_FOR}})


@bp.post(OPTIONS_PATH)
def options() -> Response:
    """The choices of the template and from-number inputs, from the account's settings."""
    read = _verified_read(actions.options_field)
    if isinstance(read, Response):
        return read
    _, account, field = read
    found: list[dict[str, Any]] = []
    if field == actions.TEMPLATE:
        for name, variants in sorted(account_texts(account).items()):
            if name in COMPLIANCE_TEXTS:
                continue
            sample = variants.get("en") or next(iter(variants.values()), "")
            found.append({"label": name.replace("_", " ").capitalize(), "value": name,
                          "description": sample[:120]})
    elif field == actions.BUSINESS_NUMBER:
        found = [{"label": n, "value": n} for n in account_settings(account).carrier.numbers]
    return jsonify({"options": found, "searchable": False})
