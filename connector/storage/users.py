"""Sign-in for the conversation and dashboard pages: users with hashed passwords, and the sign-in
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
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from connector.kernel import clock
from connector.kernel.errors import ConfigurationError
from connector.storage.models import Account, SignInFailure, User

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


def add_user(session: Session, email: str, name: str, password: str,
             account_id: str | None) -> User:
    """Create or replace a user; ``account_id`` None lets them see every account.

    Replacing a user (a new password, name or account) ends every session they have.
    """
    if len(password) < 10:
        raise ConfigurationError("passwords need at least 10 characters", field="PASSWORD")
    if account_id is not None and session.get(Account, account_id) is None:
        raise ConfigurationError(f"no account {account_id!r}", field="--account")
    user = session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if user is None:
        user = User(email=email.lower(), name=name, password_hash="", account_id=account_id,
                    session_epoch=0)
        session.add(user)
    else:
        user.session_epoch = (user.session_epoch or 0) + 1  # ends the sessions of the old password
    user.name, user.account_id = name, account_id
    user.password_hash = hash_password(password)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user with these credentials, or None (same work either way).

    A legacy hash that matches is replaced by a werkzeug one (the caller commits); the user's
    sessions go on, as the password is the same.
    """
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
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
