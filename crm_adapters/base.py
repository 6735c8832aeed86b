"""The contract every CRM adapter fulfils.

Adapters are stateless: the connector keeps the map from our ids to CRM record ids (the
``crm_links`` table), passes existing ids back in, and so a retried step never duplicates a record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final, Literal, Protocol

import marshmallow
import requests

from connector.kernel.errors import WebhookVerificationError
from connector.kernel.events import CallOutcome
from connector.kernel.http import WebhookRequest
from connector.kernel.phone import mask
from crm_adapters.catalog import ConnectionCheck, CrmChoices

#: Capability names an adapter may declare.
CAPABILITIES = frozenset(
    {"contacts", "call_log", "message_log", "tasks", "task_queues", "pipeline", "webhooks"}
)


@dataclass(frozen=True)
class CrmContact:
    """A person in the CRM; ``created`` is true when this call made them."""

    id: str
    phone: str
    first_name: str | None = None
    last_name: str | None = None
    language: str | None = None
    created: bool = False

    def __repr__(self) -> str:
        return f"CrmContact(id={self.id!r}, phone={mask(self.phone)}, created={self.created})"


@dataclass(frozen=True)
class CallLog:
    """The missed call as a CRM activity."""

    contact_id: str
    caller: str
    called: str
    outcome: CallOutcome
    occurred_at: datetime
    title: str
    body: str
    owner_id: str | None = None
    deal_id: str | None = None

    def __repr__(self) -> str:
        return f"CallLog(contact_id={self.contact_id!r}, outcome={self.outcome.value})"


@dataclass(frozen=True)
class MessageLog:
    """One text, either direction, as a CRM activity."""

    contact_id: str
    direction: str  # "inbound" or "outbound"
    body: str
    occurred_at: datetime
    sender: str
    recipient: str
    owner_id: str | None = None
    deal_id: str | None = None

    def __repr__(self) -> str:
        return f"MessageLog(contact_id={self.contact_id!r}, direction={self.direction})"


@dataclass(frozen=True)
class TaskSpec:
    """A follow-up for a named owner."""

    contact_id: str
    subject: str
    body: str
    due_at: datetime
    owner_id: str | None = None
    priority: str = "HIGH"  # LOW, MEDIUM or HIGH
    queue_id: str | None = None
    deal_id: str | None = None

    def __repr__(self) -> str:
        return f"TaskSpec(contact_id={self.contact_id!r}, due_at={self.due_at.isoformat()})"


@dataclass(frozen=True)
class LeadSpec:
    """Where the lead goes: the CRM's pipeline and stage ids from the account mapping."""

    contact_id: str
    name: str
    pipeline: str | None
    stage: str | None
    owner_id: str | None = None


@dataclass(frozen=True)
class OAuthTokens:
    """An OAuth installation's tokens; ``expires_at`` is when the access token stops working."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None = None
    extra: Mapping[str, Any] | None = None  # provider fields worth keeping (account id, scopes)

    def __repr__(self) -> str:
        return f"OAuthTokens(<hidden>, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class AppEvent:
    """Something that happened, for the contact's timeline and the CRM's automation.

    ``kind`` names the event type (``missed_call``, ``texted_back``, ``customer_replied``,
    ``opted_out``); ``event_id`` is ours and the same on every retry, so the CRM keeps one
    occurrence; ``properties`` are what a workflow branches on, by the names the CRM's event
    type declares.
    """

    kind: str
    event_id: str
    contact_id: str
    occurred_at: datetime
    properties: Mapping[str, str]

    def __repr__(self) -> str:
        return f"AppEvent({self.kind!r}, event_id={self.event_id!r})"


# -- what a CRM webhook says, in the connector's terms ------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CrmEvent:
    """Something a CRM webhook told us that the connector acts on.

    ``event_id`` is equal for every delivery of one event (CRMs deliver at least once): the
    webhook view stores it once per account and acts on the first delivery only.
    """

    event_id: str


@dataclass(frozen=True, kw_only=True)
class TaskCompleted(CrmEvent):
    """A rep completed a follow-up task we made: a human responded to the call."""

    task_id: str


@dataclass(frozen=True, kw_only=True)
class LeadStageChanged(CrmEvent):
    """A lead (deal, request) moved to ``stage``; past the account's first stage it counts as a
    saved conversation. A lead converted to a job or estimate reports the stage ``converted``."""

    lead_id: str
    stage: str


@dataclass(frozen=True, kw_only=True)
class AppDisconnected(CrmEvent):
    """The CRM account uninstalled or disconnected our app: its tokens no longer work."""

    external_account_id: str


#: ``/webhooks/crm/<crm>/<account_id>``: the CRM is given one URL per account.
PER_ACCOUNT: Final = "per-account"
#: ``/webhooks/crm/<crm>``: one URL for the whole app; the payload names the CRM's account, which
#: leads to ours through the OAuth installation (``installations.external_id``).
APP_WIDE: Final = "app-wide"


@dataclass(frozen=True)
class WebhookTopic:
    """One kind of delivery the connector subscribes to and acts on, in the CRM's own words.

    ``name`` is the CRM's topic or subscription type (``APP_DISCONNECT``, ``lead.converted``,
    ``object.propertyChange``); ``object_type`` and ``property_name`` narrow it where the CRM
    subscribes per object and property (HubSpot). ``textback manifests render`` writes these
    into the app definitions, so an app subscribes to exactly what the adapter parses.
    """

    name: str
    object_type: str | None = None
    property_name: str | None = None


@dataclass(frozen=True)
class WebhookSpec:
    """How a CRM's webhooks reach the connector and how they are checked.

    ``url`` is :data:`PER_ACCOUNT` or :data:`APP_WIDE`. ``credential`` names the credential
    field holding the signing secret; ``verify(request, secret)`` raises
    :class:`~connector.kernel.errors.WebhookVerificationError` unless the delivery is authentic,
    and refuses everything when the secret is empty. An app-wide URL also needs
    ``account_of(request)``: the CRM's own account id as the delivery names it, read *before*
    verification because it decides whose secret to verify with (raise
    :class:`~connector.kernel.errors.MalformedWebhookError` when it cannot be read). A
    per-account spec with ``account_of`` takes the app-wide URL too: a marketplace app posts
    every installed account's events to one URL, a self-hoster's own app to its account's.
    ``topics`` are the deliveries :meth:`CrmAdapter.parse_webhook` acts on.
    """

    url: Literal["per-account", "app-wide"]
    credential: str
    verify: Callable[[WebhookRequest, str], None]
    account_of: Callable[[WebhookRequest], str] | None = None
    topics: tuple[WebhookTopic, ...] = ()

    def __post_init__(self) -> None:
        if self.url == APP_WIDE and self.account_of is None:
            raise ValueError("an app-wide webhook URL needs account_of")

    @property
    def takes_app_wide_url(self) -> bool:
        """True when deliveries may come to the CRM's one URL (the payload names the account)."""
        return self.account_of is not None


@dataclass(frozen=True)
class OAuthEndpoints:
    """A CRM's OAuth 2.0 authorization-code install, declared; ``crm_adapters.oauth_flow`` runs it.

    - ``authorize_url`` and ``token_url`` are the production URLs. An account whose
      ``crm.api_base_url`` is not the adapter's default (a test double, a sandbox, a proxy) gets
      both with that base in place of their scheme and host.
    - ``scopes`` go on the authorize URL as ``scope`` (space-separated); none when empty (the
      app's own settings decide, as at Jobber). ``optional_scopes`` go as ``optional_scope``:
      granted when the account's tier has them, the install goes on without them (HubSpot).
      These two are the app's one scope declaration: the marketplace manifests read them.
    - ``request_body``: ``"form"`` posts the RFC 6749 parameters, ``client_id`` and
      ``client_secret`` included, form-encoded; ``"json"`` posts the same as a JSON object.
    - ``account_id_field``: the token answer's field naming the CRM account the install is for
      (kept in :attr:`OAuthTokens.extra`); None when the adapter asks its API instead
      (:meth:`CrmAdapter.installed_account_id`) or the CRM names none.
    - ``kept_fields``: other token-answer fields worth keeping in :attr:`OAuthTokens.extra`.
    """

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    optional_scopes: tuple[str, ...] = ()
    request_body: Literal["form", "json"] = "form"
    account_id_field: str | None = None
    kept_fields: tuple[str, ...] = ()


class TokenStore(Protocol):
    """Where an OAuth adapter keeps its tokens; the connector provides it, encrypted at rest.

    ``locked()`` holds a per-installation lock that is honoured by every ``textback worker``
    process on every machine, so a refresh with a rotating refresh token happens once. ``load``
    inside the lock reads the latest tokens; ``save`` stores the new pair atomically.
    """

    def locked(self) -> AbstractContextManager[None]:
        """The per-installation lock."""

    def load(self) -> OAuthTokens:
        """The current tokens."""

    def save(self, tokens: OAuthTokens) -> None:
        """Replace the tokens (both at once)."""

    def mark_disconnected(self, reason: str) -> None:
        """The installation is gone (uninstalled, revoked): stop calling the CRM."""


def holds_marker(text: Any, marker: str) -> bool:
    """Whether ``marker`` (a follow-up's call id, see :meth:`CrmAdapter.find_task`) is a
    whitespace-separated word of ``text``: lines added to the follow-up later do not hide it,
    and a part of it, or a longer id it begins, is not it."""
    return isinstance(text, str) and marker in text.split()


class CrmAdapter(ABC):
    """Base class of the CRM adapters."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    docs_url: ClassVar[str]
    default_api_base_url: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    required_scopes: ClassVar[tuple[str, ...]] = ()
    #: Credential schema; secret fields carry ``metadata={"secret": True}``.
    config_schema: ClassVar[type[marshmallow.Schema]]
    #: True for adapters that take OAuth tokens from a ``token_store`` keyword argument.
    accepts_token_store: ClassVar[bool] = False
    #: How the CRM's webhooks arrive and are verified; None when it sends none we accept.
    webhook: ClassVar[WebhookSpec | None] = None
    #: The CRM's OAuth install; None when it connects with credentials in the account file only.
    oauth: ClassVar[OAuthEndpoints | None] = None

    @classmethod
    def oauth_tokens(cls, tokens: OAuthTokens) -> OAuthTokens:
        """Tokens as read from the token endpoint, completed with what only this CRM knows (the
        expiry inside a JWT access token, say). The default returns them unchanged."""
        return tokens

    @classmethod
    def installed_account_id(
        cls,
        tokens: OAuthTokens,
        *,
        api_base_url: str,
        session: requests.Session,
        timeout: tuple[float, float],
    ) -> str | None:
        """The CRM's own id of the account a fresh install is for (the id an app-wide webhook
        names), or None. The default reads :attr:`OAuthEndpoints.account_id_field` from the token
        answer; an adapter whose CRM names it elsewhere asks its API with ``tokens``."""
        name = cls.oauth.account_id_field if cls.oauth is not None else None
        value = (tokens.extra or {}).get(name) if name else None
        return None if value is None or value == "" else str(value)

    @staticmethod
    def options_from_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor keyword arguments the adapter takes from the account's ``crm.mapping``."""
        return {}

    def uses_oauth(self) -> bool:
        """True when this instance authenticates with installation tokens (not a pasted key)."""
        return False

    def uninstall(self) -> None:
        """Tell the CRM to remove this OAuth installation (an admin disconnected it from our
        side). CRMs with no way to do that do nothing; the connector marks the installation
        disconnected either way."""
        return None

    def pipeline_note(self, lead_id: str) -> str | None:
        """Why the last ``set_pipeline_stage`` left a lead where it is, if the CRM has rules
        about moving it (Housecall Pro only moves forward); None otherwise."""
        return None

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
    ) -> None:
        self.credentials: Mapping[str, Any] = self.config_schema().load(dict(credentials))
        self.api_base_url = (api_base_url or self.default_api_base_url).rstrip("/")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} api_base_url={self.api_base_url!r}>"

    @abstractmethod
    def find_or_create_contact(self, phone: str, name: str | None = None) -> CrmContact:
        """The contact whose phone normalises to ``phone`` (E.164), created when none exists."""

    @abstractmethod
    def log_call(self, call: CallLog) -> str:
        """Record the missed call on the contact's timeline; return the CRM record id."""

    @abstractmethod
    def log_message(self, message: MessageLog) -> str:
        """Record one text on the contact's timeline; return the CRM record id."""

    @abstractmethod
    def create_task(self, task: TaskSpec) -> str:
        """Create the follow-up task; return its id."""

    @abstractmethod
    def append_to_task(self, task_id: str, text: str) -> None:
        """Add a line to the task's body (a customer reply, a delivery failure) so the rep sees it."""

    @abstractmethod
    def set_pipeline_stage(self, lead: LeadSpec, existing_id: str | None = None) -> str:
        """Put the lead in its pipeline and stage.

        ``existing_id`` is the lead (deal) this connector made earlier for the contact; when it is
        still open it is reused and its id returned, otherwise a new one is made.
        """

    def find_call_log(self, call: CallLog) -> str | None:
        """The id of the call activity an earlier :meth:`log_call` of ``call`` made, or None.

        Asked only when an earlier attempt may have logged the call before the worker died (or
        before a lost answer), so a retry links that record instead of logging the call twice.
        ``NotImplementedError`` when the CRM cannot look: such a retry may then log it again."""
        raise NotImplementedError

    def find_message_log(self, message: MessageLog) -> str | None:
        """The id of the text activity an earlier :meth:`log_message` of ``message`` made, or
        None; asked, and unimplemented, as :meth:`find_call_log` is."""
        raise NotImplementedError

    def find_lead(self, lead: LeadSpec) -> str | None:
        """The id of the open lead an earlier :meth:`set_pipeline_stage` of ``lead`` made or
        kept for ``lead.contact_id`` (the one that method would reuse), or None; asked, and
        unimplemented, as :meth:`find_call_log` is. The caller then passes it to
        :meth:`set_pipeline_stage` as ``existing_id``, which finishes putting it in its stage."""
        raise NotImplementedError

    def find_task(self, task: TaskSpec, marker: str) -> str | None:
        """The id of the task an earlier :meth:`create_task` of ``task`` made, or None.

        Its body holds ``marker`` (the ``textback call <id>`` line) as a word; the spec is the
        one that attempt sent: the connector reuses the first attempt's due time on every retry,
        so a CRM that can only list tasks by their time (Jobber) looks at that moment alone.
        Asked only when an earlier attempt may have created the task before the worker died, so
        a retry links that task instead of making a second one. ``NotImplementedError`` when the
        CRM cannot search tasks: such a retry may then repeat the task."""
        raise NotImplementedError

    def task_completed(self, task_id: str) -> bool:
        """True when a rep has marked the task done (a human responded). ``NotImplementedError``
        when the CRM cannot say."""
        raise NotImplementedError

    def raise_task_priority(self, task_id: str) -> None:
        """Make the task high priority (escalation). ``NotImplementedError`` when the CRM's tasks
        have no priority; the note on the task still says it was escalated."""
        raise NotImplementedError

    def set_opt_out(self, contact_id: str, opted_out: bool) -> None:
        """Mark the contact as opted out of texts (or back in). ``NotImplementedError`` when the
        CRM has no place for it; the connector then notes it on the contact's activity instead."""
        raise NotImplementedError

    # -- setup: test the connection, offer the CRM's lists -----------------------------------

    def check_connection(self) -> ConnectionCheck:
        """Test the connection: read the CRM account and one record, and say what the granted
        scopes (or plan) allow textback to do and what they do not.

        Raises :class:`~connector.kernel.errors.CredentialsRejectedError` (what to fix) when the
        CRM refuses the token or key, and
        :class:`~connector.kernel.errors.ProviderUnreachableError` when it cannot be reached.
        ``NotImplementedError`` for a CRM without the check.
        """
        raise NotImplementedError(f"{self.name} cannot test its connection")

    def list_choices(self) -> CrmChoices:
        """The CRM's pipelines and stages, owners, task queues, lead sources and pipeline
        statuses, as far as its API lists them (see :class:`~crm_adapters.catalog.CrmChoices`).

        Raises like :meth:`check_connection`; a list the granted scopes do not cover is a
        :class:`~connector.kernel.errors.PermanentProviderError` naming the scope.
        ``NotImplementedError`` for a CRM without lists.
        """
        raise NotImplementedError(f"{self.name} cannot list its choices")

    def send_app_event(self, event: AppEvent) -> None:
        """Put ``event`` on the contact's timeline, where the CRM's workflows can start from it;
        sending the same ``event_id`` again adds nothing. ``NotImplementedError`` when the CRM
        (or this connection to it) has no such events: the engagements logged are the record."""
        raise NotImplementedError

    def complete_action(self, callback_id: str, outputs: Mapping[str, str]) -> None:
        """Finish a CRM workflow action that was answered "wait" (``callback_id`` from its
        request) with ``outputs``. ``NotImplementedError`` when the CRM has no such actions."""
        raise NotImplementedError

    def verify_request(self, request: WebhookRequest) -> None:
        """Raise :class:`~connector.kernel.errors.WebhookVerificationError` unless a CRM webhook is
        authentic: :attr:`webhook`'s check with the credential it names."""
        spec = self.webhook
        if spec is None:
            raise WebhookVerificationError(f"{self.name} sends no webhooks this connector accepts")
        spec.verify(request, str(self.credentials.get(spec.credential) or ""))

    def parse_webhook(self, request: WebhookRequest) -> list[CrmEvent]:
        """The events of a verified delivery that the connector acts on, in order; an empty list
        for an authentic delivery we only acknowledge (a topic nobody subscribed to, a test ping).

        Raises :class:`~connector.kernel.errors.MalformedWebhookError` for a payload that cannot be
        read. The default acts on nothing.
        """
        return []
