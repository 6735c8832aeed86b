"""OAuth installations: the database-backed :class:`~crm_adapters.base.TokenStore`.

Tokens are sealed with the credential key. The per-installation lock that guards a refresh with
a rotating refresh token holds across ``textback worker`` processes on several machines
(:func:`connector.storage.locks.named_lock`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.kernel import clock
from connector.kernel.errors import ProviderAuthError
from connector.storage.crypto import CredentialBox
from connector.storage.db import Database
from connector.storage.locks import named_lock
from connector.storage.models import Account, AccountMember, Installation, User
from connector.storage.users import hash_password
from crm_adapters import CRMS
from crm_adapters.base import OAuthTokens

#: How an account's CRM connects: an OAuth app install, or a token/API key in its credentials.
CrmAuth = Literal["oauth", "token"]
#: What :func:`connection_state` says about an account's CRM connection.
ConnectionStatus = Literal["connected", "disconnected", "private token", "not connected"]


@dataclass(frozen=True)
class ConnectionState:
    """An account's CRM connection, as the pages and ``textback accounts list`` show it.

    ``status`` is ``connected`` (an OAuth install whose tokens work), ``disconnected`` (the app
    was uninstalled, refused or disconnected: ``disconnected_reason`` says why), ``private
    token`` (a private-app token or API key from the account file; nothing to install) or ``not
    connected`` (an OAuth CRM whose install has not been made yet). ``connected_by`` is the
    installing user's email (or name) when the CRM told us.
    """

    crm: str
    status: ConnectionStatus
    connected_at: datetime | None = None
    connected_by: str | None = None
    token_expires_at: datetime | None = None
    disconnected_reason: str | None = None

    def describe(self, zone: str | None = None) -> str:
        """One line for people: the status, when and by whom, the expiry or the reason; times
        in the IANA time ``zone`` (the account's), UTC when none is given."""
        tz = ZoneInfo(zone) if zone else UTC

        def when(moment: datetime) -> str:
            aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            return f"{aware.astimezone(tz):%Y-%m-%d %H:%M %Z}"

        installed = (f" {when(self.connected_at)}" if self.connected_at is not None else "") + \
            (f" by {self.connected_by}" if self.connected_by else "")
        if self.status == "connected":
            words = "connected" + (f" since{installed}" if installed else "")
            if self.token_expires_at is not None:
                words += f", token expires {when(self.token_expires_at)}"
        elif self.status == "disconnected":
            words = "disconnected" + (f": {self.disconnected_reason}"
                                      if self.disconnected_reason else "")
            words += f" (installed{installed})" if installed else ""
        else:
            words = self.status
        return words


def credentials_auth(crm_kind: str, credentials: Mapping[str, Any]) -> CrmAuth:
    """How credentials of ``crm_kind`` connect: ``oauth`` when the CRM installs through OAuth
    and they name an app (``client_id``) rather than a token or API key, else ``token``."""
    cls = CRMS.get(crm_kind)
    token_given = any(credentials.get(k) for k in ("access_token", "api_key"))
    if cls is not None and cls.oauth is not None and credentials.get("client_id") \
            and not token_given:
        return "oauth"
    return "token"


def connection_state(session: Session, account_id: str) -> ConnectionState:
    """The account's CRM connection (``LookupError`` for an unknown account)."""
    account = session.get(Account, account_id)
    if account is None:
        raise LookupError(f"no account {account_id!r}")
    crm = account.crm_kind
    row = session.get(Installation, (account_id, crm))
    if row is None:
        auth = account.crm_auth or _only_way(crm)
        if auth == "oauth":
            return ConnectionState(crm=crm, status="not connected")
        return ConnectionState(crm=crm, status="private token")
    if row.status != "active":
        return ConnectionState(crm=crm, status="disconnected", connected_at=row.connected_at,
                               connected_by=row.connected_by,
                               token_expires_at=row.expires_at,
                               disconnected_reason=row.status_reason)
    return ConnectionState(crm=crm, status="connected", connected_at=row.connected_at,
                           connected_by=row.connected_by, token_expires_at=row.expires_at)


def _only_way(crm_kind: str) -> CrmAuth:
    """For accounts stored before ``crm_auth`` was recorded: ``oauth`` for a CRM that connects
    only through OAuth (its credentials take no token or API key), else ``token``."""
    cls = CRMS.get(crm_kind)
    if cls is None or cls.oauth is None:
        return "token"
    fields = cls.config_schema().fields
    return "token" if "access_token" in fields or "api_key" in fields else "oauth"


def seal_tokens(box: CredentialBox, tokens: OAuthTokens) -> str:
    """Encrypt an OAuthTokens value for storage."""
    return box.seal({
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
        "extra": json.loads(json.dumps(dict(tokens.extra or {}), default=str)),
    })


def open_tokens(box: CredentialBox, sealed: str) -> OAuthTokens:
    """Decrypt stored tokens."""
    data: dict[str, Any] = box.open(sealed)
    expires = data.get("expires_at")
    return OAuthTokens(
        access_token=data["access_token"],
        refresh_token=data.get("refresh_token"),
        expires_at=datetime.fromisoformat(expires) if expires else None,
        extra=data.get("extra") or None,
    )


def save_installation(db: Database, box: CredentialBox, account_id: str, crm: str,
                      tokens: OAuthTokens, external_id: str | None = None,
                      connected_by: str | None = None) -> None:
    """Create or replace an account's installation of a CRM (after the OAuth callback).

    ``connected_by`` is who approved it (their email or name, when the CRM says).
    """
    with db.session() as s:
        row = s.get(Installation, (account_id, crm))
        if row is None:
            row = Installation(account_id=account_id, crm=crm, tokens="")
            s.add(row)
        row.tokens = seal_tokens(box, tokens)
        row.expires_at = tokens.expires_at
        row.external_id = external_id
        row.status, row.status_reason = "active", None
        row.connected_at, row.connected_by = clock.now(), (connected_by or None)


def installation_external_id(db: Database, account_id: str, crm: str) -> str | None:
    """The CRM's own id (a HubSpot portal's ``hub_id``) of an account's installation, if any."""
    with db.session() as s:
        return s.scalar(select(Installation.external_id).where(
            Installation.account_id == account_id, Installation.crm == crm))


def installation_for_external_id(db: Database, crm: str, external_id: str) -> str | None:
    """The account whose installation of ``crm`` has the CRM's own id ``external_id``."""
    with db.session() as s:
        return s.scalar(select(Installation.account_id).where(
            Installation.crm == crm, Installation.external_id == external_id))


class DbTokenStore:
    """The TokenStore of one account's installation of one CRM."""

    def __init__(self, db: Database, box: CredentialBox, account_id: str, crm: str) -> None:
        self.db, self.box, self.account_id, self.crm = db, box, account_id, crm

    def __repr__(self) -> str:
        return f"DbTokenStore({self.account_id!r}, {self.crm!r})"

    def _row(self, session: Any) -> Installation:
        row = session.get(Installation, (self.account_id, self.crm), populate_existing=True)
        if row is None:
            raise ProviderAuthError(
                f"{self.crm} is not installed for account {self.account_id}: open the install "
                "link (textback accounts install-link)", provider=self.crm)
        return row  # type: ignore[no-any-return]

    def locked(self) -> AbstractContextManager[None]:
        """Hold the installation's lock, across threads, processes and (PostgreSQL) machines."""
        return named_lock(self.db.engine, f"installation:{self.account_id}:{self.crm}")

    def load(self) -> OAuthTokens:
        """The current tokens (read fresh from the database); ProviderAuthError, saying why and
        what to do, once the installation is disconnected (CRM work waits for a new install)."""
        with self.db.session() as s:
            row = self._row(s)
            if row.status != "active":
                raise ProviderAuthError(
                    f"{self.crm} is disconnected from account {self.account_id} "
                    f"({row.status_reason or 'no reason given'}): install the app again "
                    f"(/oauth/{self.crm}/install)", provider=self.crm, code="disconnected")
            return open_tokens(self.box, row.tokens)

    def save(self, tokens: OAuthTokens) -> None:
        """Replace access and refresh token together, in one committed update."""
        with self.db.session() as s:
            row = self._row(s)
            row.tokens = seal_tokens(self.box, tokens)
            row.expires_at = tokens.expires_at
            row.updated_at = clock.now()

    def mark_disconnected(self, reason: str) -> None:
        """The installation is gone: stop calling the CRM until it is installed again."""
        with self.db.session() as s:
            row = self._row(s)
            row.status, row.status_reason = "disconnected", reason[:200]

    def is_active(self) -> bool:
        """False once the CRM said the installation is gone."""
        with self.db.session() as s:
            row = s.get(Installation, (self.account_id, self.crm))
            return row is not None and row.status == "active"


def installer_user(session: Session, email: str | None, account_id: str, *, created: bool
                   ) -> User | None:
    """The user a marketplace install signs in, or None when it signs nobody in.

    The CRM vouches for the installer's email. A new user is made an admin of the account the
    install ``created`` (with no password: they sign in through the CRM, or an operator sets
    one). An existing user is signed in when they are an admin who belongs to the account (or
    it was just created for them, which adds them to it); an operator (every account) or a rep
    is never signed in this way: they sign in with their password.
    """
    if not email:
        return None
    user = session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if user is None:
        if not created:
            return None  # a reinstall by someone the account has not added: connect only
        user = User(email=email.lower(), name=email.split("@")[0], role="admin",
                    password_hash=hash_password(secrets.token_urlsafe(32)),
                    all_accounts=False, session_epoch=0)
        session.add(user)
        session.flush()
        session.add(AccountMember(user_id=user.id, account_id=account_id))
        session.flush()
        return user
    if user.all_accounts or user.role != "admin":
        return None
    member = session.get(AccountMember, (user.id, account_id))
    if member is None:
        if not created:
            return None
        session.add(AccountMember(user_id=user.id, account_id=account_id))
        session.flush()
    return user
