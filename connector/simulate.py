"""Simulated missed calls for the sandbox carrier: the demo button and ``textback simulate-call``.

The simulated call goes through the real webhook route, signature and all, so what the demo shows
is what a carrier's call event would do.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import Flask
from sqlalchemy import select

from carrier_adapters.sandbox import SIGNATURE_HEADER, SandboxCarrier
from connector.kernel.errors import ConfigurationError
from connector.runtime import Runtime
from connector.storage.models import Account, Call, Message, SandboxRecord

DEMO_ACCOUNT_ID = "demo"


def demo_account_document(webhook_secret: str) -> dict[str, Any]:
    """The demo account: a plumber on the built-in sandbox carrier and CRM."""
    return {
        "id": DEMO_ACCOUNT_ID,
        "name": "Acme Plumbing",  # the name goes into the texts; the id says "demo"
        "timezone": "America/Chicago",
        "carrier": {
            "kind": "sandbox",
            "credentials": {"webhook_secret": webhook_secret},
            "numbers": ["+14155550100"],
            "forward_to": ["+14155550199"],
        },
        "crm": {
            "kind": "sandbox",
            "credentials": {"webhook_secret": webhook_secret},
            "mapping": {"pipeline": "default", "stage": "new", "owner_id": "owner-1"},
        },
    }


def simulate_call(
    runtime: Runtime, app: Flask, account_id: str, caller: str, outcome: str = "no-answer"
) -> tuple[int, str | None]:
    """Post a signed sandbox call event for the account; return (HTTP status, call id).

    ``outcome`` is one the sandbox carrier knows (:data:`SandboxCarrier.call_outcomes`);
    another is a ConfigurationError, with nothing written.
    """
    if outcome not in SandboxCarrier.call_outcomes:
        raise ConfigurationError(
            f"the outcome {outcome!r} is not one of {', '.join(SandboxCarrier.call_outcomes)}",
            field="--outcome")
    with runtime.db.session() as s:
        account = s.get(Account, account_id)
        if account is None:
            raise ConfigurationError(f"no account {account_id!r}", field="ACCOUNT")
        if account.carrier_kind != "sandbox":
            raise ConfigurationError(
                "simulate-call needs an account on the sandbox carrier", field="carrier.kind"
            )
        adapter = runtime.carrier_for(account)
        called = account.settings["carrier"]["numbers"][0]
    assert isinstance(adapter, SandboxCarrier)  # noqa: S101 - checked above
    call_sid = "SIM" + uuid.uuid4().hex
    body = json.dumps(
        {"call_id": call_sid, "from": caller, "to": called, "outcome": outcome}
    ).encode()
    client = app.test_client()
    response = client.post(
        f"/webhooks/sandbox/{account_id}/voice",
        data=body,
        headers={SIGNATURE_HEADER: adapter.sign(body), "Content-Type": "application/json"},
    )
    with runtime.db.session() as s:
        call_id = s.scalar(
            select(Call.id).where(Call.account_id == account_id, Call.event_id == call_sid)
        )
    return response.status_code, call_id


def account_snapshot(runtime: Runtime, account_id: str, limit: int = 20) -> dict[str, Any]:
    """Recent calls, texts and sandbox CRM records of an account, for the demo page and CLI."""
    with runtime.db.session() as s:
        calls = s.scalars(
            select(Call).where(Call.account_id == account_id)
            .order_by(Call.created_at.desc()).limit(limit)
        ).all()
        messages = s.scalars(
            select(Message).where(Message.account_id == account_id)
            .order_by(Message.created_at.desc()).limit(limit)
        ).all()
        records = s.scalars(
            select(SandboxRecord).where(
                SandboxRecord.account_id == account_id, SandboxRecord.kind != "sms"
            ).order_by(SandboxRecord.id.desc()).limit(limit * 3)
        ).all()
        return {
            "calls": [
                {
                    "id": c.id, "caller": c.caller, "outcome": c.outcome, "state": c.state,
                    "reason": c.reason, "crm_state": c.crm_state,
                    "occurred_at": c.occurred_at.isoformat(),
                }
                for c in calls
            ],
            "messages": [
                {
                    "id": m.id, "direction": m.direction, "customer": m.customer,
                    "body": m.body, "status": m.status, "call_id": m.call_id,
                }
                for m in messages
            ],
            "crm_records": [
                {"id": r.id, "kind": r.kind, "data": r.data} for r in records
            ],
        }
