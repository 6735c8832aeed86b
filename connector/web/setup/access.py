"""Who may open a setup page: a signed-in admin of the account (a rep, or anyone outside the
account, may not)."""

from __future__ import annotations

from typing import cast

from flask import abort, current_app, session
from sqlalchemy.orm import Session

from connector.runtime import Runtime
from connector.storage.models import Account, User
from connector.storage.users import user_accounts


def runtime() -> Runtime:
    """The runtime the app was built around."""
    return cast(Runtime, current_app.extensions["textback"])


def signed_in_user(s: Session) -> User:
    """The signed-in user (the view runs under ``login_required``)."""
    user = s.get(User, session.get("user_id"))
    if user is None:
        abort(403)
    return user


def admin_account(s: Session, account_id: str) -> tuple[Account, User]:
    """The account, when the signed-in user is an admin of it.

    An account the user does not belong to is a 404, whatever the URL says (its existence is
    not shown); a rep of the account gets a 403 that says who may set it up.
    """
    user = signed_in_user(s)
    account = s.get(Account, account_id)
    if account is None or account_id not in user_accounts(s, user):
        abort(404)
    if user.role != "admin":
        abort(403, "Only an admin of this account can change its setup.")
    return account, user
