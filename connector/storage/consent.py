"""The consent ledger: who opted out of a business's texts, and every opt-out and opt-in logged."""

from __future__ import annotations

from sqlalchemy.orm import Session

from connector.storage.models import ConsentEvent, OptOut


def record_opt_out(session: Session, account_id: str, number: str, source: str,
                   business_number: str | None) -> bool:
    """Opt a number out for this business and log it; False when it already was."""
    if session.get(OptOut, (account_id, number)) is not None:
        return False
    session.add(OptOut(account_id=account_id, number=number, source=source[:40]))
    session.add(ConsentEvent(account_id=account_id, number=number, action="opt_out",
                             source=source[:60], business_number=business_number))
    return True
