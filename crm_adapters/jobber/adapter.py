"""The Jobber CRM adapter: :class:`JobberCrm` and the GraphQL operations each method sends."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from marshmallow import Schema, fields

from connector.kernel.errors import ConfigurationError, ProviderAuthError
from connector.kernel.http import DEFAULT_TIMEOUT, WebhookRequest, new_session
from connector.kernel.ratelimit import RateLimiter, meter_session, portal_key
from crm_adapters import oauth_flow
from crm_adapters.base import (
    APP_WIDE,
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
from crm_adapters.jobber import activities, catalog, contacts, leads, webhooks
from crm_adapters.jobber.client import JobberApi
from crm_adapters.jobber.documents import ACCOUNT, APP_DISCONNECT, USERS
from crm_adapters.jobber.errors import PROVIDER
from crm_adapters.jobber.limits import JobberMeter
from crm_adapters.jobber.oauth import ENDPOINTS, JobberAccount, fetch_account, with_claims
from crm_adapters.jobber.tokens import REFRESH_SKEW_SECONDS, expires_at
from crm_adapters.oauth_tokens import TokenKeeper

#: The ``X-JOBBER-GRAPHQL-VERSION`` every request pins. 2025-04-16 is the newest version in
#: Jobber's changelog that we could read; its one breaking change since 2025-01-20
#: (``JobCreateAttributes.jobFormIds``) touches nothing we send. Jobber supports a version for
#: 12 months after a newer one ships and then upgrades callers to the oldest supported one, so
#: bump this (``graphql_version=``) after refreshing ``tests/fixtures/jobber`` from an
#: introspection with the new header; the adapter logs Jobber's deprecation ``warning``.
#: https://developer.getjobber.com/docs/changelog
DEFAULT_GRAPHQL_VERSION = "2025-04-16"
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")

#: The GraphQL operations each adapter method sends, in order, on the success path. A stale
#: access token adds one ``POST /api/oauth/token`` first, once per hour per installation.
API_CALLS: Mapping[str, tuple[str, ...]] = {
    "find_or_create_contact:returning": ("query ClientsByPhone",),
    "find_or_create_contact:new": ("query ClientsByPhone", "mutation ClientCreate"),
    "log_call": ("mutation ClientNoteCreate",),
    "log_message": ("mutation ClientNoteCreate",),
    "create_task": ("mutation TaskCreate",),
    "create_task:assessment": ("mutation AssessmentCreate",),
    "append_to_task": ("query TaskInstructions", "mutation TaskEdit"),
    "append_to_task:assessment": ("query AssessmentInstructions", "mutation AssessmentEdit"),
    "set_pipeline_stage:new": ("mutation RequestCreate",),
    "set_pipeline_stage:open": ("query RequestStatus",),
    "set_pipeline_stage:closed": ("query RequestStatus", "mutation RequestCreate"),
    # Asked only on a retry whose earlier attempt may have made the record.
    "find_call_log": ("query ClientNotes",),
    "find_message_log": ("query ClientNotes",),
    "find_lead": ("query ClientRequests",),
    # One page; a moment with more tasks than a page reads up to activities.TASK_PAGES pages.
    "find_task": ("query ScheduledTasks",),
    "find_task:assessment": ("query RequestAssessment",),
}


class JobberCredentials(Schema):
    """``crm.credentials`` for Jobber: the app's OAuth client (Developer Center > Apps).

    The client secret also signs the webhooks Jobber sends. The tokens of an installation are
    not credentials: they live in the connector's encrypted token store.
    """

    client_id = fields.String(required=True)
    client_secret = fields.String(required=True, metadata={"secret": True})


@dataclass(frozen=True)
class JobberUser:
    """A team member who can own the follow-up (``id`` goes in ``crm.mapping.owner_id``)."""

    id: str
    name: str
    email: str | None = None
    is_admin: bool = False


class JobberCrm(CrmAdapter):
    """Jobber over GraphQL: clients, requests, tasks or assessments, notes, webhooks.

    ``token_store`` holds the installation's OAuth tokens (without one only
    :meth:`verify_request` works). ``graphql_version`` is the pinned API version. ``follow_up``
    is ``"task"`` (a task assigned to the owner) or ``"assessment"`` (an assessment on the
    request, scheduled in ``timezone``, the account's IANA zone). One attempt per request; the
    connector retries.
    """

    name: ClassVar[str] = "jobber"
    display_name: ClassVar[str] = "Jobber"
    docs_url: ClassVar[str] = "https://developer.getjobber.com/docs"
    default_api_base_url: ClassVar[str] = "https://api.getjobber.com"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"contacts", "call_log", "message_log", "tasks", "pipeline", "webhooks"}
    )
    #: Scopes to tick on the app in the Developer Center (Jobber grants them at install, not per
    #: request): clients and their notes, requests, tasks and assessments (scheduled items), and
    #: the users list for the setup page. Names as they appear in issued tokens' ``scope`` claim.
    required_scopes: ClassVar[tuple[str, ...]] = (
        "read_clients",
        "write_clients",
        "read_requests",
        "write_requests",
        "read_scheduled_items",
        "write_scheduled_items",
        "read_users",
    )
    config_schema = JobberCredentials
    #: One URL for the whole app, signed with the app's client secret; the delivery names the
    #: Jobber account, which leads to ours through the installation.
    webhook = WebhookSpec(url=APP_WIDE, credential="client_secret", verify=webhooks.verify,
                          account_of=webhooks.account_of, topics=webhooks.TOPICS)

    #: Installs through OAuth only (see :mod:`.oauth`).
    oauth = ENDPOINTS
    accepts_token_store: ClassVar[bool] = True

    @classmethod
    def oauth_tokens(cls, tokens: OAuthTokens) -> OAuthTokens:
        """The access token is a JWT: its ``exp`` is the expiry, a few claims are kept."""
        return with_claims(tokens)

    @classmethod
    def installed_account_id(
        cls,
        tokens: OAuthTokens,
        *,
        api_base_url: str,
        session: requests.Session,
        timeout: tuple[float, float],
    ) -> str | None:
        """The account's EncodedId from ``query Account``: what webhooks name as ``accountId``."""
        account = fetch_account(session, tokens.access_token,
                                graphql_url=f"{api_base_url}/api/graphql",
                                graphql_version=DEFAULT_GRAPHQL_VERSION, timeout=timeout)
        return account.id

    @staticmethod
    def options_from_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
        """``follow_up`` (task or assessment) and an optional pinned ``graphql_version``."""
        options = {"follow_up": mapping.get("follow_up") or activities.FOLLOW_UP_TASK}
        if mapping.get("graphql_version"):
            options["graphql_version"] = mapping["graphql_version"]
        return options

    def uses_oauth(self) -> bool:
        """Jobber apps always connect through OAuth."""
        return True

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
        token_store: TokenStore | None = None,
        graphql_version: str = DEFAULT_GRAPHQL_VERSION,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        follow_up: str = activities.FOLLOW_UP_TASK,
        timezone: str = "UTC",
        rate_limiter: RateLimiter | None = None,
        rate_limit_key: str = "",
    ) -> None:
        super().__init__(credentials, api_base_url=api_base_url)
        if follow_up not in activities.FOLLOW_UPS:
            raise ConfigurationError(
                f"Jobber follow_up must be one of {activities.FOLLOW_UPS}",
                field="crm.mapping.follow_up",
            )
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"unknown time zone {timezone!r}", field="timezone") from None
        if not _VERSION.fullmatch(graphql_version or ""):
            raise ConfigurationError(
                f"Jobber API versions are dates (YYYY-MM-DD), not {graphql_version!r}",
                field="crm.graphql_version",
            )
        self.graphql_version = graphql_version
        self.follow_up = follow_up
        self.timezone = timezone
        self.graphql_url = f"{self.api_base_url}/api/graphql"
        self.token_url = oauth_flow.token_url(type(self), self.api_base_url)
        self.token_store = token_store
        self._client_id = str(self.credentials["client_id"])
        self._client_secret = str(self.credentials["client_secret"])
        self._session = session or new_session()
        if rate_limiter is not None:
            meter_session(self._session, JobberMeter(
                rate_limiter, rate_limit_key or portal_key(self._client_id)))
        self._timeout = timeout
        tokens = (TokenKeeper(token_store, self._refresh, provider=PROVIDER,
                              display_name=self.display_name, skew=REFRESH_SKEW_SECONDS,
                              expiry=expires_at)
                  if token_store is not None else None)
        self._api = JobberApi(
            session=self._session,
            graphql_url=self.graphql_url,
            graphql_version=graphql_version,
            timeout=timeout,
            tokens=tokens,
            client_secret=self._client_secret,
        )

    def __repr__(self) -> str:
        return f"<JobberCrm api_base_url={self.api_base_url!r} version={self.graphql_version}>"

    def _refresh(self, refresh_token: str) -> OAuthTokens:
        return oauth_flow.refresh(
            type(self),
            self._client_id,
            self._client_secret,
            refresh_token,
            token_url=self.token_url,
            session=self._session,
            timeout=self._timeout,
        )

    def token_store_or_raise(self) -> TokenStore:
        """The installation's token store; ConfigurationError when none was given."""
        if self.token_store is None:
            raise ConfigurationError("Jobber needs an OAuth installation", field="crm")
        return self.token_store

    # -- the CRM contract ------------------------------------------------------------------

    def find_or_create_contact(self, phone: str, name: str | None = None) -> CrmContact:
        """Search clients, keep exact phone matches, else ``clientCreate`` (see ``contacts``)."""
        return contacts.find_or_create(self._api, phone, name)

    def log_call(self, call: CallLog) -> str:
        """One client note for the missed call, shown on the client's requests too."""
        return activities.log_call(self._api, call)

    def log_message(self, message: MessageLog) -> str:
        """One client note for one text."""
        return activities.log_message(self._api, message)

    def create_task(self, task: TaskSpec) -> str:
        """A task for the owner, or an assessment on the request (``follow_up``)."""
        return activities.create_task(
            self._api, task, follow_up=self.follow_up, timezone=self.timezone
        )

    def append_to_task(self, task_id: str, text: str) -> None:
        """Add a line to the task's (or assessment's) instructions."""
        activities.append_to_task(self._api, task_id, text)

    def task_completed(self, task_id: str) -> bool:
        """Whether a rep marked the task (or assessment) complete."""
        return activities.task_completed(self._api, task_id)

    def set_pipeline_stage(self, lead: LeadSpec, existing_id: str | None = None) -> str:
        """Reuse the open request ``existing_id`` or create one (see ``leads``)."""
        return leads.set_pipeline_stage(self._api, lead, existing_id)

    def find_call_log(self, call: CallLog) -> str | None:
        """The client note :meth:`log_call` wrote for ``call``: the note with its text among the
        client's newest (see ``activities.find_note``); None when there is none."""
        return activities.find_call_log(self._api, call)

    def find_message_log(self, message: MessageLog) -> str | None:
        """The client note :meth:`log_message` wrote for ``message``, found as
        :meth:`find_call_log` finds the call's."""
        return activities.find_message_log(self._api, message)

    def find_lead(self, lead: LeadSpec) -> str | None:
        """The newest open request of the client titled ``lead.name`` (see ``leads.find_lead``);
        None when there is none."""
        return leads.find_lead(self._api, lead)

    def find_task(self, task: TaskSpec, marker: str) -> str | None:
        """The follow-up :meth:`create_task` made for ``task``: the request's assessment when
        ``follow_up`` makes one, else the client's task at ``task.due_at`` whose instructions
        hold ``marker`` (see ``activities.find_task``); None when there is none. Reads only, so
        a lost answer is never ambiguous."""
        return activities.find_task(self._api, task, marker, follow_up=self.follow_up)

    def parse_webhook(self, request: WebhookRequest) -> list[CrmEvent]:
        """``APP_DISCONNECT``; other topics are acknowledged (see :mod:`.webhooks`)."""
        return webhooks.parse(request)

    # -- setup and lifecycle ---------------------------------------------------------------

    def list_users(self, *, page_size: int = 50, max_pages: int = 20) -> list[JobberUser]:
        """Active team members, admins first, for choosing who gets the follow-up."""
        users: list[JobberUser] = []
        after: str | None = None
        for _ in range(max_pages):
            data = self._api.execute(USERS, {"first": page_size, "after": after})
            page = data.get("users") or {}
            for node in page.get("nodes") or []:
                users.append(
                    JobberUser(
                        id=str(node["id"]),
                        name=str((node.get("name") or {}).get("full") or ""),
                        email=(node.get("email") or {}).get("raw") or None,
                        is_admin=bool(node.get("isAccountAdmin")),
                    )
                )
            info = page.get("pageInfo") or {}
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                break
        return users

    def account(self) -> JobberAccount:
        """The connected account (``query Account``)."""
        data = self._api.execute(ACCOUNT)
        account = data.get("account") or {}
        return JobberAccount(id=str(account.get("id") or ""), name=str(account.get("name") or ""))

    def run(self, document: str) -> dict[str, Any]:
        """Run one of :data:`~crm_adapters.jobber.documents.DOCUMENTS` without variables."""
        return self._api.execute(document)

    def check_connection(self) -> ConnectionCheck:
        """The account, one client and what the token's scopes allow (see :mod:`.catalog`)."""
        return catalog.check_connection(self)

    def list_choices(self) -> CrmChoices:
        """The team members a follow-up can be assigned to (see :mod:`.catalog`)."""
        return catalog.list_choices(self)

    def disconnect(self) -> None:
        """``appDisconnect``: Jobber invalidates this installation's tokens."""
        self._api.mutate(APP_DISCONNECT, {}, "appDisconnect")

    def uninstall(self) -> None:
        """``appDisconnect``; an installation Jobber already considers gone counts as done."""
        try:
            self.disconnect()
        except ProviderAuthError:
            pass  # already disconnected on Jobber's side


def api_calls_per_missed_call(caller: str) -> int:
    """GraphQL requests for one missed call as ``connector.jobs.crm_sync`` syncs it (text sent).

    ``caller``: ``"new"`` (search, create, new request), ``"in_crm"`` (search, new request) or
    ``"linked"`` (client and open request known: one status read). Then the call note, the text
    note and the task. A due token renewal adds one token request.
    """
    if caller == "new":
        steps = ["find_or_create_contact:new", "set_pipeline_stage:new"]
    elif caller == "in_crm":
        steps = ["find_or_create_contact:returning", "set_pipeline_stage:new"]
    elif caller == "linked":
        steps = ["set_pipeline_stage:open"]
    else:
        raise ValueError("caller must be one of ('new', 'in_crm', 'linked')")
    steps += ["log_call", "log_message", "create_task"]
    return sum(len(API_CALLS[step]) for step in steps)


def app_disconnect(adapter: JobberCrm) -> None:
    """Disconnect the app from the account (our side of an uninstall) and mark it disconnected.

    ``appDisconnect`` invalidates the access and refresh tokens and shows the app as disconnected
    in Jobber. An installation Jobber already considers gone counts as done.
    """
    adapter.uninstall()
    adapter.token_store_or_raise().mark_disconnected("app disconnected from textback")
