"""Sign-in and session security through Flask's test client: CSRF values of any text, where the
page goes after sign-in, the sign-in rate limit, and sessions that end (sign-out, a password
change, the absolute and idle limits)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.storage.models import Call, ContactProfile, SignInFailure, User
from connector.storage.users import add_user
from tests.connector.helpers import add_account, missed, post, sandbox_account

EMAIL = "dana@acme.test"
PASSWORD = "correct horse battery"
NON_ASCII_CSRF = "jeton-café-✓-€"


def csrf_of(client: Any, path: str = "/login") -> str:
    """The CSRF token in the form on ``path``."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, f"no CSRF field on {path}"
    return match.group(1)


def sign_in(client: Any, password: str = PASSWORD, email: str = EMAIL,
            query: str = "") -> Any:
    """POST the sign-in form with a fresh CSRF token; the answer."""
    token = csrf_of(client)
    return client.post(f"/login{query}", data={"email": email, "password": password,
                                                "csrf": token})


@pytest.fixture
def dana(runtime, webhook_secret):  # type: ignore[no-untyped-def]
    """The acme account and its user Dana."""
    add_account(runtime, sandbox_account("acme", webhook_secret))
    with runtime.db.session() as s:
        add_user(s, EMAIL, "Dana", PASSWORD, "acme")
    return EMAIL


@pytest.fixture
def call_id(app, runtime, dana, webhook_secret) -> str:  # type: ignore[no-untyped-def]
    """A missed call of acme."""
    post(app.test_client(), "acme", "voice", missed(), webhook_secret)
    with runtime.db.session() as s:
        found = s.scalar(select(Call.id))
    assert found is not None
    return found


# -- 17: a CSRF value of any text is a refusal, never an error ------------------------------------


def test_a_non_ascii_csrf_value_on_the_sign_in_form_is_refused(app, dana):
    client = app.test_client()
    csrf_of(client)  # the session has a token, so the comparison really runs
    answer = client.post("/login", data={"email": EMAIL, "password": PASSWORD,
                                         "csrf": NON_ASCII_CSRF})
    assert answer.status_code == 400
    assert client.get("/conversations").status_code == 302  # not signed in


def test_a_non_ascii_csrf_value_on_a_signed_in_form_is_refused(app, runtime, dana, call_id):
    client = app.test_client()
    assert sign_in(client).status_code == 302
    answer = client.post(f"/conversations/{call_id}/pause",
                         data={"paused": "1", "csrf": NON_ASCII_CSRF})
    assert answer.status_code == 400
    with runtime.db.session() as s:
        assert not s.scalar(select(func.count()).select_from(ContactProfile)
                            .where(ContactProfile.automation_paused.is_(True)))


# -- 11: after sign-in the page goes to a path of this app, never to another site ----------------

NASTY_NEXT = ["//x", "/\\x", "/%09/x", "/%0a/x", "https://x", "/\t/x", "%2F%2Fx",
              "/%0d/x", "/%2F/x", "///x", "\\\\x", "http:/x", "/ /x", "/%00/x", "javascript:x",
              "/%E2%80%8B/x", "x"]


@pytest.mark.parametrize("target", NASTY_NEXT)
def test_sign_in_never_sends_the_browser_to_another_site(app, dana, target):
    answer = sign_in(app.test_client(), query=f"?next={target}")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/conversations"


@pytest.mark.parametrize("target", ["/x", "/\\x", "/\t/x", "//x", "https://x", " /x", "/\u2028x"])
def test_sign_in_refuses_a_nasty_next_however_it_is_encoded(app, dana, target):
    client = app.test_client()
    token = csrf_of(client)
    answer = client.post("/login", query_string={"next": target},
                         data={"email": EMAIL, "password": PASSWORD, "csrf": token})
    assert answer.status_code == 302
    expected = "/x" if target == "/x" else "/conversations"
    assert answer.headers["Location"] == expected


def test_sign_in_goes_back_to_the_page_asked_for(app, dana, call_id):
    client = app.test_client()
    asked = client.get(f"/conversations/{call_id}")
    assert asked.status_code == 302
    login_url = asked.headers["Location"]
    token = csrf_of(client, login_url)
    answer = client.post(login_url, data={"email": EMAIL, "password": PASSWORD, "csrf": token})
    assert answer.headers["Location"] == f"/conversations/{call_id}"


# -- 12: the sign-in rate limit ------------------------------------------------------------------

WRONG = "wrong password, again"


def failures(runtime: Any) -> list[str]:
    """The keys of the stored sign-in failures."""
    with runtime.db.session() as s:
        return list(s.scalars(select(SignInFailure.key).order_by(SignInFailure.id)))


def test_five_wrong_passwords_lock_the_email_even_for_the_right_one(app, runtime, dana,
                                                                     frozen_clock):
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, WRONG).status_code == 401
        frozen_clock.shift(timedelta(seconds=10))
    answer = sign_in(client)
    assert answer.status_code == 429
    assert "Too many sign-in attempts. Try again in 15 minutes." in answer.get_data(as_text=True)
    assert client.get("/conversations").status_code == 302  # still not signed in
    # Another browser, another address: the email is still locked.
    other = app.test_client()
    locked = sign_in(other, query="", email=" DANA@acme.test")
    assert locked.status_code == 429


def test_the_lock_ends_when_the_oldest_counted_failure_leaves_the_window(app, dana,
                                                                         frozen_clock):
    client = app.test_client()
    for _ in range(5):
        sign_in(client, WRONG)
        frozen_clock.shift(timedelta(minutes=1))
    # The first failure was 5 minutes ago: it leaves the 15-minute window in 10 minutes.
    answer = sign_in(client)
    assert answer.status_code == 429 and "Try again in 10 minutes." in answer.get_data(as_text=True)
    frozen_clock.shift(timedelta(minutes=9, seconds=30))
    assert "Try again in 1 minute." in sign_in(client).get_data(as_text=True)
    frozen_clock.shift(timedelta(seconds=31))
    assert sign_in(client).status_code == 302


def test_a_successful_sign_in_clears_the_emails_failures(app, runtime, dana):
    client = app.test_client()
    for _ in range(4):
        assert sign_in(client, WRONG).status_code == 401
    assert sign_in(client).status_code == 302
    assert not [key for key in failures(runtime) if key.startswith("email:")]
    for _ in range(4):  # four more are allowed again
        assert sign_in(app.test_client(), WRONG).status_code == 401
    assert sign_in(app.test_client()).status_code == 302


def test_twenty_failures_from_one_address_lock_the_address(app, runtime, dana):
    client = app.test_client()
    for number in range(20):
        answer = sign_in(client, WRONG, email=f"guess{number}@acme.test")
        assert answer.status_code == 401
    assert sign_in(client).status_code == 429  # Dana's own email, but from that address
    elsewhere = app.test_client()
    token = csrf_of(elsewhere)
    answer = elsewhere.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf": token},
                            environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert answer.status_code == 302


def test_unknown_emails_count_too_and_old_failures_are_purged(app, runtime, dana, frozen_clock):
    client = app.test_client()
    sign_in(client, WRONG, email="nobody@acme.test")
    assert failures(runtime) == ["email:nobody@acme.test", "ip:127.0.0.1"]
    frozen_clock.shift(timedelta(minutes=16))
    sign_in(client, WRONG)
    assert failures(runtime) == ["email:dana@acme.test", "ip:127.0.0.1"]


def test_a_very_long_email_is_counted_under_a_bounded_key(app, runtime, dana):
    sign_in(app.test_client(), WRONG, email="x" * 5000 + "@acme.test")
    assert all(len(key) <= 250 for key in failures(runtime))


# -- 13: sessions end: sign-out everywhere, a password change, 12 hours, 2 hours idle -------------


def signed_in_client(app: Any) -> Any:
    """A test client signed in as Dana."""
    client = app.test_client()
    assert sign_in(client).status_code == 302
    assert client.get("/conversations").status_code == 200
    return client


def session_cookie(client: Any) -> str:
    """The value of the client's session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    return str(cookie.value)


def with_cookie(app: Any, value: str) -> Any:
    """A new client that sends only this session cookie."""
    client = app.test_client()
    client.set_cookie("session", value)
    return client


def sent_to_sign_in(answer: Any) -> bool:
    """True when the answer sends the browser to the sign-in page."""
    return answer.status_code == 302 and answer.headers["Location"].startswith("/login")


def test_the_session_cookie_is_a_browser_session_cookie(app, dana):
    answer = sign_in(app.test_client())
    cookie = next(h for h in answer.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "expires" not in cookie.lower() and "max-age" not in cookie.lower()
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()


def test_sign_out_ends_every_session_of_the_user(app, runtime, dana):
    laptop, phone = signed_in_client(app), signed_in_client(app)
    kept = session_cookie(laptop)
    answer = laptop.post("/logout", data={"csrf": csrf_of(laptop, "/conversations")})
    assert sent_to_sign_in(answer)
    assert "signed out, on every device" in laptop.get("/login").get_data(as_text=True)
    assert sent_to_sign_in(with_cookie(app, kept).get("/conversations"))  # the copied cookie
    assert sent_to_sign_in(phone.get("/conversations"))  # the other device
    assert "You were signed out" in phone.get("/login").get_data(as_text=True)
    assert signed_in_client(app).get("/dashboard").status_code == 200  # signing in again works


def test_a_kept_cookie_cannot_post_after_sign_out(app, runtime, dana, call_id):
    client = signed_in_client(app)
    kept, token = session_cookie(client), csrf_of(client, "/conversations")
    client.post("/logout", data={"csrf": token})
    replay = with_cookie(app, kept).post(f"/conversations/{call_id}/pause",
                                         data={"paused": "1", "csrf": token})
    assert sent_to_sign_in(replay)
    with runtime.db.session() as s:
        assert not s.scalar(select(func.count()).select_from(ContactProfile)
                            .where(ContactProfile.automation_paused.is_(True)))


def test_a_password_change_ends_the_users_sessions(app, runtime, dana):
    client = signed_in_client(app)
    with runtime.db.session() as s:
        add_user(s, EMAIL, "Dana", "a brand new passphrase", "acme")
    assert sent_to_sign_in(client.get("/conversations"))
    assert sign_in(app.test_client()).status_code == 401  # the old password is gone
    assert sign_in(app.test_client(), "a brand new passphrase").status_code == 302


def test_a_deleted_user_is_signed_out(app, runtime, dana):
    client = signed_in_client(app)
    with runtime.db.session() as s:
        s.delete(s.scalar(select(User).where(User.email == EMAIL)))
    assert sent_to_sign_in(client.get("/conversations"))


def test_a_session_ends_after_two_idle_hours(app, dana, frozen_clock):
    client = signed_in_client(app)
    frozen_clock.shift(timedelta(hours=1, minutes=59))
    assert client.get("/conversations").status_code == 200  # and this refreshes the last-seen
    frozen_clock.shift(timedelta(hours=1, minutes=59))
    assert client.get("/conversations").status_code == 200
    frozen_clock.shift(timedelta(hours=2, minutes=1))
    answer = client.get("/dashboard")
    assert sent_to_sign_in(answer) and "next=/dashboard" in answer.headers["Location"]
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "ended after 2 hours without use" in page
    assert sent_to_sign_in(client.get("/conversations"))  # the session is gone, not just refused


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(app, dana, frozen_clock):
    client = signed_in_client(app)
    for _ in range(6):
        frozen_clock.shift(timedelta(hours=1, minutes=55))
        assert client.get("/conversations").status_code == 200
    frozen_clock.shift(timedelta(hours=1, minutes=55))  # 13 h 30 min after signing in
    answer = client.get("/conversations")
    assert sent_to_sign_in(answer)
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "ended 12 hours after you signed in" in page


# -- the session cookie's signing follows the app's keys ------------------------------------------


def test_a_new_secret_key_signs_new_cookies_and_the_old_one_still_reads_as_a_fallback(
        app: Any, dana: str) -> None:
    client = app.test_client()
    assert sign_in(client).status_code == 302
    old_cookie = client.get_cookie("session").value
    old_key = app.secret_key
    app.secret_key = "a-new-key-" + "k" * 30
    try:
        # Signed with the old key alone: no longer read, so the pages ask for a sign-in.
        assert client.get("/conversations").status_code == 302
        app.config["SECRET_KEY_FALLBACKS"] = [old_key]
        client.set_cookie("session", old_cookie)
        assert client.get("/conversations").status_code == 200
        fresh = app.test_client()
        assert sign_in(fresh).status_code == 302
        interface = app.session_interface
        assert interface.get_signing_serializer(app).loads(
            fresh.get_cookie("session").value)["user_id"]
    finally:
        app.secret_key = old_key
        app.config["SECRET_KEY_FALLBACKS"] = []
