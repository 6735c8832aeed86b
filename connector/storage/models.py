"""SQLAlchemy 2 models: the database is the source of truth; the queue only wakes workers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates
from sqlalchemy.types import JSON, TypeDecorator

from connector.kernel import clock
from connector.storage.states import check_call_transition

#: Room for a carrier's caller-verification status (Twilio's ``StirVerstat`` is 22 characters).
ATTESTATION_LENGTH = 64


def new_id() -> str:
    """A random id for our own rows."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores none of the zone by itself)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base; every timestamp is stored as an aware UTC datetime."""

    type_annotation_map = {datetime: UTCDateTime()}


class Account(Base):
    """A business: its settings (account file minus secrets) and encrypted credentials."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    carrier_kind: Mapped[str] = mapped_column(String(32))
    crm_kind: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict] = mapped_column(JSON)  # type: ignore[type-arg]
    carrier_credentials: Mapped[str] = mapped_column(Text)  # sealed
    # Sealed credentials of a separate SMS carrier (carrier.sms), for call-event sources that
    # cannot text (CallRail) or accounts that text through another provider.
    sms_credentials: Mapped[str | None] = mapped_column(Text)
    crm_credentials: Mapped[str] = mapped_column(Text)  # sealed
    crm_needs_reauth: Mapped[bool] = mapped_column(Boolean, default=False)
    # How the CRM credentials connect: "oauth" (an app install, tokens in ``installations``) or
    # "token" (a private-app token or API key in the credentials); None on rows from before it.
    crm_auth: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class WebhookReceipt(Base):
    """One authentic webhook delivery, unique per provider event, so re-deliveries do nothing."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (UniqueConstraint("account_id", "provider", "kind", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=clock.now)


class Call(Base):
    """A missed call and everything the connector did about it."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("account_id", "carrier", "event_id"),
        Index("ix_calls_account_caller", "account_id", "caller", "occurred_at"),
        Index("ix_calls_state_due", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    carrier: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))
    caller: Mapped[str | None] = mapped_column(String(20))
    caller_raw: Mapped[str] = mapped_column(String(64), default="")
    called: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    ring_seconds: Mapped[float | None] = mapped_column(Float)
    voicemail: Mapped[bool] = mapped_column(Boolean, default=False)
    attestation: Mapped[str | None] = mapped_column(String(ATTESTATION_LENGTH))
    # received -> decided -> texted|suppressed -> synced (CRM done) ; failed when stuck for good
    state: Mapped[str] = mapped_column(String(16), default="received")
    decision: Mapped[str | None] = mapped_column(String(16))  # text | suppress
    reason: Mapped[str | None] = mapped_column(String(40))
    # The policy's rule-by-rule trace: [[rule, passed, facts], ...], for ``textback explain``.
    decision_trace: Mapped[list | None] = mapped_column(JSON)  # type: ignore[type-arg]
    scenario: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(8))
    send_at: Mapped[datetime | None]
    burst_leader_id: Mapped[str | None] = mapped_column(String(32))
    line_type: Mapped[str | None] = mapped_column(String(24))
    # Who owns the follow-up (a routing.owners id, which is the CRM user id), and the clock of
    # the conversation: the customer's first reply and the first human response after it.
    owner_id: Mapped[str | None] = mapped_column(String(100))
    customer_replied_at: Mapped[datetime | None]
    human_responded_at: Mapped[datetime | None]
    crm_state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)

    @validates("state")
    def _check_state(self, _key: str, new: str) -> str:
        """Refuse a move the state table does not allow (a bug, never a provider's doing)."""
        return check_call_transition(self.state, new).value



class Message(Base):
    """A text in either direction. Outbound rows are written as an intent before the carrier call."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("account_id", "purpose_key"),
        Index("ix_messages_carrier_id", "account_id", "carrier_message_id"),
        Index("ix_messages_customer", "account_id", "customer"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(8))  # outbound | inbound
    # What makes this message unique: its purpose and what it belongs to (see states.Purpose).
    purpose_key: Mapped[str] = mapped_column(String(240))
    customer: Mapped[str] = mapped_column(String(20))
    business_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    # inbound: what the text asked for (opt_out, opt_in, help, none); see connector.domain.optout
    intent: Mapped[str | None] = mapped_column(String(16))
    # outbound: intent -> sent -> delivered | undelivered | failed ; ambiguous until reconciled
    status: Mapped[str] = mapped_column(String(16))
    carrier_message_id: Mapped[str | None] = mapped_column(String(100))
    error_code: Mapped[str | None] = mapped_column(String(40))
    segments: Mapped[int | None] = mapped_column(Integer)
    # How many times we called the carrier for this text; > 0 with no result means reconcile first.
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None]
    crm_state: Mapped[str] = mapped_column(String(16), default="pending")
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class CallerState(Base):
    """Per account and caller: when we last texted them, claimed atomically to stop double texts."""

    __tablename__ = "caller_states"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_text_at: Mapped[datetime | None]
    last_text_call_id: Mapped[str | None] = mapped_column(String(32))


class OptOut(Base):
    """A number that asked this business to stop texting it."""

    __tablename__ = "opt_outs"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(40))  # keyword, carrier error code ...
    opted_out_at: Mapped[datetime] = mapped_column(default=clock.now)


class LineType(Base):
    """A carrier line-type lookup (mobile, landline ...), cached per account and number."""

    __tablename__ = "line_types"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    line_type: Mapped[str] = mapped_column(String(24))
    looked_up_at: Mapped[datetime] = mapped_column(default=clock.now)


class ContactProfile(Base):
    """What the CRM told us about a caller that templates use (first name, language)."""

    __tablename__ = "contact_profiles"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(16))
    # The "pause automation" switch on the conversation page: no automated texts to this caller.
    automation_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class ConsentEvent(Base):
    """The consent and opt-out log: who, what (opt_out, opt_in, help), how, when, which number."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_account_number", "account_id", "number", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(60))  # the keyword, a carrier code, an admin
    business_number: Mapped[str | None] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(default=clock.now)


class CallActivity(Base):
    """Answered calls either way between a business number and a customer.

    A pending text is cancelled when the business calls the customer back or the customer calls
    again and is answered; these rows are how the workflow knows.
    """

    __tablename__ = "call_activity"
    __table_args__ = (
        UniqueConstraint("account_id", "carrier", "event_id"),
        Index("ix_call_activity_customer", "account_id", "customer", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    carrier: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))
    customer: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(8))  # inbound | outbound
    at: Mapped[datetime] = mapped_column(default=clock.now)


class Installation(Base):
    """A CRM's OAuth installation for an account: sealed tokens, expiry, and whether it is live."""

    __tablename__ = "installations"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    crm: Mapped[str] = mapped_column(String(32), primary_key=True)
    tokens: Mapped[str] = mapped_column(Text)  # sealed OAuthTokens
    expires_at: Mapped[datetime | None]
    # The CRM's own id for the installing account (Jobber account, HubSpot portal, HCP company),
    # which CRM webhooks carry instead of ours.
    external_id: Mapped[str | None] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disconnected
    status_reason: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    # When the CRM was (last) installed, and by whom (the installing user's email or name).
    connected_at: Mapped[datetime | None]
    connected_by: Mapped[str | None] = mapped_column(String(200))


class RoutingState(Base):
    """Where a round-robin team's rotation stands, so it is fair across restarts."""

    __tablename__ = "routing_state"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    turns: Mapped[int] = mapped_column(Integer, default=0)


class EscalationTimer(Base):
    """A durable timer: when due and still open, the next person is alerted, once."""

    __tablename__ = "escalation_timers"
    __table_args__ = (
        UniqueConstraint("call_id", "level"),
        Index("ix_escalation_due", "fired_at", "cancelled_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    level: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]


#: What a user may do: an admin sets accounts up; a rep sees conversations and the dashboard.
ROLES = ("admin", "rep")


class User(Base):
    """Someone who may sign in to the pages, with a role, for the accounts they belong to."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(8), default="rep", server_default="rep")
    # An operator: every account, those added later too (else only their AccountMember rows).
    all_accounts: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    # Raised on sign-out everywhere and on a password change: sessions that carry an older
    # value are no longer valid.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AccountMember(Base):
    """A user belongs to an account: they see it (and, as an admin, set it up)."""

    __tablename__ = "account_members"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )


class AuditEntry(Base):
    """Who changed what in an account from the setup pages (field paths; secrets never kept)."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_account", "account_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_email: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    action: Mapped[str] = mapped_column(String(60))  # the page or button: "hours", "test send"
    # [{"field": "hours.weekly.mon", "before": ..., "after": ...}, ...]; secrets shown as "changed"
    changes: Mapped[list] = mapped_column(JSON, default=list)  # type: ignore[type-arg]


class CrmLink(Base):
    """Our id -> the CRM record made for it, so a retried step never makes a second record."""

    __tablename__ = "crm_links"
    __table_args__ = (UniqueConstraint("account_id", "crm", "object_type", "local_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    crm: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))  # contact, lead, call, message, task
    local_key: Mapped[str] = mapped_column(String(200))
    crm_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class CallEvent(Base):
    """The audit trail of a call: each step, its outcome and why; what ``textback explain`` prints."""

    __tablename__ = "call_events"
    __table_args__ = (Index("ix_call_events_call", "call_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    step: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")


class SandboxRecord(Base):
    """What the built-in sandbox carrier and CRM 'sent': texts and CRM records, as JSON."""

    __tablename__ = "sandbox_records"
    __table_args__ = (Index("ix_sandbox_account_kind", "account_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # sms, contact, call, message, task, lead
    key: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict] = mapped_column(JSON)  # type: ignore[type-arg]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class UsedNonce(Base):
    """A one-time value already spent: a webhook nonce, an OAuth ``state``.

    ``scope`` says whose values they are (``plivo:<account>``, ``oauth-state``); a second insert
    of the same pair fails on the primary key, which is how a replay is refused across processes.
    Rows past ``expires_at`` can no longer be replayed anyway and are purged by the sweeper.
    """

    __tablename__ = "used_nonces"
    __table_args__ = (Index("ix_used_nonces_expires", "expires_at"),)

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime]


class SignInFailure(Base):
    """A refused sign-in, kept for the rate limit: per email and per client address."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(250))  # "email:<address>" or "ip:<address>"
    at: Mapped[datetime] = mapped_column(default=clock.now)


class RateLimitBucket(Base):
    """A shared rate-limit bucket (``connector.kernel.ratelimit``) when the queue is not Redis.

    ``key`` names the provider's budget and the portal (``hubspot:<account>``); times are epoch
    seconds. Every worker updates the row under a row lock, so they draw on one budget.
    """

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    held: Mapped[float] = mapped_column(Float, default=0.0)
