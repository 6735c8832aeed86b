"""OAuth installations: the database-backed :class:`~crm_adapters.base.TokenStore`.

Tokens are sealed with the credential key. The per-installation lock that guards a refresh with
a rotating refresh token must hold across ``textback worker`` processes on several machines:
on PostgreSQL it is a session advisory lock (``pg_advisory_lock``), on SQLite (one machine by
nature) an exclusive ``flock`` on a lock file beside the database, plus a thread lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from connector.crypto import CredentialBox
from connector.events import utcnow
from connector.storage.db import Database
from connector.storage.models import Installation
from crm_adapters.base import OAuthTokens

_thread_locks: dict[tuple[str, str], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(key: tuple[str, str]) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


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
            from connector.errors import ProviderAuthError

            raise ProviderAuthError(
                f"{self.crm} is not installed for account {self.account_id}: open the install "
                "link (textback accounts install-link)", provider=self.crm)
        return row  # type: ignore[no-any-return]

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the installation's lock, across threads, processes and (PostgreSQL) machines."""
        key = (self.account_id, self.crm)
        with _thread_lock(key):
            if self.db.engine.dialect.name == "postgresql":
                lock_id = int.from_bytes(
                    hashlib.sha256(f"textback:{self.account_id}:{self.crm}".encode()).digest()[:8],
                    "big", signed=True)
                with self.db.engine.connect() as conn:
                    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
                    conn.commit()
                    try:
                        yield
                    finally:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                        conn.commit()
            else:
                path = Path(self.db.engine.url.database or "var/textback.db")
                lock_file = path.with_name(f"{path.name}.{self.account_id}.{self.crm}.lock")
                with open(lock_file, "a+") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        fcntl.flock(handle, fcntl.LOCK_UN)

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
            row.updated_at = utcnow()

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
