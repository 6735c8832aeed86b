"""Helpers for connector tests: sandbox accounts and signed sandbox webhooks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from carrier_adapters.sandbox import SIGNATURE_HEADER
from connector.kernel import clock
from connector.kernel.signing import hmac_hex
from connector.storage.accounts import import_account
from connector.storage.models import Account, Call, Message, SandboxRecord

BUSINESS = "+14155550100"
CALLER = "+14155550123"


def sandbox_account(account_id: str, secret: str, **overrides: Any) -> dict[str, Any]:
    """An account document on the sandbox carrier and CRM."""
    doc: dict[str, Any] = {
        "id": account_id,
        "name": "Acme Plumbing",
        "timezone": "America/Chicago",
        "carrier": {
            "kind": "sandbox",
            "credentials": {"webhook_secret": secret},
            "numbers": [BUSINESS],
            "forward_to": ["+14155550199"],
        },
        "crm": {
            "kind": "sandbox",
            "credentials": {"webhook_secret": secret},
            "mapping": {"pipeline": "default", "stage": "new", "owner_id": "owner-7"},
        },
    }
    doc.update(overrides)
    return doc


#: Key of a test event whose ``occurred_at`` is that many minutes before the clock when posted.
MINUTES_AGO = "_minutes_ago"


def add_account(runtime: Any, doc: dict[str, Any]) -> None:
    """Import an account document into the runtime's database."""
    with runtime.db.session() as s:
        import_account(s, runtime.box, doc)


def post(client: Any, account_id: str, kind: str, payload: dict[str, Any], secret: str,
         *, sign: bool = True, signature: str | None = None) -> Any:
    """POST a sandbox webhook, signed with ``secret`` unless told otherwise."""
    payload = dict(payload)
    minutes_ago = payload.pop(MINUTES_AGO, None)
    if minutes_ago is not None:  # read the clock now, not when the event was written down
        payload["occurred_at"] = (clock.now() - timedelta(minutes=minutes_ago)).isoformat()
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        headers[SIGNATURE_HEADER] = signature or hmac_hex(secret, body)
    return client.post(f"/webhooks/sandbox/{account_id}/{kind}", data=body, headers=headers)


def missed(call_id: str = "CALL1", caller: str = CALLER, outcome: str = "no-answer",
           **extra: Any) -> dict[str, Any]:
    """A sandbox voice event for a missed call; ``minutes_ago`` moves it into the past.

    The time is filled in by :func:`post` when the event is sent, so an event written at import
    time (a parametrised scenario) is still ``minutes_ago`` before the test's clock.
    """
    event: dict[str, Any] = {"call_id": call_id, "from": caller, "to": BUSINESS, "outcome": outcome}
    minutes_ago = extra.pop("minutes_ago", None)
    if minutes_ago is not None:
        event[MINUTES_AGO] = minutes_ago
    event.update(extra)
    return event


def records(runtime: Any, account_id: str, kind: str) -> list[dict[str, Any]]:
    """Sandbox records (sms, contact, call, message, task, lead) of an account."""
    with runtime.db.session() as s:
        rows = s.scalars(
            select(SandboxRecord).where(
                SandboxRecord.account_id == account_id, SandboxRecord.kind == kind
            ).order_by(SandboxRecord.id)
        ).all()
        return [{"id": str(r.id), **r.data} for r in rows]


def count(runtime: Any, model: Any, **where: Any) -> int:
    """Rows of a model matching simple equality filters."""
    with runtime.db.session() as s:
        q = select(func.count()).select_from(model)
        for key, value in where.items():
            q = q.where(getattr(model, key) == value)
        return int(s.scalar(q) or 0)


def only_call(runtime: Any, account_id: str) -> Call:
    """The account's single call."""
    with runtime.db.session() as s:
        calls = s.scalars(select(Call).where(Call.account_id == account_id)).all()
        assert len(calls) == 1, calls
        return calls[0]


__all__ = ["Account", "Message"]


def drop_on_the_server(engine: Any, connection: Any) -> None:
    """End ``connection``'s PostgreSQL backend from another connection of ``engine``, as a
    server restart would; the next use of ``connection`` fails."""
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    connection.rollback()
    with engine.connect() as admin:
        admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")  # noqa: S608
