"""Small pieces the workflow jobs share: leases, the audit trail, CRM links and the retry layer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, Update, bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from connector.kernel import clock
from connector.kernel.errors import RateLimitedError, TransientProviderError
from connector.storage.models import Call, CallEvent, CrmLink, Message

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE = timedelta(minutes=2)
#: Longest wait the in-job retry honours; a longer one goes back to the sweeper.
MAX_INLINE_WAIT = 15.0


LeasedRow = TypeVar("LeasedRow", Call, Message)


class Lease(Generic[LeasedRow]):
    """How a job claims a call or message: the claim statement for one model, built once.

    ``conditions`` (say, "still unsent") are checked in the same ``UPDATE`` as the lease, so a
    row another worker finished a moment ago is never claimed on a stale reading. The statement
    is made once, with the row and the times bound at each claim: built anew for every job,
    making it and computing its cache key cost more CPU than running it.
    """

    def __init__(self, model: type[LeasedRow], *conditions: ColumnElement[bool]) -> None:
        self.claim: Update = (
            update(model)
            .where(
                model.id == bindparam("row_id"),
                or_(model.lease_until.is_(None), model.lease_until < bindparam("now")),
                *conditions,
            )
            .values(lease_until=bindparam("until"))
            .returning(model)
        )
        self.release: Update = (
            update(model).where(model.id == bindparam("row_id")).values(lease_until=None)
        )


#: A call or a message, whatever its state.
CALL_LEASE = Lease(Call)
MESSAGE_LEASE = Lease(Message)


def take_lease(session: Session, lease: Lease[LeasedRow], row_id: str) -> LeasedRow | None:
    """Claim a call or message for this worker and read it fresh, in one statement.

    Returns the row as the database has it now, or None when another worker holds it or it no
    longer meets the lease's conditions. Commits, so the claim is visible to every other worker
    at once.
    """
    now = clock.now()
    claimed: LeasedRow | None = session.scalars(
        lease.claim, {"row_id": row_id, "now": now, "until": now + LEASE},
        execution_options={"populate_existing": True},
    ).first()
    session.commit()
    return claimed


def release_lease(session: Session, lease: Lease[LeasedRow], row_id: str) -> None:
    """Give a claimed call or message back."""
    session.execute(lease.release, {"row_id": row_id})
    session.commit()


def audit(session: Session, call_id: str, step: str, detail: str = "") -> None:
    """Add a line to the call's audit trail (never message bodies or full numbers).

    It is part of the caller's transaction: the line is kept exactly when the step it describes
    is, so a crash can never leave a trail that claims more than the data shows.
    """
    session.add(CallEvent(call_id=call_id, step=step, detail=detail))


def _link_of(account_id: str, crm: str, object_type: str,
             key: str) -> tuple[ColumnElement[bool], ...]:
    """The conditions that pick the ``crm_links`` row of one of our objects."""
    return (CrmLink.account_id == account_id, CrmLink.crm == crm,
            CrmLink.object_type == object_type, CrmLink.local_key == key)


def get_link(session: Session, account_id: str, crm: str, object_type: str, key: str) -> str | None:
    """The CRM id recorded for one of our objects, if any."""
    return session.scalar(
        select(CrmLink.crm_id).where(*_link_of(account_id, crm, object_type, key))
    )


def set_link(
    session: Session, account_id: str, crm: str, object_type: str, key: str, crm_id: str
) -> None:
    """Record (or replace) the CRM id for one of our objects; the caller commits.

    When another worker linked the same object first, theirs stands and nothing else in the
    caller's transaction is lost (the insert runs in a savepoint).
    """
    row = session.scalar(
        select(CrmLink).where(*_link_of(account_id, crm, object_type, key))
    )
    if row is not None:
        row.crm_id = crm_id
        session.flush()
        return
    try:
        with session.begin_nested():
            session.add(CrmLink(account_id=account_id, crm=crm, object_type=object_type,
                                local_key=key, crm_id=crm_id))
    except IntegrityError:
        pass  # another worker linked it first; theirs stands


def forget_link(session: Session, account_id: str, crm: str, object_type: str, key: str) -> None:
    """Remove the CRM id recorded for one of our objects, if any; the caller commits."""
    session.execute(
        delete(CrmLink).where(*_link_of(account_id, crm, object_type, key))
    )


def _retryable(retry_ambiguous: bool) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if isinstance(exc, RateLimitedError):
            return exc.retry_after <= MAX_INLINE_WAIT
        if isinstance(exc, TransientProviderError):
            return retry_ambiguous or not exc.ambiguous
        return False

    return check


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RateLimitedError):
        return min(float(exc.retry_after), MAX_INLINE_WAIT)
    return min(0.5 * 2.0 ** (state.attempt_number - 1), 4.0)


def call_with_retries(
    fn: Callable[[], T], *, attempts: int = 3, retry_ambiguous: bool = True
) -> T:
    """Run one provider call, retrying transient failures; the connector's only retry layer.

    With ``retry_ambiguous=False`` (text sends) a failure that may have taken effect is raised at
    once, to be reconciled rather than repeated.
    """
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=_wait,
        retry=retry_if_exception(_retryable(retry_ambiguous)),
        reraise=True,
    )
    return retrying(fn)


def backoff(attempts: int) -> timedelta:
    """How long to wait before the sweeper tries a failed step again."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))
