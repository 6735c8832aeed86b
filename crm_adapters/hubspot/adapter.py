"""The HubSpot CRM adapter: :class:`HubSpotCrm` and the API calls each operation makes."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar

import requests
from marshmallow import Schema, ValidationError, fields, validates_schema

from connector.kernel.errors import ConfigurationError
from connector.kernel.http import DEFAULT_TIMEOUT, WebhookRequest, new_session
from connector.kernel.ratelimit import RateLimiter, portal_key
from crm_adapters import oauth_flow
from crm_adapters.base import (
    PER_ACCOUNT,
    AppEvent,
    CallLog,
    CrmAdapter,
    CrmContact,
    CrmEvent,
    LeadSpec,
    MessageLog,
    OAuthTokens,
    TaskSpec,
    TokenStore,
    WebhookSpec,
)
from crm_adapters.catalog import ConnectionCheck, CrmChoices
from crm_adapters.hubspot import (
    activities,
    app_events,
    deals,
    lookups,
    oauth,
    webhooks,
    workflow_actions,
)
from crm_adapters.hubspot.catalog import HubSpotCatalog
from crm_adapters.hubspot.client import PROVIDER, HubSpotApi
from crm_adapters.hubspot.contacts import ContactFinder
from crm_adapters.hubspot.oauth import APP_ONLY_SCOPES, ENDPOINTS, REFRESH_SKEW_SECONDS
from crm_adapters.hubspot.optout import OptOutMarker
from crm_adapters.oauth_tokens import TokenKeeper

_SEARCH = "POST /crm/v3/objects/contacts/search"
_PROPERTY = "POST /crm/v3/properties/contacts"
_UPSERT = "POST /crm/v3/objects/contacts/batch/upsert"

#: The HubSpot requests each adapter operation makes, in order, on the success path. The
#: property create happens once per adapter instance (per account and process), before its
#: first upsert; a 409 conflict on the upsert may add ``POST .../contacts/batch/read``.
API_CALLS: Mapping[str, tuple[str, ...]] = {
    "find_or_create_contact:returning": (_SEARCH,),
    "find_or_create_contact:new": (_SEARCH, _UPSERT),
    "find_or_create_contact:new_first_in_process": (_SEARCH, _PROPERTY, _UPSERT),
    "log_call": ("POST /crm/v3/objects/calls",),
    "log_message": ("POST /crm/v3/objects/communications",),
    "create_task": ("POST /crm/v3/objects/tasks",),
    "append_to_task": (
        "GET /crm/v3/objects/tasks/{taskId}",
        "PATCH /crm/v3/objects/tasks/{taskId}",
    ),
    "set_pipeline_stage:new": ("POST /crm/v3/objects/deals",),
    "set_pipeline_stage:open": ("GET /crm/v3/objects/deals/{dealId}",),
    "set_pipeline_stage:closed": (
        "GET /crm/v3/objects/deals/{dealId}",
        "POST /crm/v3/objects/deals",
    ),
}


#: Caller kinds for :func:`api_calls_per_missed_call`.
CALLER_KINDS = ("new", "in_crm", "linked")


def api_calls_per_missed_call(caller: str, *, first_in_process: bool = False) -> int:
    """HubSpot requests for one missed call as ``connector.jobs.crm_sync`` syncs it (text sent).

    ``caller`` is ``"new"`` (unknown to HubSpot: search, upsert, new deal), ``"in_crm"`` (a
    HubSpot contact the connector has no link for yet: search, new deal) or ``"linked"`` (the
    connector's ``crm_links`` hold the contact and an open deal: no contact call, one deal
    read). Every kind then logs the call, the text-back and creates the task.
    ``first_in_process`` adds the one-off unique-property create of a new adapter instance.
    """
    if caller == "new":
        suffix = "new_first_in_process" if first_in_process else "new"
        steps = ["find_or_create_contact:" + suffix, "set_pipeline_stage:new"]
    elif caller == "in_crm":
        steps = ["find_or_create_contact:returning", "set_pipeline_stage:new"]
    elif caller == "linked":
        steps = ["set_pipeline_stage:open"]
    else:
        raise ValueError(f"caller must be one of {CALLER_KINDS}")
    steps += ["log_call", "log_message", "create_task"]
    return sum(len(API_CALLS[step]) for step in steps)


class HubSpotCredentials(Schema):
    """``crm.credentials`` for HubSpot: one of two ways to connect.

    - A private app (self-hosting): ``access_token`` is its token; ``client_secret`` is the app's
      secret, needed only to verify the webhooks HubSpot sends.
    - The marketplace app: ``client_id`` names it and the tokens come from its OAuth install
      (``/oauth/hubspot/install``), kept in the connector's token store; the secret is the
      deployment's ``TEXTBACK_HUBSPOT_CLIENT_SECRET`` unless ``client_secret`` is given here.
    """

    access_token = fields.String(load_default=None, allow_none=True, metadata={"secret": True})
    client_id = fields.String(load_default=None, allow_none=True)
    client_secret = fields.String(load_default=None, allow_none=True, metadata={"secret": True})

    @validates_schema
    def _one_way(self, data: dict[str, Any], **_: Any) -> None:
        # A redacted value (an exported file imported again) is loaded as ``partial``: kept.
        kept = self.partial if isinstance(self.partial, tuple | list | set) else ()
        data = {**data, **{name: True for name in kept}}
        if data.get("access_token") and data.get("client_id"):
            raise ValidationError("give either access_token (a private app) or client_id (the "
                                  "marketplace app's install), not both", field_name="client_id")
        if not data.get("access_token") and not data.get("client_id"):
            raise ValidationError("required: a private app's access token, or client_id for the "
                                  "marketplace app's install", field_name="access_token")


class HubSpotCrm(CrmAdapter):
    """HubSpot through hubspot-api-client: contacts, calls, SMS, tasks, deals and webhooks.

    ``timeout`` is ``(connect, read)`` seconds for every request. The adapter makes exactly one
    attempt per request (SDK retries off) and raises classified errors; retrying is the
    connector's job.
    """

    name: ClassVar[str] = "hubspot"
    display_name: ClassVar[str] = "HubSpot"
    docs_url: ClassVar[str] = "https://developers.hubspot.com/docs/api/crm/understanding-the-crm"
    default_api_base_url: ClassVar[str] = "https://api.hubapi.com"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"contacts", "call_log", "message_log", "tasks", "task_queues", "pipeline", "webhooks"}
    )
    #: What a private app must grant: the marketplace app's CRM scopes (see :mod:`.oauth`).
    required_scopes: ClassVar[tuple[str, ...]] = tuple(
        scope for scope in ENDPOINTS.scopes if scope not in APP_ONLY_SCOPES)
    config_schema = HubSpotCredentials
    #: The marketplace app's install (see :mod:`.oauth`); private apps connect with a token.
    oauth = ENDPOINTS
    accepts_token_store: ClassVar[bool] = True
    #: The marketplace app posts every portal's events to /webhooks/crm/hubspot (the portal leads
    #: to its installation); a self-hoster's private app to its account's own URL. Both are
    #: signed (v3) with the app's client secret.
    webhook = WebhookSpec(url=PER_ACCOUNT, credential="client_secret", verify=webhooks.verify_v3,
                          account_of=webhooks.account_of, topics=webhooks.TOPICS)

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        token_store: TokenStore | None = None,
        rate_limiter: RateLimiter | None = None,
        rate_limit_key: str = "",
    ) -> None:
        super().__init__(credentials, api_base_url=api_base_url)
        secret = str(self.credentials.get("client_secret") or "")
        self._timeout = timeout
        self._keeper: TokenKeeper | None = None
        self.token_store: TokenStore | None = None
        token = self.credentials.get("access_token")
        if token:
            self._api = HubSpotApi(str(token), host=self.api_base_url, timeout=timeout,
                                   secrets=(str(token), secret), rate_limiter=rate_limiter,
                                   rate_limit_key=rate_limit_key or portal_key(str(token)))
        else:
            if token_store is None:
                raise ConfigurationError(
                    "HubSpot's marketplace app needs its install: open /oauth/hubspot/install",
                    field="crm")
            if not secret:
                raise ConfigurationError(
                    "the HubSpot app's client secret is not set: TEXTBACK_HUBSPOT_CLIENT_SECRET",
                    field="crm.credentials.client_secret")
            self.token_store = token_store
            self._keeper = TokenKeeper(token_store, self._refresh, provider=PROVIDER,
                                       display_name=self.display_name,
                                       skew=REFRESH_SKEW_SECONDS)
            # The installation names the portal (its tokens change every 30 minutes).
            self._api = HubSpotApi(self._keeper, host=self.api_base_url, timeout=timeout,
                                   secrets=(secret,), rate_limiter=rate_limiter,
                                   rate_limit_key=rate_limit_key or portal_key(repr(token_store)))
        self._contacts = ContactFinder(self._api)
        self._opt_outs = OptOutMarker(self._api)

    def __repr__(self) -> str:
        return f"<HubSpotCrm api_base_url={self.api_base_url!r} oauth={self.uses_oauth()}>"

    def _refresh(self, refresh_token: str) -> OAuthTokens:
        return oauth_flow.refresh(
            type(self), str(self.credentials["client_id"]),
            str(self.credentials["client_secret"]), refresh_token,
            token_url=oauth_flow.token_url(type(self), self.api_base_url),
            timeout=self._timeout)

    def uses_oauth(self) -> bool:
        """True for the marketplace app's install, False for a private app's token."""
        return self._keeper is not None

    def prepare_portal(self) -> None:
        """Create what the app needs in the portal (at install, not on the first missed call):
        the unique phone property contacts are upserted on, and the opt-out property."""
        self._contacts.ensure_unique_property()
        self._opt_outs.ensure_property()

    def uninstall(self) -> None:
        """Remove the marketplace app from the portal (``DELETE
        /appinstalls/v3/external-install``); a private app has nothing to uninstall."""
        if self._keeper is None:
            return
        oauth.uninstall(self._keeper.access_token(), api_base_url=self.api_base_url,
                        timeout=self._timeout)

    def find_or_create_contact(self, phone: str, name: str | None = None) -> CrmContact:
        """One search; on a miss, an upsert on the unique phone property (see ``contacts``)."""
        return self._contacts.find_or_create(phone, name)

    def log_call(self, call: CallLog) -> str:
        """Create a call engagement on the contact (and deal)."""
        return activities.log_call(self._api, call)

    def log_message(self, message: MessageLog) -> str:
        """Create an SMS communication on the contact (and deal)."""
        return activities.log_message(self._api, message)

    def create_task(self, task: TaskSpec) -> str:
        """Create a CALL task for the owner, in the task queue when one is set."""
        return activities.create_task(self._api, task)

    def find_call_log(self, call: CallLog) -> str | None:
        """The call engagement an earlier attempt logged (see :mod:`.lookups`)."""
        return lookups.find_call_log(self._api, call)

    def find_message_log(self, message: MessageLog) -> str | None:
        """The SMS communication an earlier attempt logged (see :mod:`.lookups`)."""
        return lookups.find_message_log(self._api, message)

    def find_lead(self, lead: LeadSpec) -> str | None:
        """The open deal an earlier attempt made or kept (see :mod:`.lookups`)."""
        return lookups.find_lead(self._api, lead)

    def find_task(self, task: TaskSpec, marker: str) -> str | None:
        """A task made by an earlier attempt, found by the marker in its body (a call's id, which
        no other task holds)."""
        return lookups.find_task(self._api, marker)

    def append_to_task(self, task_id: str, text: str) -> None:
        """Append a line to the task's notes."""
        activities.append_to_task(self._api, task_id, text)

    def set_pipeline_stage(self, lead: LeadSpec, existing_id: str | None = None) -> str:
        """Reuse the open deal ``existing_id`` or create one in the mapped pipeline and stage."""
        return deals.set_pipeline_stage(self._api, lead, existing_id)

    def task_completed(self, task_id: str) -> bool:
        """Whether a rep marked the task completed."""
        return activities.task_completed(self._api, task_id)

    def raise_task_priority(self, task_id: str) -> None:
        """Set the task's priority to HIGH."""
        activities.raise_task_priority(self._api, task_id)

    def set_opt_out(self, contact_id: str, opted_out: bool) -> None:
        """Set the app's ``textback_sms_opt_out`` contact property (see ``optout``)."""
        self._opt_outs.mark(contact_id, opted_out)

    def send_app_event(self, event: AppEvent) -> None:
        """Send an app event occurrence (see :mod:`.app_events`). Only the marketplace app's
        install has app events: a private app's token has none (``NotImplementedError``)."""
        if not self.uses_oauth():
            raise NotImplementedError("HubSpot app events need the marketplace app's install")
        token = self._bearer()
        app_events.send(self._http, self.api_base_url, token, event, timeout=self._api.timeout,
                        secrets=(token,))

    @cached_property
    def _http(self) -> requests.Session:
        """A plain HTTP session for the APIs the SDK does not cover (app events)."""
        return new_session()

    def complete_action(self, callback_id: str, outputs: Mapping[str, str]) -> None:
        """Complete a blocked run of the workflow action (see :mod:`.workflow_actions`)."""
        token = self._bearer()
        workflow_actions.complete(self._http, self.api_base_url, token, callback_id, outputs,
                                  timeout=self._api.timeout, secrets=(token,))

    def _bearer(self) -> str:
        """The access token requests outside the SDK send (an install's current one)."""
        if self._keeper is not None:
            return self._keeper.access_token()
        return str(self.credentials["access_token"])

    def parse_webhook(self, request: WebhookRequest) -> list[CrmEvent]:
        """Completed tasks and deals that changed stage (see :mod:`.webhooks`)."""
        return webhooks.parse(request)

    # -- setup ------------------------------------------------------------------------------

    @cached_property
    def _catalog(self) -> HubSpotCatalog:
        secret = str(self.credentials.get("client_secret") or "")
        if self._keeper is not None:
            return HubSpotCatalog(self._keeper.access_token, host=self.api_base_url,
                                  timeout=self._timeout, secrets=(secret,))
        token = str(self.credentials["access_token"])
        return HubSpotCatalog(
            token, host=self.api_base_url, timeout=self._timeout, secrets=(token, secret)
        )

    def check_connection(self) -> ConnectionCheck:
        """The portal, one contact read and what the token's scopes allow (see
        :mod:`.catalog`)."""
        return self._catalog.check_connection()

    def list_choices(self) -> CrmChoices:
        """Deal pipelines and stages, owners and task queues (see :mod:`.catalog`)."""
        return self._catalog.list_choices()
