"""One-time values: spend a nonce or an OAuth ``state`` once, across every process.

A value is spent by inserting it into ``used_nonces``; the primary key refuses a second insert of
the same ``(scope, nonce)``, so two processes that race on one replayed request see one success.
Rows are kept until ``expires_at`` (past it the value is refused for its age anyway) and purged
by the sweeper.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.kernel import clock
from connector.storage.models import UsedNonce


def spend(session: Session, scope: str, nonce: str, expires_at: datetime) -> bool:
    """Spend ``nonce`` in ``scope``; False when it was spent before (a replay).

    Runs in a savepoint of the caller's transaction and flushes; the caller commits.
    """
    try:
        with session.begin_nested():
            session.add(UsedNonce(scope=scope, nonce=nonce, expires_at=expires_at))
    except IntegrityError:
        return False
    return True


def purge_expired(session: Session) -> int:
    """Delete spent values past their expiry; the number deleted. The caller commits."""
    result = session.execute(delete(UsedNonce).where(UsedNonce.expires_at < clock.now()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
