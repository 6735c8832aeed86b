"""Simulated calls and texts for the sandbox carrier: the demo page and ``textback simulate-call``.

Each simulated event (a missed call, the customer's reply or STOP, the carrier's delivery report)
goes through the real webhook route, signature and all, so what the demo shows is what a
carrier's event would do.

The demo account is for trying textback before a real account exists. :func:`demo_mode` says
where it stands: ``alone`` (the only account: the demo is open to anyone), ``beside`` (real
accounts exist and ``TEXTBACK_DEMO=keep`` asked to keep it: behind sign-in), ``retired`` (real
accounts exist: the demo is off, and :func:`retire_demo_account` removes it) or ``absent``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from carrier_adapters.sandbox import SIGNATURE_HEADER, SandboxCarrier
from connector.kernel.errors import ConfigurationError
from connector.runtime import Runtime
from connector.storage.accounts import delete_account
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


DemoMode = Literal["absent", "alone", "beside", "retired"]


def demo_mode(session: Session, keep: bool) -> DemoMode:
    """Where the demo account stands (see the module docstring); ``keep`` is
    ``TEXTBACK_DEMO=keep``."""
    demo = session.get(Account, DEMO_ACCOUNT_ID)
    if demo is None or demo.carrier_kind != "sandbox":
        return "absent"
    if session.scalar(select(Account.id).where(Account.id != DEMO_ACCOUNT_ID).limit(1)) is None:
        return "alone"
    return "beside" if keep else "retired"


def retire_demo_account(session: Session, keep: bool) -> bool:
    """Delete the demo account and its data once a real account exists, unless kept; True when
    it did."""
    if demo_mode(session, keep) != "retired":
        return False
    delete_account(session, DEMO_ACCOUNT_ID)
    return True


def _sandbox(runtime: Runtime, account_id: str) -> tuple[SandboxCarrier, str]:
    """The account's sandbox carrier and first business number (only sandbox accounts are ever
    simulated, so nothing reaches a real customer)."""
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
    return adapter, called


def _post(app: Flask, adapter: SandboxCarrier, account_id: str, kind: str,
          event: dict[str, Any]) -> int:
    """Post a signed sandbox webhook event; the HTTP status the route answered."""
    body = json.dumps(event).encode()
    response = app.test_client().post(
        f"/webhooks/sandbox/{account_id}/{kind}", data=body,
        headers={SIGNATURE_HEADER: adapter.sign(body), "Content-Type": "application/json"},
    )
    return response.status_code


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
    adapter, called = _sandbox(runtime, account_id)
    call_sid = "SIM" + uuid.uuid4().hex
    status = _post(app, adapter, account_id, "voice",
                   {"call_id": call_sid, "from": caller, "to": called, "outcome": outcome})
    with runtime.db.session() as s:
        call_id = s.scalar(
            select(Call.id).where(Call.account_id == account_id, Call.event_id == call_sid)
        )
    return status, call_id


def simulate_text(runtime: Runtime, app: Flask, account_id: str, customer: str,
                  body: str) -> int:
    """The customer texts ``body`` to the business number (a reply, or STOP); the HTTP status."""
    adapter, business = _sandbox(runtime, account_id)
    return _post(app, adapter, account_id, "sms",
                 {"message_id": "SIM" + uuid.uuid4().hex, "from": customer, "to": business,
                  "body": body})


def simulate_delivery(runtime: Runtime, app: Flask, account_id: str, customer: str,
                      status: str = "delivered") -> int:
    """The carrier reports ``status`` for every text to ``customer`` still waiting for one; how
    many reports were posted (0: nothing was waiting)."""
    adapter, _ = _sandbox(runtime, account_id)
    with runtime.db.session() as s:
        waiting = s.scalars(select(Message.carrier_message_id).where(
            Message.account_id == account_id, Message.customer == customer,
            Message.direction == "outbound", Message.carrier_message_id.is_not(None),
            Message.status.in_(("sent", "queued", "ambiguous")))).all()
    posted = 0
    for message_id in waiting:
        answer = _post(app, adapter, account_id, "status",
                       {"message_id": message_id, "status": status})
        if answer >= 400:
            raise ConfigurationError(f"the status webhook answered {answer}", field="status")
        posted += 1
    return posted


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
