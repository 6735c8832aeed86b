"""Sign-in for the conversation and dashboard pages: users with scrypt-hashed passwords."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.errors import ConfigurationError
from connector.storage.models import Account, User

# scrypt parameters (RFC 7914's interactive-login figures): n=2**14, r=8, p=1.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for storage."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


def check_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                               r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def add_user(session: Session, email: str, name: str, password: str,
             account_id: str | None) -> User:
    """Create or replace a user; ``account_id`` None lets them see every account."""
    if len(password) < 10:
        raise ConfigurationError("passwords need at least 10 characters", field="PASSWORD")
    if account_id is not None and session.get(Account, account_id) is None:
        raise ConfigurationError(f"no account {account_id!r}", field="--account")
    user = session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if user is None:
        user = User(email=email.lower(), name=name, password_hash="", account_id=account_id)
        session.add(user)
    user.name, user.account_id = name, account_id
    user.password_hash = hash_password(password)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user with these credentials, or None (same work either way)."""
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        check_password(_DUMMY, password)  # keep the timing of a miss like a hit
        return None
    return user if check_password(user.password_hash, password) else None


_DUMMY = hash_password("not-a-real-password")
