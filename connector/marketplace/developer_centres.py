"""What Jobber's Developer Center and Housecall Pro's partner settings ask for, as files an admin
copies from: ``app.json`` (the values) and ``README.md`` (where each goes).

Jobber: https://developer.getjobber.com/docs/building_your_app/app_authorization and
https://developer.getjobber.com/docs/using_jobbers_api/setting_up_webhooks. Housecall Pro:
https://docs.housecallpro.com/docs/housecall-public-api/b87d37ae48a0d-authentication
"""

from __future__ import annotations

from typing import Any

from connector.marketplace.listing import APP_DESCRIPTION, APP_NAME, as_json
from connector.marketplace.urls import ACCOUNT_PLACEHOLDER, AppUrls
from crm_adapters.base import CrmAdapter
from crm_adapters.housecallpro import HousecallProCrm
from crm_adapters.jobber import JobberCrm


def _settings(urls: AppUrls, crm: type[CrmAdapter]) -> dict[str, Any]:
    """The app's settings in any developer centre: name, redirect, scopes, webhooks, manage URL."""
    oauth = crm.oauth
    scopes = list((oauth.scopes if oauth is not None else ()) or crm.required_scopes)
    spec, target = crm.webhook, urls.webhook(crm)
    topics = [topic.name for topic in spec.topics] if spec is not None else []
    return {
        "app_name": APP_NAME,
        "description": APP_DESCRIPTION,
        "oauth_redirect_url": urls.oauth_callback(crm) if oauth is not None else None,
        "scopes": scopes,
        "webhook_url": target,
        "webhook_topics": topics,
        "manage_app_url": urls.manage_app(),
    }


def jobber(urls: AppUrls) -> dict[str, str]:
    """``manifests/jobber/``: the Developer Center's app settings."""
    settings = _settings(urls, JobberCrm)
    scope_lines = "\n".join(f"   - `{s}`" for s in settings["scopes"])
    topic_lines = "\n".join(f"   - `{t}`" for t in settings["webhook_topics"])
    readme = f"""# Jobber app

What Jobber's Developer Center asks for, rendered by `textback manifests render` for
{urls.public_url}. `app.json` holds the same values.

## Register it

1. Sign in to the Jobber Developer Center (https://developer.getjobber.com) and create an app.
2. App name: `{settings["app_name"]}`; description: the `description` in `app.json`.
3. OAuth Callback URL: `{settings["oauth_redirect_url"]}`
4. Manage App URL: `{settings["manage_app_url"]}`
5. Scopes (Jobber grants the ones ticked on the app, not per request):
{scope_lines}
6. Webhooks: URL `{settings["webhook_url"]}`, topics:
{topic_lines}
7. Turn refresh token rotation on: textback refreshes under a lock shared by every worker, so a
   rotated token is used once.
8. Save, then copy the app's client id and client secret into the account's
   `crm.credentials` (`client_id`, `client_secret`) and connect each Jobber account with
   `textback accounts install-link ACCOUNT`.
"""
    return {"app.json": as_json(settings), "README.md": readme}


def housecallpro(urls: AppUrls) -> dict[str, str]:
    """``manifests/housecallpro/``: the partner app's and each company's webhook settings."""
    settings = _settings(urls, HousecallProCrm)
    topic_lines = "\n".join(f"   - `{t}`" for t in settings["webhook_topics"])
    scopes = ", ".join(f"`{s}`" for s in settings["scopes"]) or "none (the app's defaults apply)"
    readme = f"""# Housecall Pro app

What Housecall Pro asks for, rendered by `textback manifests render` for {urls.public_url}.
`app.json` holds the same values. Partner apps (OAuth) are for approved integration partners;
a company without one connects with an API key in the account file and needs only step 3.

## Register it

1. Ask Housecall Pro for a partner app named `{settings["app_name"]}` with the OAuth redirect
   URL `{settings["oauth_redirect_url"]}` and the manage-app URL
   `{settings["manage_app_url"]}`. Scopes: {scopes}.
2. Put the client id and client secret it gives you in the account's `crm.credentials`
   (`client_id`, `client_secret`) and connect with `textback accounts install-link ACCOUNT`.
3. Webhooks are set per company (a MAX-plan feature): in the company's webhook settings, use
   `{settings["webhook_url"]}` with `{ACCOUNT_PLACEHOLDER}` replaced by the textback account id,
   send at least these events:
{topic_lines}
   and copy the signing secret into the account's `crm.credentials.webhook_signing_secret`.
"""
    return {"app.json": as_json(settings), "README.md": readme}
