"""OAuth installations: the database-backed :class:`~crm_adapters.base.TokenStore`.

Tokens are sealed with the credential key. The per-installation lock that guards a refresh with
a rotating refresh token holds across ``textback worker`` processes on several machines
(:func:`connector.storage.locks.named_lock`).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import select

from connector.kernel import clock
from connector.kernel.errors import ProviderAuthError
from connector.storage.crypto import CredentialBox
from connector.storage.db import Database
from connector.storage.locks import named_lock
from connector.storage.models import Installation
from crm_adapters.base import OAuthTokens


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
                      tokens: OAuthTokens, external_id: str | None = None) -> None:
    """Create or replace an account's installation of a CRM (after the OAuth callback)."""
    with db.session() as s:
        row = s.get(Installation, (account_id, crm))
        if row is None:
            row = Installation(account_id=account_id, crm=crm, tokens="")
            s.add(row)
        row.tokens = seal_tokens(box, tokens)
        row.expires_at = tokens.expires_at
        row.external_id = external_id
        row.status, row.status_reason = "active", None


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
        """The current tokens (read fresh from the database)."""
        with self.db.session() as s:
            return open_tokens(self.box, self._row(s).tokens)

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
