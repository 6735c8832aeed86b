"""The HubSpot workflow action "Send a text with textback": its definition, the requests HubSpot
sends for it, and the callback that completes a blocked run.

The definition is declared here once; ``textback manifests render`` writes it into the developer
project (``src/app/workflow-actions/``) with our URLs. When a workflow runs the action, HubSpot
posts ``{"callbackId", "origin": {"portalId", ...}, "object": {"objectId", "objectType",
"properties"}, "inputFields": {...}}`` to the action URL, signed like webhooks (v3, see
:mod:`.webhooks`). The answer's ``outputFields`` are what later steps branch on; an answer of
``{"outputFields": {"hs_execution_state": "BLOCK"}}`` pauses the run until
``POST /automation/v4/actions/callbacks/{callbackId}/complete`` brings the outputs.
Options of a select input come from its ``optionsUrl``: HubSpot posts ``{"origin":
{"portalId"}, "inputFieldName", "inputFields", "fetchOptions"}`` and takes ``{"options":
[{"label", "value", "description"}]}``.
https://developers.hubspot.com/docs/apps/developer-platform/add-features/custom-workflow-actions
https://developers.hubspot.com/docs/api-reference/automation-actions-v4-v4/custom-action-guide
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from connector.kernel import safe_json
from connector.kernel.errors import MalformedWebhookError
from connector.kernel.http import DEFAULT_TIMEOUT, WebhookRequest
from crm_adapters.hubspot.client import api_error, transport_error

UID = "textback_send_text"
#: The scope completing a blocked run needs.
SCOPES = ("automation",)
#: The inputs, by name.
TEMPLATE, MESSAGE, BUSINESS_NUMBER, COOLDOWN = "template", "message", "business_number", "cooldown"
#: The contact properties HubSpot sends with each run: where the phone number is.
PHONE_PROPERTIES = ("textback_phone_e164", "mobilephone", "phone")
#: ``status`` output values.
STATUSES = (("sent", "Sent"), ("suppressed", "Not sent (see reason)"), ("failed", "Failed"))
#: How long HubSpot waits for the callback of a blocked run (ISO 8601).
BLOCK_FOR = "P1D"


def definition(action_url: str, options_url: str) -> dict[str, Any]:
    """The ``workflow-action`` component's ``config``."""
    static = ["STATIC_VALUE"]
    return {
        "actionUrl": action_url,
        "isPublished": True,
        "supportedClients": [{"client": "WORKFLOWS"}],
        "inputFields": [
            {"typeDefinition": {"name": TEMPLATE, "type": "enumeration", "fieldType": "select",
                                "optionsUrl": options_url},
             "supportedValueTypes": static, "isRequired": False},
            {"typeDefinition": {"name": MESSAGE, "type": "string", "fieldType": "textarea"},
             "supportedValueTypes": ["STATIC_VALUE", "OBJECT_PROPERTY"], "isRequired": False},
            {"typeDefinition": {"name": BUSINESS_NUMBER, "type": "enumeration",
                                "fieldType": "select", "optionsUrl": options_url},
             "supportedValueTypes": static, "isRequired": False},
            {"typeDefinition": {"name": COOLDOWN, "type": "enumeration", "fieldType": "select",
                                "options": [
                                    {"value": "respect", "label": "Skip if texted recently"},
                                    {"value": "ignore", "label": "Send anyway"}]},
             "supportedValueTypes": static, "isRequired": True},
        ],
        "outputFields": [
            {"typeDefinition": {"name": "status", "type": "enumeration", "fieldType": "select",
                                "options": [{"value": v, "label": label}
                                            for v, label in STATUSES]},
             "supportedValueTypes": static},
            {"typeDefinition": {"name": "reason", "type": "string", "fieldType": "text"},
             "supportedValueTypes": static},
        ],
        "objectRequestOptions": {"properties": list(PHONE_PROPERTIES)},
        "labels": {"en": {
            "actionName": "Send a text with textback",
            "actionDescription": "Texts the contact from your business number through textback, "
                                 "which honours opt-outs, quiet hours and landlines.",
            "actionCardContent": "Text the contact with textback",
            "inputFieldLabels": {TEMPLATE: "Template", MESSAGE: "Or your own message",
                                 BUSINESS_NUMBER: "From number", COOLDOWN: "Recently texted"},
            "inputFieldDescriptions": {
                TEMPLATE: "One of your textback templates.",
                MESSAGE: "Used when no template is chosen; personalise it with contact data "
                         "or {first_name} and {business_name}.",
                BUSINESS_NUMBER: "Your number the text comes from (default: the first one).",
                COOLDOWN: "Skip contacts textback texted within the account's cooldown.",
            },
            "outputFieldLabels": {"status": "Text status", "reason": "Why not sent"},
        }},
        "objectTypes": ["CONTACT"],
    }


@dataclass(frozen=True)
class Execution:
    """One run of the action, as HubSpot asked for it."""

    callback_id: str
    portal_id: str
    contact_id: str
    inputs: Mapping[str, str]
    properties: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Execution(callback_id={self.callback_id!r}, portal_id={self.portal_id!r})"


def _json_object(request: WebhookRequest) -> dict[str, Any]:
    data = safe_json.loads(request.body, what="hubspot: workflow action body")
    if not isinstance(data, dict):
        raise MalformedWebhookError("hubspot: workflow action body is not a JSON object")
    return data


def portal_of(request: WebhookRequest) -> str:
    """The HubSpot account (portal) a request comes from: ``origin.portalId``."""
    origin = _json_object(request).get("origin")
    portal = origin.get("portalId") if isinstance(origin, dict) else None
    if portal in (None, ""):
        raise MalformedWebhookError("hubspot: workflow action request without origin.portalId")
    return str(portal)


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def read_execution(request: WebhookRequest) -> Execution:
    """The run a verified request asks for; :class:`MalformedWebhookError` when a field the
    run needs is missing."""
    data = _json_object(request)
    obj = data.get("object") if isinstance(data.get("object"), dict) else {}
    callback = str(data.get("callbackId") or "")
    contact = str(obj.get("objectId") or "") if isinstance(obj, dict) else ""
    if not callback or not contact:
        raise MalformedWebhookError("hubspot: workflow action request without callbackId or "
                                    "object.objectId")
    if isinstance(obj, dict) and str(obj.get("objectType") or "CONTACT").upper() != "CONTACT":
        raise MalformedWebhookError("hubspot: the workflow action runs on contacts only")
    return Execution(callback_id=callback, portal_id=portal_of(request), contact_id=contact,
                     inputs=_strings(data.get("inputFields")),
                     properties=_strings(obj.get("properties") if isinstance(obj, dict) else {}))


def options_field(request: WebhookRequest) -> str:
    """Which input an options request is for (``inputFieldName``)."""
    return str(_json_object(request).get("inputFieldName") or "")


def complete(session: requests.Session, base_url: str, token: str, callback_id: str,
             outputs: Mapping[str, str], *, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
             secrets: Sequence[str] = ()) -> None:
    """Finish a blocked run with ``outputs``."""
    operation = "workflow action callback"
    url = f"{base_url}/automation/v4/actions/callbacks/{quote(callback_id, safe='')}/complete"
    try:
        response = session.post(url, json={"outputFields": dict(outputs)}, timeout=timeout,
                                headers={"Authorization": f"Bearer {token}"},
                                allow_redirects=False)
    except requests.RequestException as exc:
        raise transport_error(exc, operation=operation, ambiguous=False) from None
    if response.status_code >= 300:
        raise api_error(response.status_code, response.content, response.headers,
                        operation=operation, ambiguous=False, secrets=(token, *secrets))
