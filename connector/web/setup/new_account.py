"""Creating an account in the browser: a name, an id and a time zone. It starts on the built-in
sandbox carrier and CRM (nothing reaches a real phone or CRM) until its admin connects their own
on the setup pages."""

from __future__ import annotations

import re
import secrets
import unicodedata
import zoneinfo
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from carrier_adapters.sandbox import DEFAULT_OWNED_NUMBERS
from connector.storage.accounts import import_account
from connector.storage.models import Account, AccountMember, User
from connector.web.pages import login_required
from connector.web.setup.access import runtime, signed_in_user
from connector.web.setup.blueprint import accounts_bp
from connector.web.setup.saving import FieldErrors, record, schema_errors


def slug(name: str) -> str:
    """An account id made from a name: ``Bright Plumbing & Co`` -> ``bright-plumbing-co``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:64]


def draft_document(account_id: str, name: str, timezone: str) -> dict[str, Any]:
    """A new account's first document: the sandbox carrier and CRM, nothing else set."""
    secret = secrets.token_urlsafe(24)
    return {"id": account_id, "name": name, "timezone": timezone,
            "carrier": {"kind": "sandbox", "credentials": {"webhook_secret": secret},
                        "numbers": [DEFAULT_OWNED_NUMBERS[0]]},
            "crm": {"kind": "sandbox", "credentials": {"webhook_secret": secret}}}


@accounts_bp.route("/new", methods=["GET", "POST"])
@login_required
def new_account() -> Any:
    """Create an account; the admin who creates it belongs to it and goes to its setup."""
    rt = runtime()
    with rt.db.session() as s:
        user = signed_in_user(s)
        if user.role != "admin":
            return render_template("setup/new_account.html", errors={}, form=None,
                                   refused=True), 403
        errors: FieldErrors = {}
        if request.method == "POST":
            account_id, errors = _create(s, user)
            if not errors:
                flash("Account created on the built-in sandbox carrier and CRM: connect your "
                      "own on the Carrier and CRM pages.")
                return redirect(url_for("setup.overview", account_id=account_id))
        html = render_template("setup/new_account.html", errors=errors,
                               form=request.form if errors else None, refused=False,
                               zones=sorted(zoneinfo.available_timezones()))
        return (html, 400) if errors else html


def _create(s: Session, user: User) -> tuple[str, FieldErrors]:
    rt = runtime()
    name = request.form.get("name", "").strip()
    account_id = request.form.get("id", "").strip() or slug(name)
    document = draft_document(account_id, name, request.form.get("timezone", "").strip())
    errors = schema_errors(document)
    if s.get(Account, account_id) is not None:
        errors.setdefault("id", []).append("an account with this id exists: choose another")
    if errors:
        return account_id, errors
    import_account(s, rt.box, document)
    if not user.all_accounts:
        s.add(AccountMember(user_id=user.id, account_id=account_id))
    record(s, account_id, user.email, "account created",
           [{"field": "account", "before": None, "after": f"{account_id} ({name})"}])
    return account_id, {}
