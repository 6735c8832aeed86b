"""Password hashes: werkzeug's format for new ones; the legacy ``scrypt$n$r$p$salt$hash`` ones
still sign in and are re-hashed in werkzeug's format on that sign-in."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from sqlalchemy import select

from connector.storage import users
from connector.storage.models import User
from connector.storage.users import add_user, authenticate, check_password, is_legacy_hash
from tests.connector.helpers import add_account, sandbox_account

PASSWORD = "correct horse battery"


def legacy_hash(password: str, salt: bytes = b"0123456789abcdef") -> str:
    """A hash as the first version of ``connector.storage.users`` wrote it."""
    n, r, p = 2**14, 8, 1
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return "$".join(["scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


@pytest.fixture
def dana(runtime, webhook_secret):  # type: ignore[no-untyped-def]
    """A user whose password was stored in the legacy format."""
    add_account(runtime, sandbox_account("acme", webhook_secret))
    with runtime.db.session() as s:
        user = add_user(s, "dana@acme.test", "Dana", PASSWORD, "acme")
        user.password_hash = legacy_hash(PASSWORD)
    return runtime


def stored_hash(runtime) -> str:  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        return s.scalars(select(User.password_hash)).one()


def test_legacy_hashes_are_checked_as_before():
    stored = legacy_hash(PASSWORD)
    assert is_legacy_hash(stored)
    assert check_password(stored, PASSWORD)
    assert not check_password(stored, "wrong password")
    assert not check_password("scrypt$16384$8$1$not base64!$x", PASSWORD)
    assert not check_password("scrypt$16384$8", PASSWORD)


@pytest.mark.parametrize("stored", ["", "plain", "md5$salt$hash", "nosuch:1$salt$hash"])
def test_unreadable_hashes_never_match(stored: str):
    assert not check_password(stored, PASSWORD)


def test_a_legacy_hash_signs_in_once_and_is_rehashed_by_werkzeug(dana):  # type: ignore[no-untyped-def]
    with dana.db.session() as s:
        user = authenticate(s, "Dana@acme.test", PASSWORD)
        assert user is not None and user.email == "dana@acme.test"
        epoch = user.session_epoch
    upgraded = stored_hash(dana)
    assert not is_legacy_hash(upgraded) and upgraded.startswith("scrypt:")
    with dana.db.session() as s:
        again = authenticate(s, "dana@acme.test", PASSWORD)
        assert again is not None
        assert again.session_epoch == epoch  # the same password: sessions go on
    assert stored_hash(dana) == upgraded  # a werkzeug hash is kept as it is


def test_a_wrong_password_leaves_a_legacy_hash_alone(dana):  # type: ignore[no-untyped-def]
    before = stored_hash(dana)
    with dana.db.session() as s:
        assert authenticate(s, "dana@acme.test", "wrong password") is None
    assert stored_hash(dana) == before


def test_the_sign_in_page_takes_a_legacy_password_and_upgrades_it(app, dana):  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    wrong = client.post("/login", data={"email": "dana@acme.test", "password": "nope nope nope",
                                        "csrf": token})
    assert wrong.status_code == 401 and is_legacy_hash(stored_hash(dana))
    answer = client.post("/login", data={"email": "dana@acme.test", "password": PASSWORD,
                                         "csrf": token})
    assert answer.status_code == 302
    assert client.get("/conversations").status_code == 200
    assert stored_hash(dana).startswith("scrypt:")


def test_an_unknown_email_still_checks_a_werkzeug_hash(runtime, monkeypatch):  # type: ignore[no-untyped-def]
    checked: list[str] = []
    real = users.check_password

    def spy(stored: str, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(users, "check_password", spy)
    with runtime.db.session() as s:
        assert authenticate(s, "nobody@acme.test", PASSWORD) is None
    assert checked == [users._DUMMY] and not is_legacy_hash(checked[0])
