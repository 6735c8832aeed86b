"""The HubSpot developer project: ``hsproject.json`` and the app's ``*-hsmeta.json`` components.

Laid out as HubSpot's component templates for platform 2026.03 are
(https://github.com/HubSpot/hubspot-project-components, folder ``2026.03``): the app in
``src/app/app-hsmeta.json``, each feature in its own folder under ``src/app/``. Field reference:
https://developers.hubspot.com/docs/apps/developer-platform/build-apps/app-configuration and
https://developers.hubspot.com/docs/apps/developer-platform/add-features/configure-webhooks
"""

from __future__ import annotations

from typing import Any

from connector.marketplace.listing import APP_DESCRIPTION, APP_NAME, Listing, as_json
from connector.marketplace.urls import AppUrls
from crm_adapters.base import CrmAdapter
from crm_adapters.hubspot import HubSpotCrm, app_events, workflow_actions

#: The newest generally available platform version (HubSpot's parser calls it the latest
#: supported one); betas are left alone.
PLATFORM_VERSION = "2026.03"
APP_UID = "textback_app"
WEBHOOKS_UID = "textback_webhooks"
#: How many webhook requests HubSpot may have open to us at once (its template's value).
MAX_CONCURRENT_WEBHOOKS = 10


#: What the app's features send with, beyond the CRM records: app events, and completing the
#: workflow action's runs.
FEATURE_SCOPES = (*app_events.SCOPES, *workflow_actions.SCOPES)


def scopes(crm: type[CrmAdapter] = HubSpotCrm) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The required and optional scopes the code asks HubSpot for: the OAuth install's when it
    declares one, else what the adapter requires of a private app; with what the app's
    features need (the install must ask for those too)."""
    spec = crm.oauth
    declared = tuple(spec.scopes or crm.required_scopes) if spec is not None \
        else tuple(crm.required_scopes)
    optional: tuple[str, ...] = tuple(getattr(spec, "optional_scopes", ()) or ())
    required = tuple(dict.fromkeys((*declared, *FEATURE_SCOPES)))
    return required, optional


def app_component(urls: AppUrls, listing: Listing) -> dict[str, Any]:
    """``src/app/app-hsmeta.json``: a marketplace OAuth app."""
    required, optional = scopes()
    return {
        "uid": APP_UID,
        "type": "app",
        "config": {
            "name": APP_NAME,
            "description": APP_DESCRIPTION,
            "distribution": "marketplace",
            "auth": {
                "type": "oauth",
                "redirectUrls": [urls.oauth_callback(HubSpotCrm)],
                "requiredScopes": list(required),
                "optionalScopes": list(optional),
                "conditionallyRequiredScopes": [],
            },
            "permittedUrls": {"fetch": [urls.public_url], "iframe": [], "img": []},
            "support": {
                "supportEmail": listing.support_email,
                "documentationUrl": listing.documentation_url,
                "supportUrl": listing.support_url,
            },
        },
    }


def webhooks_component(urls: AppUrls) -> dict[str, Any] | None:
    """``src/app/webhooks/webhooks-hsmeta.json``: exactly the events the adapter acts on."""
    spec, target = HubSpotCrm.webhook, urls.webhook(HubSpotCrm)
    if spec is None or target is None or not spec.topics:
        return None
    subscriptions = []
    for topic in spec.topics:
        entry: dict[str, Any] = {"subscriptionType": topic.name}
        if topic.object_type:
            entry["objectType"] = topic.object_type
        if topic.property_name:
            entry["propertyName"] = topic.property_name
        entry["active"] = True
        subscriptions.append(entry)
    return {
        "uid": WEBHOOKS_UID,
        "type": "webhooks",
        "config": {
            "settings": {"targetUrl": target, "maxConcurrentRequests": MAX_CONCURRENT_WEBHOOKS},
            "subscriptions": {"crmObjects": subscriptions},
        },
    }


def project(urls: AppUrls, listing: Listing) -> dict[str, str]:
    """Every file of the project, by path inside ``manifests/hubspot/``."""
    files = {
        "hsproject.json": as_json({"name": APP_NAME, "srcDir": "src",
                                   "platformVersion": PLATFORM_VERSION}),
        "src/app/app-hsmeta.json": as_json(app_component(urls, listing)),
    }
    hooks = webhooks_component(urls)
    if hooks is not None:
        files["src/app/webhooks/webhooks-hsmeta.json"] = as_json(hooks)
    action = workflow_actions.definition(urls.build("hubspot_actions.send_text"),
                                         urls.build("hubspot_actions.options"))
    files["src/app/workflow-actions/send-text-hsmeta.json"] = as_json(
        {"uid": workflow_actions.UID, "type": "workflow-action", "config": action})
    for event_type in app_events.EVENT_TYPES.values():
        path = f"src/app/app-events/{event_type.kind.replace('_', '-')}-hsmeta.json"
        files[path] = as_json(event_type.component())
    files["README.md"] = _readme(urls, hooks)
    return files


def _readme(urls: AppUrls, hooks: dict[str, Any] | None) -> str:
    required, optional = scopes()
    scope_lines = "\n".join(f"- `{s}`" for s in required) or "- none"
    if optional:
        scope_lines += "\n\nOptional:\n\n" + "\n".join(f"- `{s}`" for s in optional)
    event_lines = "\n".join(
        f"- {t.name} (`{t.uid}`): " + ", ".join(f"`{p.name}`" for p in t.properties)
        for t in app_events.EVENT_TYPES.values())
    if hooks is None:
        webhook_text = "The app subscribes to no webhooks."
    else:
        target = hooks["config"]["settings"]["targetUrl"]
        topics = "\n".join(
            f"- `{s['subscriptionType']}` on `{s.get('objectType', '')}`"
            + (f" (`{s['propertyName']}`)" if "propertyName" in s else "")
            for s in hooks["config"]["subscriptions"]["crmObjects"])
        webhook_text = f"Webhooks go to `{target}`:\n\n{topics}"
        if "ACCOUNT_ID" in target:
            webhook_text += ("\n\nThe URL names one textback account (`ACCOUNT_ID`): an app that "
                             "serves one HubSpot account puts that account's id there.")
    return f"""# HubSpot app

A HubSpot developer project (platform {PLATFORM_VERSION}) for a marketplace app with OAuth,
rendered by `textback manifests render` for {urls.public_url}.

## Register it

1. Install the HubSpot CLI (`npm install -g @hubspot/cli`) and sign in to your developer
   account with `hs account auth`.
2. From this folder, run `hs project upload`. HubSpot builds the project and lists the app
   among your developer account's projects.
3. Copy the app's client id and client secret from its authentication settings into textback's
   settings (see the README's HubSpot section), then restart textback.
4. Install the app on a test account from its install URL, then connect textback to it.

OAuth redirect URL: `{urls.oauth_callback(HubSpotCrm)}`

Scopes the app requires (exactly what textback asks for):

{scope_lines}

{webhook_text}

Workflow action "Send a text with textback": `{urls.build("hubspot_actions.send_text")}`
(its template and from-number choices come from
`{urls.build("hubspot_actions.options")}`).

App events on the contact timeline (HubSpot must approve the app for app events; workflows
can start from each):

{event_lines}
"""
