"""The Housecall Pro CRM adapter: :class:`HousecallProCrm`, its credentials and API call budget.

How the connector's steps land in Housecall Pro (``connector.jobs.crm_sync`` order):

1. ``find_or_create_contact`` -> a **customer** (:mod:`.customers`).
2. ``set_pipeline_stage`` -> a **lead** for that customer, assigned to ``LeadSpec.owner_id``
   (the account's employee), tagged as ours, its pipeline status moved forward to the mapped
   one (:mod:`.leads`). An open lead is reused: the one the connector passes back, else an open
   lead of ours found on the customer. Its id comes back as ``deal_id`` in every later step.
3. ``log_call`` / ``log_message`` -> entries in the **customer's notes** (:mod:`.notes`); the API
   has no activity object and no notes on customers or leads.
4. ``create_task`` -> Housecall Pro has no task object: the follow-up *is* the lead. With a
   ``deal_id`` (the connector passes one when the pipeline step ran) the task's details go to
   the customer's notes under that lead and the lead id is returned as the task id. Without one
   (no pipeline step for the account) a new lead is made with the details as its note, between
   two entries in the customer's notes: a pending one before the create, and the details under
   the new lead after it (:mod:`.follow_ups`). ``TaskSpec.owner_id`` is the employee id; there
   is no priority and no task queue.
5. ``append_to_task`` -> reads the lead for its customer and appends to the customer's notes.

So one Housecall Pro lead serves both the pipeline step and the follow-up.

A retry after an answer we never saw (the worker died, the write timed out) asks first:
``find_call_log`` / ``find_message_log`` look for the entry's marker in the customer's notes,
``find_lead`` for the open lead of ours that ``set_pipeline_stage`` would reuse, ``find_task``
for the follow-up entry holding the call's ``textback call <id>`` line in the customer's notes
and, when only the pending entry is there, for the newest open lead of ours no entry names
(:mod:`.follow_ups`). All only read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import Schema, fields, validates_schema

from connector.kernel.errors import ConfigurationError, PermanentProviderError
from connector.kernel.http import DEFAULT_TIMEOUT, WebhookRequest, new_session
from connector.kernel.ratelimit import RateLimiter, meter_session, portal_key
from crm_adapters import oauth_flow
from crm_adapters.base import (
    PER_ACCOUNT,
    CallLog,
    CrmAdapter,
    CrmContact,
    CrmEvent,
    LeadSpec,
    MessageLog,
    OAuthEndpoints,
    TaskSpec,
    TokenStore,
    WebhookSpec,
)
from crm_adapters.catalog import ConnectionCheck, CrmChoices
from crm_adapters.housecallpro import catalog, notes, webhooks
from crm_adapters.housecallpro.client import HcpClient, OAuthApp
from crm_adapters.housecallpro.customers import CustomerFinder
from crm_adapters.housecallpro.errors import PROVIDER
from crm_adapters.housecallpro.follow_ups import FollowUps
from crm_adapters.housecallpro.leads import Leads, PipelineDecision, PipelineStatus
from crm_adapters.housecallpro.limits import HousecallProMeter

_NOTES = ("GET /customers/{customer_id}", "PUT /customers/{customer_id}")

#: The Housecall Pro requests each operation makes, in order, on the success path. The status
#: listing is cached per adapter for ten minutes (``:first`` variants include it); a notes
#: entry already present skips the ``PUT``. ``create_task:new_lead`` is a follow-up whose body
#: has the ``textback call <id>`` line (as the connector's always does): the open leads of
#: ours, a pending entry listing them, the lead, the entry naming it; ``:unmarked`` is one
#: without that line. ``find_task:pending`` is the find that meets a pending entry without the
#: entry naming its lead.
API_CALLS: Mapping[str, tuple[str, ...]] = {
    "find_or_create_contact:returning": ("GET /customers",),
    "find_or_create_contact:new": ("GET /customers", "POST /customers"),
    "set_pipeline_stage:new": ("GET /leads", "POST /leads", "PUT /pipeline/statuses"),
    "set_pipeline_stage:new:first": (
        "GET /pipeline/statuses",
        "GET /leads",
        "POST /leads",
        "PUT /pipeline/statuses",
    ),
    "set_pipeline_stage:open": ("GET /leads/{id}",),
    "log_call": _NOTES,
    "log_message": _NOTES,
    "create_task:on_lead": _NOTES,
    "create_task:new_lead": ("GET /leads", *_NOTES, "POST /leads", *_NOTES),
    "create_task:new_lead:unmarked": ("POST /leads",),
    "append_to_task": ("GET /leads/{id}", *_NOTES),
    "find_call_log": ("GET /customers/{customer_id}",),
    "find_message_log": ("GET /customers/{customer_id}",),
    "find_lead": ("GET /leads",),
    "find_task": ("GET /customers/{customer_id}",),
    "find_task:pending": ("GET /customers/{customer_id}", "GET /leads"),
}

#: How many pipeline decisions an adapter remembers for :meth:`HousecallProCrm.pipeline_decision`.
DECISIONS_KEPT = 512


class HousecallProCredentials(Schema):
    """``crm.credentials`` for Housecall Pro: exactly one of two schemes.

    - ``api_key``: a company API key (MAX plan, My Apps > API Key Management) or a partner's
      Application API key, sent as ``Authorization: Token``.
    - ``client_id`` + ``client_secret``: a partner OAuth app; the tokens come from the OAuth
      install and live in the connector's token store, never here.

    ``webhook_signing_secret`` is the signing secret of the company's webhook settings, needed
    only to accept webhooks.
    """

    api_key = fields.String(load_default=None, allow_none=True, metadata={"secret": True})
    client_id = fields.String(load_default=None, allow_none=True)
    client_secret = fields.String(load_default=None, allow_none=True, metadata={"secret": True})
    webhook_signing_secret = fields.String(
        load_default=None, allow_none=True, metadata={"secret": True}
    )

    @validates_schema
    def _exactly_one_scheme(self, data: dict[str, Any], **kwargs: Any) -> None:
        partial = kwargs.get("partial")
        if partial is True:
            return
        kept = set(partial or ())  # fields an export redacted: present, just not shown
        has = {n for n in ("api_key", "client_id", "client_secret") if data.get(n) or n in kept}
        oauth = has & {"client_id", "client_secret"}
        if "api_key" in has and oauth:
            raise marshmallow.ValidationError(
                "give either api_key (API key) or client_id and client_secret (OAuth), not both",
                field_name="api_key",
            )
        if oauth == {"client_id"}:
            raise marshmallow.ValidationError(
                "required with client_id (OAuth)", field_name="client_secret"
            )
        if oauth == {"client_secret"}:
            raise marshmallow.ValidationError(
                "required with client_secret (OAuth)", field_name="client_id"
            )
        if not has:
            raise marshmallow.ValidationError(
                "required: a Housecall Pro API key, or client_id and client_secret for OAuth",
                field_name="api_key",
            )


@dataclass(frozen=True)
class HcpEmployee:
    """An active employee, for the setup page's "assign follow-ups to" choice."""

    id: str
    name: str
    email: str | None
    role: str | None


class HousecallProCrm(CrmAdapter):
    """Housecall Pro over ``requests``: customers, leads, pipeline statuses, notes, webhooks.

    Account settings beyond the credentials are keyword arguments (see
    :meth:`options_from_mapping`): ``lead_source`` for new customers and leads,
    ``notifications_enabled`` for new customers (None leaves Housecall Pro's default),
    ``company_id`` (``X-Company-Id``, one location of a multi-location company) and
    ``lead_tag`` (marks our leads so a lost link still finds them; None or empty turns that
    off, which an account asks for with ``crm.mapping.lead_tag: ""``: a null there keeps the
    default).
    ``token_store`` is required for OAuth credentials. One attempt per request; the connector
    retries.
    """

    name: ClassVar[str] = "housecallpro"
    display_name: ClassVar[str] = "Housecall Pro"
    docs_url: ClassVar[str] = "https://docs.housecallpro.com/"
    default_api_base_url: ClassVar[str] = "https://api.housecallpro.com"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"contacts", "call_log", "message_log", "tasks", "pipeline", "webhooks"}
    )
    config_schema = HousecallProCredentials
    #: Webhooks are set up per company, so each account has its own URL; Housecall Pro's payload
    #: names no account we could verify against.
    webhook = WebhookSpec(url=PER_ACCOUNT, credential="webhook_signing_secret",
                          verify=webhooks.verify, topics=webhooks.TOPICS)
    # Partner OAuth, for approved integration partners only (client id and secret come from
    # Housecall Pro after review); companies without a partner app use an API key and none of
    # this. The endpoints are those of Housecall Pro's authentication guide as third-party
    # clients cite it; the OpenAPI document declares the scheme with empty URLs.
    # https://docs.housecallpro.com/docs/housecall-public-api/b87d37ae48a0d-authentication
    # The token request is a JSON body, as the working third-party clients send it (the server
    # is Rails Doorkeeper, which takes form bodies too); the answer is the standard shape plus
    # Doorkeeper's ``created_at``, tokens last about 30 days. Scopes beyond ``public`` are
    # undocumented, so none is asked for and the app's defaults apply *(inferred)*. Whether the
    # refresh token rotates is undocumented: refreshes happen under the installation lock and
    # the old token is kept when none comes back. No revoke endpoint is documented.
    oauth = OAuthEndpoints(
        authorize_url="https://pro.housecallpro.com/oauth/authorize",
        token_url="https://api.housecallpro.com/oauth/token",  # noqa: S106 - a URL
        request_body="json",
        kept_fields=("scope", "token_type", "created_at", "company_id"),
    )

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
        token_store: TokenStore | None = None,
        lead_source: str | None = None,
        notifications_enabled: bool | None = None,
        company_id: str | None = None,
        lead_tag: str | None = "textback",
        token_url: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        rate_limiter: RateLimiter | None = None,
        rate_limit_key: str = "",
    ) -> None:
        try:
            super().__init__(credentials, api_base_url=api_base_url)
        except marshmallow.ValidationError as exc:
            problems = exc.normalized_messages()
            fields_named = ", ".join(f"crm.credentials.{k}" for k in problems)
            raise ConfigurationError(
                f"Housecall Pro credentials refused: {problems}", field=fields_named
            ) from None
        creds = self.credentials
        secrets = tuple(
            str(creds[k]) for k in ("api_key", "client_secret", "webhook_signing_secret")
            if creds.get(k)
        )
        app = None
        if not creds.get("api_key"):
            if token_store is None:
                raise ConfigurationError(
                    "Housecall Pro OAuth credentials need the installation's token store: "
                    "connect through /oauth/housecallpro/install",
                    field="crm.credentials.client_id",
                )
            app = OAuthApp(
                type(self),
                str(creds["client_id"]),
                str(creds["client_secret"]),
                token_url or oauth_flow.token_url(type(self), self.api_base_url),
            )
        self._oauth = app is not None
        self.company_id = company_id
        if rate_limiter is not None:
            credential = str(creds.get("api_key") or creds.get("client_id") or "")
            key = rate_limit_key or company_id or portal_key(credential)
            session = meter_session(session or new_session(), HousecallProMeter(rate_limiter, key))
        self._client = HcpClient(
            base_url=self.api_base_url,
            api_key=creds.get("api_key") or None,
            app=app,
            token_store=token_store if app is not None else None,
            company_id=company_id,
            timeout=timeout,
            session=session,
            secrets=secrets,
        )
        self._customers = CustomerFinder(
            self._client, lead_source=lead_source, notifications_enabled=notifications_enabled
        )
        self._leads = Leads(self._client, lead_source=lead_source, tag=lead_tag)
        self._notes = notes.CustomerNotes(self._client)
        self._follow_ups = FollowUps(self._notes, self._leads)
        self._decisions: OrderedDict[str, PipelineDecision] = OrderedDict()
        self._decisions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<HousecallProCrm api_base_url={self.api_base_url!r} auth={self.auth_scheme}>"

    @property
    def auth_scheme(self) -> str:
        """``"api_key"`` or ``"oauth"``: which credential the requests carry."""
        return self._client.scheme

    accepts_token_store: ClassVar[bool] = True

    @staticmethod
    def options_from_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor keyword arguments from the account's ``crm.mapping`` (unset keys left out)."""
        keys = ("lead_source", "notifications_enabled", "company_id", "lead_tag")
        return {k: mapping[k] for k in keys if mapping.get(k) is not None}

    # -- contacts and activities ------------------------------------------------------------

    def find_or_create_contact(self, phone: str, name: str | None = None) -> CrmContact:
        """Search ``q`` by national digits, compare mobile/home/work; create on a miss."""
        return self._customers.find_or_create(phone, name)

    def log_call(self, call: CallLog) -> str:
        """Append the missed call to the customer's notes; the id names the entry."""
        ref, entry = notes.call_entry(call)
        self._notes.append(call.contact_id, ref, entry, operation="call log")
        return notes.note_record_id(call.contact_id, ref)

    def log_message(self, message: MessageLog) -> str:
        """Append one text to the customer's notes; the id names the entry."""
        ref, entry = notes.message_entry(message)
        self._notes.append(message.contact_id, ref, entry, operation="message log")
        return notes.note_record_id(message.contact_id, ref)

    def find_call_log(self, call: CallLog) -> str | None:
        """The id :meth:`log_call` returned for ``call`` when its entry is in the customer's
        notes, else None. One ``GET /customers/{id}``; nothing is written."""
        ref, _ = notes.call_entry(call)
        if not self._notes.holds(call.contact_id, ref, operation="call log lookup"):
            return None
        return notes.note_record_id(call.contact_id, ref)

    def find_message_log(self, message: MessageLog) -> str | None:
        """The id :meth:`log_message` returned for ``message`` when its entry is in the
        customer's notes, else None. One ``GET /customers/{id}``; nothing is written."""
        ref, _ = notes.message_entry(message)
        if not self._notes.holds(message.contact_id, ref, operation="message log lookup"):
            return None
        return notes.note_record_id(message.contact_id, ref)

    # -- follow-up and pipeline -------------------------------------------------------------

    def create_task(self, task: TaskSpec) -> str:
        """The follow-up is a lead: file the details under ``deal_id``, or make a lead.

        A new lead is made between a pending entry in the customer's notes and the entry naming
        it, when the body has its ``textback call <id>`` line (see :mod:`.follow_ups`), so that
        :meth:`find_task` can tell which lead an attempt made.
        """
        if task.deal_id:
            ref, entry = notes.task_entry(task, task.deal_id)
            self._notes.append(task.contact_id, ref, entry, operation="task details")
            return task.deal_id
        return self._follow_ups.create_lead(task)

    def find_task(self, task: TaskSpec, marker: str) -> str | None:
        """The lead an earlier :meth:`create_task` of ``task`` returned, else None; nothing is
        written. ``marker`` is the call id of the body's ``textback call <id>`` line.

        One ``GET /customers/{id}``: the follow-up entry holding ``textback call <marker>`` (as
        whole words) names the lead (with a ``deal_id``, that lead). When only the pending entry
        is there (the earlier attempt stopped before naming its lead, or the create's answer was
        lost), ``GET /leads`` too: the customer's newest open lead carrying ``lead_tag`` that no
        entry names and the pending entry does not list as open before it, or None when Housecall
        Pro made none. Without a lead tag that last case always answers None: nothing tells
        our lead from a rep's, so the lead can repeat.
        """
        return self._follow_ups.find(task, marker)

    def append_to_task(self, task_id: str, text: str) -> None:
        """Add a line for the lead ``task_id`` to its customer's notes."""
        lead = self._leads.get(task_id)
        customer = (lead or {}).get("customer")
        customer_id = customer.get("id") if isinstance(customer, dict) else None
        if not customer_id:
            raise PermanentProviderError(
                f"Housecall Pro lead {task_id} is gone or has no customer", provider=PROVIDER,
                status=404,
            )
        ref, entry = notes.task_line(task_id, text)
        self._notes.append(str(customer_id), ref, entry, operation="task append")

    def set_pipeline_stage(self, lead: LeadSpec, existing_id: str | None = None) -> str:
        """Reuse or make the customer's lead and move its status forward to ``lead.stage``.

        Never moves a status back; :meth:`pipeline_decision` tells what was done and why.
        """
        lead_id, decision = self._leads.set_pipeline_stage(lead, existing_id)
        with self._decisions_lock:
            self._decisions[lead_id] = decision
            self._decisions.move_to_end(lead_id)
            while len(self._decisions) > DECISIONS_KEPT:
                self._decisions.popitem(last=False)
        return lead_id

    def find_lead(self, lead: LeadSpec) -> str | None:
        """The open lead of ours that :meth:`set_pipeline_stage` made or kept for
        ``lead.contact_id``, else None. ``GET /leads`` (one or two pages); nothing is written.

        It is the lead ``set_pipeline_stage`` itself would reuse: the customer's **oldest** open
        lead carrying ``lead_tag``, so a retry and every later call agree on one lead even if
        two of ours are open. A won or lost lead is not returned (the next call makes a new
        one). Our leads are recognisable by the tag only: Housecall Pro's ``Lead`` carries no
        note and no creation time, and its lead source and employee are shared with leads reps
        make. Without a lead tag this returns None without a request, and a retry makes the
        lead again.
        """
        found = self._leads.find_ours(lead.contact_id, operation="lead lookup", ambiguous=False)
        return str(found["id"]) if found is not None else None

    def uses_oauth(self) -> bool:
        """True when this account connects as a partner app (OAuth), not with an API key."""
        return self._oauth

    def pipeline_note(self, lead_id: str) -> str | None:
        """The last pipeline decision for ``lead_id`` in words, for the call's audit trail."""
        decision = self.pipeline_decision(lead_id)
        if decision is None:
            return None
        return f"lead {decision.lead}, status {decision.status}: {decision.reason}"

    def pipeline_decision(self, lead_id: str) -> PipelineDecision | None:
        """What the last :meth:`set_pipeline_stage` did to ``lead_id`` here, for the audit trail."""
        with self._decisions_lock:
            return self._decisions.get(lead_id)

    # -- setup helpers ---------------------------------------------------------------------

    def list_employees(self) -> list[HcpEmployee]:
        """Active employees (``GET /employees``): their ``id`` is ``crm.mapping.owner_id``."""
        found = []
        for e in self._client.paged("/employees", "employees", operation="employee list"):
            if e.get("id"):
                name = " ".join(str(e.get(k) or "") for k in ("first_name", "last_name")).strip()
                found.append(HcpEmployee(str(e["id"]), name, e.get("email"), e.get("role")))
        return found

    def list_lead_statuses(self) -> list[PipelineStatus]:
        """The lead pipeline statuses in order (empty without a pipeline): ``crm.mapping.stage``."""
        return list(self._leads.statuses(refresh=True))

    def check_connection(self) -> ConnectionCheck:
        """One customer read; no scopes to report (see :mod:`.catalog`)."""
        return catalog.check_connection(self, self._client)

    def list_choices(self) -> CrmChoices:
        """Employees, lead sources and lead pipeline statuses (see :mod:`.catalog`)."""
        return catalog.list_choices(self, self._client)

    # -- webhooks --------------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest) -> list[CrmEvent]:
        """A converted lead; other events are acknowledged (see :mod:`.webhooks`)."""
        return webhooks.parse(request)
