"""Trying the setup: a real text from the business number to the admin's own phone, and a
simulated missed call from that phone that runs the whole workflow (policy, text-back, CRM
records) and shows its ``explain`` trail."""

from __future__ import annotations

import uuid
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy import select

from connector.jobs.alerts import record_link
from connector.jobs.intake import record_missed_call
from connector.kernel import clock
from connector.kernel.errors import ProviderError
from connector.kernel.events import CallOutcome, MissedCall
from connector.kernel.phone import mask, to_e164
from connector.reporting.explain import explain
from connector.storage.models import Account, Call, CrmLink
from connector.web.pages import login_required
from connector.web.setup.access import admin_account, runtime
from connector.web.setup.blueprint import bp
from connector.web.setup.saving import FieldErrors, record
from crm_adapters import CRMS


def _phone_and_number(account: Account) -> tuple[str | None, str | None, FieldErrors]:
    errors: FieldErrors = {}
    phone = to_e164(request.form.get("phone", ""))
    if phone is None:
        errors["phone"] = ["your mobile number, e.g. +14155550123"]
    numbers = account.settings["carrier"]["numbers"]
    number = request.form.get("number") or numbers[0]
    if number not in numbers:
        errors["number"] = ["choose one of the account's business numbers"]
    return phone, number, errors


@bp.route("/test", methods=["GET", "POST"])
@login_required
def test(account_id: str) -> Any:
    """Send a test text to the admin's phone, or simulate a missed call from it."""
    rt = runtime()
    with rt.db.session() as s:
        account, user = admin_account(s, account_id)
        errors: FieldErrors = {}
        sent = None
        if request.method == "POST":
            phone, number, errors = _phone_and_number(account)
            if not errors and phone and number:
                if request.form.get("action") == "simulate":
                    call_id = _simulate(rt, account, phone, number)
                    record(s, account.id, user.email, "simulated call",
                           [{"field": "call", "before": None,
                             "after": f"from {mask(phone)} to {number}: {call_id}"}])
                    return redirect(url_for("setup.simulated", account_id=account.id,
                                            call_id=call_id))
                sent, problem = _send_test(rt, account, phone, number)
                if problem:
                    errors["phone"] = [problem]
                record(s, account.id, user.email, "test text",
                       [{"field": f"text to {mask(phone)} from {number}", "before": None,
                         "after": problem or f"accepted ({sent})"}])
        calls = s.scalars(select(Call).where(Call.account_id == account.id,
                                             Call.event_id.startswith("setup-test-"))
                          .order_by(Call.created_at.desc()).limit(5)).all()
        html = render_template("setup/test.html", account=account, errors=errors,
                               form=request.form if request.method == "POST" else None,
                               sent=sent, calls=calls,
                               numbers=account.settings["carrier"]["numbers"])
        return (html, 400) if errors else html


def _send_test(rt: Any, account: Account, phone: str, number: str) -> tuple[str | None, str | None]:
    body = (f"Test text from {account.name} by textback: customers who miss you on {number} "
            "get their text-back from this number.")
    try:
        result = rt.sms_carrier_for(account).send_sms(to=phone, from_=number, body=body)
    except ProviderError as exc:
        return None, f"the carrier did not send it: {exc}"
    return f"message {result.message_id}, {result.status.value}", None


def _simulate(rt: Any, account: Account, phone: str, number: str) -> str:
    event = MissedCall(carrier=account.carrier_kind, event_id=f"setup-test-{uuid.uuid4().hex}",
                       caller=phone, called=number, outcome=CallOutcome.NO_ANSWER,
                       occurred_at=clock.now(), caller_raw=phone, ring_seconds=20.0)
    with rt.db.session() as s:
        call_id, _created = record_missed_call(s, account, event)
    rt.jobs.enqueue_text_back(call_id)
    return call_id


@bp.get("/test/calls/<call_id>")
@login_required
def simulated(account_id: str, call_id: str) -> str:
    """What a simulated call did: the explain trail and the CRM records, linked."""
    rt = runtime()
    with rt.db.session() as s:
        account, _user = admin_account(s, account_id)
        call = s.get(Call, call_id)
        if call is None or call.account_id != account.id:
            abort(404)
        links = s.scalars(select(CrmLink).where(
            CrmLink.account_id == account.id,
            CrmLink.local_key.in_([call.id, call.caller or ""]))
            .order_by(CrmLink.id)).all()
        return render_template("setup/simulated.html", account=account, call=call,
                               trail=explain(rt, call.id), links=links,
                               record_url=record_link(s, account, call.caller or ""),
                               crm_name=CRMS[account.crm_kind].display_name)


