"""Users of the pages: roles, the accounts each belongs to, hashed passwords, and the sign-in
rate limit (refused attempts per email and per client address, kept in ``sign_in_failures``).

Passwords are hashed by ``werkzeug.security`` (``scrypt:n:r:p$salt$hash``). Hashes stored before
that, in this module's own ``scrypt$n$r$p$salt$hash`` format, still sign in, and are hashed again
in werkzeug's format on that sign-in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import timedelta

from marshmallow import ValidationError, validate
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from connector.kernel import clock
from connector.kernel.errors import ConfigurationError
from connector.storage.models import ROLES, Account, AccountMember, SignInFailure, User

#: How the hashes of the first version of this module begin: ``scrypt$n$r$p$salt$hash``.
_LEGACY_PREFIX = "scrypt$"


def hash_password(password: str) -> str:
    """The password hashed for storage, by werkzeug (its default method, salted)."""
    return generate_password_hash(password)


def check_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the stored hash, in werkzeug's format or the legacy one
    (constant-time compare either way)."""
    if is_legacy_hash(stored):
        return _check_legacy(stored, password)
    try:
        return check_password_hash(stored, password)
    except (ValueError, TypeError):  # not a hash werkzeug knows
        return False


def is_legacy_hash(stored: str) -> bool:
    """True for a hash in the legacy ``scrypt$n$r$p$salt$hash`` format (re-hashed on sign-in)."""
    return stored.startswith(_LEGACY_PREFIX)


def _check_legacy(stored: str, password: str) -> bool:
    """Check a legacy ``scrypt$n$r$p$salt$hash`` hash, the way it was written."""
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
        candidate = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                   r=int(r), p=int(p), dklen=32)
        return hmac.compare_digest(candidate, base64.b64decode(digest))
    except (ValueError, binascii.Error):
        return False


def _valid_email(email: str) -> str:
    address = email.strip().lower()
    try:
        validate.Email()(address)
    except ValidationError:
        raise ConfigurationError(
            f"{email!r} is not an email address (a user signs in with one, e.g. dana@example.com)",
            field="EMAIL") from None
    return address


def add_user(session: Session, email: str, name: str, password: str,
             account_id: str | Sequence[str] | None, *, role: str = "rep") -> User:
    """Create or replace a user with ``role`` (admin or rep) in the accounts ``account_id`` names
    (one id or several); None lets them see every account, those added later too.

    Replacing a user (a new password, name, role or accounts) ends every session they have.
    """
    address = _valid_email(email)
    if role not in ROLES:
        raise ConfigurationError(f"a role is admin or rep, not {role!r}", field="--role")
    if len(password) < 10:
        raise ConfigurationError("passwords need at least 10 characters", field="PASSWORD")
    accounts = [account_id] if isinstance(account_id, str) else \
        None if account_id is None else list(dict.fromkeys(account_id))
    for wanted in accounts or []:
        if session.get(Account, wanted) is None:
            raise ConfigurationError(f"no account {wanted!r}", field="--account")
    user = session.scalar(select(User).where(func.lower(User.email) == address))
    if user is None:
        user = User(email=address, name=name, password_hash="", session_epoch=0)
        session.add(user)
        session.flush()
    else:
        user.session_epoch = (user.session_epoch or 0) + 1  # ends the sessions of the old password
    user.name, user.role, user.all_accounts = name, role, accounts is None
    user.password_hash = hash_password(password)
    session.execute(delete(AccountMember).where(AccountMember.user_id == user.id))
    session.add_all([AccountMember(user_id=user.id, account_id=a) for a in accounts or []])
    session.flush()
    return user


def find_user(session: Session, email: str) -> User | None:
    """The user with this email (any case), or None."""
    return session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def remove_user(session: Session, email: str) -> User:
    """Delete a user (their sessions end with them); ConfigurationError when there is none."""
    user = find_user(session, email)
    if user is None:
        raise ConfigurationError(f"no user {email!r} (see `textback users list`)", field="EMAIL")
    session.delete(user)
    session.flush()
    return user


def user_accounts(session: Session, user: User) -> list[str]:
    """The ids of the accounts ``user`` belongs to (every account for an operator), sorted."""
    if user.all_accounts:
        return list(session.scalars(select(Account.id).order_by(Account.id)))
    return list(session.scalars(select(AccountMember.account_id)
                                .where(AccountMember.user_id == user.id)
                                .order_by(AccountMember.account_id)))


def list_users(session: Session) -> list[tuple[User, list[str] | None]]:
    """Every user by email, with the accounts they belong to (None: every account)."""
    users = session.scalars(select(User).order_by(User.email)).all()
    return [(u, None if u.all_accounts else user_accounts(session, u)) for u in users]


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user with these credentials, or None (same work either way).

    A legacy hash that matches is replaced by a werkzeug one (the caller commits); the user's
    sessions go on, as the password is the same.
    """
    user = find_user(session, email)
    if user is None:
        check_password(_DUMMY, password)  # keep the timing of a miss like a hit
        return None
    if not check_password(user.password_hash, password):
        return None
    if is_legacy_hash(user.password_hash):
        user.password_hash = hash_password(password)
        session.flush()
    return user


_DUMMY = hash_password("not-a-real-password")


# -- the sign-in rate limit ------------------------------------------------------------------------

#: Refused sign-ins counted over this window.
FAILURE_WINDOW = timedelta(minutes=15)
#: Refused sign-ins for one email within the window before it is locked.
EMAIL_LIMIT = 5
#: Refused sign-ins from one client address within the window before it is locked.
ADDRESS_LIMIT = 20
_KEY_LENGTH = 250  # the width of sign_in_failures.key


def _key(kind: str, value: str) -> str:
    key = f"{kind}:{value}"
    if len(key) <= _KEY_LENGTH:
        return key
    return f"{kind}:sha256:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()}"


def _email_key(email: str) -> str:
    return _key("email", email.strip().lower())


def _address_key(address: str) -> str:
    return _key("ip", address)


def _wait_for(session: Session, key: str, limit: int) -> timedelta | None:
    """How long until ``key`` is under ``limit`` failures in the window; None when it is now."""
    now = clock.now()
    recent = session.scalars(
        select(SignInFailure.at)
        .where(SignInFailure.key == key, SignInFailure.at > now - FAILURE_WINDOW)
        .order_by(SignInFailure.at.desc())
        .limit(limit)
    ).all()
    if len(recent) < limit:
        return None
    # The limit-th newest failure is the one whose leaving the window frees an attempt.
    return max(recent[-1] + FAILURE_WINDOW - now, timedelta(seconds=1))


def sign_in_wait(session: Session, email: str, address: str) -> timedelta | None:
    """How long this email and client address must wait before trying to sign in; None: no wait.

    While there is a wait, no password is checked at all, the right one included.
    """
    waits = [wait for wait in (_wait_for(session, _email_key(email), EMAIL_LIMIT),
                               _wait_for(session, _address_key(address), ADDRESS_LIMIT))
             if wait is not None]
    return max(waits) if waits else None


def record_sign_in_failure(session: Session, email: str, address: str) -> None:
    """Count a refused sign-in against the email and the client address; purge expired ones.

    The caller commits.
    """
    now = clock.now()
    session.execute(delete(SignInFailure).where(SignInFailure.at <= now - FAILURE_WINDOW))
    session.add_all([SignInFailure(key=_email_key(email), at=now),
                     SignInFailure(key=_address_key(address), at=now)])
    session.flush()


def clear_sign_in_failures(session: Session, email: str) -> None:
    """Forget the refused sign-ins of ``email`` (after it signed in). The caller commits."""
    session.execute(delete(SignInFailure).where(SignInFailure.key == _email_key(email)))
