"""The signed-in pages: conversations (list, thread, reply box, pause switch) and the dashboard.

Sign-in is by email and password (``textback users add``); a user sees their own account, or
every account when they were added without one. Every form carries a CSRF token bound to the
session. Customers' texts are shown here (that is the point) but never logged.

A session lives in a browser-session cookie and ends, server-side, 12 hours after sign-in or
after 2 hours without a request, whichever comes first. Each user has a session epoch, stored in
the session at sign-in: signing out raises it, so "sign out" ends every session of that user on
every device, and so does a password change.
"""

from __future__ import annotations

import hmac
import math
import secrets
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from sqlalchemy import func, or_, select, update
from werkzeug.wrappers import Response

from connector.domain.policy import NO_CRM_REASONS
from connector.jobs.conversation import mark_human_response
from connector.jobs.crm_text import OUTCOME_WORDS, REASON_WORDS
from connector.kernel import clock, times
from connector.kernel.errors import ConfigurationError
from connector.reporting.dashboard import MAX_DAYS, default_range
from connector.reporting.dashboard import dashboard as build_dashboard
from connector.reporting.explain import explain
from connector.reporting.report import build, parse_day
from connector.runtime import Runtime
from connector.storage.models import Account, Call, ContactProfile, Message, User
from connector.storage.states import MessageStatus, Purpose
from connector.storage.users import (
    authenticate,
    clear_sign_in_failures,
    record_sign_in_failure,
    sign_in_wait,
    user_accounts,
)

bp = Blueprint("pages", __name__)
F = TypeVar("F", bound=Callable[..., Any])

#: A session ends this long after sign-in, however busy.
SESSION_MAX_AGE = timedelta(hours=12)
#: A session ends after this long without a request.
SESSION_IDLE = timedelta(hours=2)


def _runtime() -> Runtime:
    return cast(Runtime, current_app.extensions["textback"])


def csrf_token() -> str:
    """The session's CSRF token, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def same_secret(expected: str, given: str) -> bool:
    """Constant-time equality of two texts, compared as UTF-8 bytes.

    ``secrets.compare_digest`` refuses ``str`` values outside ASCII with a ``TypeError``; as bytes
    any text a form can carry is simply equal or not. Empty values never match.
    """
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"),
                               given.encode("utf-8", "surrogatepass"))


def check_csrf() -> None:
    """Refuse (400) a form whose CSRF token is not the session's."""
    expected = session.get("csrf", "")
    if not isinstance(expected, str) or not same_secret(expected, request.form.get("csrf", "")):
        abort(400, "the form expired: reload the page and try again")


def local_path(target: str) -> str | None:
    """``target`` when it is a path of this app, else None (never a way to another site).

    Browsers read ``//host``, ``/\\host`` and paths with tabs or newlines in them (which they
    strip) as other sites, so only a plain path that starts with a single "/" passes: no scheme,
    no host, no backslash, no control character and no whitespace anywhere.
    """
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(char.isspace() or unicodedata.category(char)[0] in "CZ" for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _session_ended(user: User | None) -> str | None:
    """Why the signed-in session may no longer be used, or None while it may."""
    if user is None or session.get("epoch") != user.session_epoch:
        return "You were signed out. Sign in again."
    now = clock.timestamp()
    signed_in_at, seen_at = session.get("signed_in_at"), session.get("seen_at")
    if not isinstance(signed_in_at, (int, float)) or not isinstance(seen_at, (int, float)):
        return "You were signed out. Sign in again."
    if now - signed_in_at > SESSION_MAX_AGE.total_seconds():
        return "Your session ended 12 hours after you signed in. Sign in again."
    if now - seen_at > SESSION_IDLE.total_seconds():
        return "Your session ended after 2 hours without use. Sign in again."
    return None


def login_required(view: F) -> F:
    """Let a view run only in a live signed-in session; check CSRF on every POST.

    Nobody signed in, or a session that was revoked or expired: the browser goes to the sign-in
    page (with a message when a session ended). A live session's last-seen time is refreshed.
    """
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "user_id" not in session:
            return redirect(url_for("pages.login", next=request.path))
        with _runtime().db.session() as s:
            ended = _session_ended(s.get(User, session["user_id"]))
        if ended is not None:
            session.clear()
            flash(ended)
            return redirect(url_for("pages.login", next=request.path))
        session["seen_at"] = clock.timestamp()
        if request.method == "POST":
            check_csrf()
        return view(*args, **kwargs)
    return cast(F, wrapper)


def visible_accounts(db_session: Any) -> list[Account]:
    """The accounts the signed-in user belongs to, by name."""
    user = db_session.get(User, session["user_id"])
    if user is None:
        abort(403)
    ids = user_accounts(db_session, user)
    return list(db_session.scalars(select(Account).where(Account.id.in_(ids))
                                   .order_by(Account.name)))


def account_for_user(db_session: Any, account_id: str | None) -> Account:
    """The account asked for (and visible to the user), else the one the user last chose, else
    the first by name. The choice is remembered for the next page."""
    accounts = visible_accounts(db_session)
    if not accounts:
        abort(404)
    if account_id is None:
        remembered = session.get("account")
        account = next((a for a in accounts if a.id == remembered), accounts[0])
        return account
    for account in accounts:
        if account.id == account_id:
            session["account"] = account.id
            return account
    abort(404)  # another account's data is never shown, whatever the URL says


def _zone(account: Account) -> ZoneInfo:
    return ZoneInfo(account.timezone)


@bp.app_template_filter("when")
def when(value: datetime | None, account: Account | dict[str, Any], style: str = "full") -> Markup:
    """A stored time as the account's people read it, in a ``<time>`` element.

    ``style`` is ``full`` (``Jun 15, 8:05 AM EDT · 3 min ago``), ``date`` (without the relative
    part) or ``clock`` (``8:05 AM EDT`` for today in the account's zone, the date too for another
    day); the element's tooltip always has the full date.
    """
    if value is None:
        return Markup("")
    zone = ZoneInfo(account["timezone"] if isinstance(account, dict) else account.timezone)
    full = times.format_time(value, zone)
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    today = moment.astimezone(zone).date() == clock.today_in(zone)
    shown = times.format_clock(value, zone) if style == "clock" and today else full
    ago = times.relative_time(value) if style == "full" else ""
    return Markup('<time datetime="{}" title="{}">{}</time>{}').format(
        moment.isoformat(timespec="seconds"), full, shown,
        Markup(' <small class="ago">· {}</small>').format(ago) if ago else "")


def what_happened(call: Call) -> str:
    """Where the call's text-back stands, in words ("Texted back", "Not texted: ...")."""
    if call.state == "received":
        return "Deciding…"
    if call.state in ("texted", "decided"):
        return "Texted back" if call.state == "texted" else "Texting back…"
    if call.state == "scheduled":
        return "Text scheduled"
    if call.state == "text_failed":
        return "The carrier refused the text"
    words = REASON_WORDS.get(call.reason or "", call.reason or "")
    return f"Not texted: {words}"


def crm_words(call: Call) -> str:
    """Where the call stands in the CRM, in words; a call the CRM never gets says why."""
    if call.reason in NO_CRM_REASONS:
        return "Not written to the CRM: " + REASON_WORDS.get(call.reason or "", "not needed")
    return {"pending": "Writing to the CRM…", "retry": "The CRM did not answer; retrying",
            "waiting_text": "In the CRM; waiting for the text", "done": "In the CRM",
            "partial": "Partly in the CRM", "failed": "The CRM refused it",
            "needs_reauth": "The CRM needs reconnecting"}.get(call.crm_state, call.crm_state)


#: The header's page links for a signed-in user: (path, label).
NAV_LINKS: list[tuple[str, str]] = [("/conversations", "Conversations"), ("/dashboard", "Dashboard")]


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "signed_in": "user_id" in session,
            "user_name": session.get("user_name"), "nav_links": NAV_LINKS,
            "what_happened": what_happened, "crm_words": crm_words, "outcome_words": OUTCOME_WORDS}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in with email and password, within the rate limit of refused attempts."""
    if request.method == "GET":
        return render_template("login.html", error=None)
    check_csrf()
    email, password = request.form.get("email", ""), request.form.get("password", "")
    address = request.remote_addr or "unknown"
    with _runtime().db.session() as s:
        wait = sign_in_wait(s, email, address)
        if wait is not None:
            return _too_many_attempts(wait, email)
        user = authenticate(s, email, password)
        if user is None:
            record_sign_in_failure(s, email, address)
        else:
            clear_sign_in_failures(s, email)
            _start_session(user)
    if user is None:
        return render_template("login.html", error="That email and password do not match.",
                               email=email), 401
    return redirect(local_path(request.args.get("next", "")) or url_for("pages.conversations"))


def _start_session(user: User) -> None:
    session.clear()
    now = clock.timestamp()
    session["user_id"], session["user_name"] = user.id, user.name
    session["epoch"] = user.session_epoch
    session["signed_in_at"] = session["seen_at"] = now
    session.permanent = False  # a browser-session cookie; the limits above are kept here


def _too_many_attempts(wait: timedelta, email: str) -> Response:
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    page = render_template(
        "login.html", error=f"Too many sign-in attempts. Try again in {minutes} {unit}.", email=email)
    return Response(page, status=429, mimetype="text/html",
                    headers={"Retry-After": str(math.ceil(wait.total_seconds()))})


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out everywhere: raise the user's session epoch, which ends all their sessions."""
    with _runtime().db.session() as s:
        s.execute(update(User).where(User.id == session["user_id"])
                  .values(session_epoch=User.session_epoch + 1))
    session.clear()
    flash("You are signed out, on every device.")
    return redirect(url_for("pages.login"))


@bp.get("/conversations")
@login_required
def conversations() -> str:
    """Recent missed calls of the account, newest first: where each stands, who owns it, whether
    the caller is paused, and the last text either way."""
    with _runtime().db.session() as s:
        account = account_for_user(s, request.args.get("account"))
        calls = s.scalars(select(Call).where(Call.account_id == account.id)
                          .order_by(Call.occurred_at.desc()).limit(100)).all()
        callers = {c.caller for c in calls if c.caller}
        paused = set(s.scalars(select(ContactProfile.number).where(
            ContactProfile.account_id == account.id, ContactProfile.number.in_(callers),
            ContactProfile.automation_paused.is_(True)))) if callers else set()
        return render_template("conversations.html", account=account, calls=calls,
                               accounts=visible_accounts(s), paused=paused,
                               last_texts=_last_texts(s, account.id, callers),
                               owners=owner_names(account))


def owner_names(account: Account) -> dict[str, str]:
    """The account's owners by id (the CRM user id) with the names people know them by."""
    routing = account.settings.get("routing") or {}
    return {o["id"]: o.get("name") or o["id"] for o in routing.get("owners") or []}


def _last_texts(s: Any, account_id: str, callers: set[str]) -> dict[str, Message]:
    """The newest text to or from each caller (alerts to the team left out)."""
    if not callers:
        return {}
    newest = (select(Message.customer, func.max(Message.created_at).label("at"))
              .where(Message.account_id == account_id, Message.customer.in_(callers),
                     ~Message.purpose_key.startswith("alert:"))
              .group_by(Message.customer).subquery())
    rows = s.scalars(select(Message).join(newest, (Message.customer == newest.c.customer)
                                          & (Message.created_at == newest.c.at))
                     .where(Message.account_id == account_id,
                            ~Message.purpose_key.startswith("alert:")))
    return {m.customer: m for m in rows}


def _thread(s: Any, account: Account, call: Call) -> list[Message]:
    since = call.occurred_at - timedelta(days=1)
    return list(s.scalars(select(Message).where(
        Message.account_id == account.id,
        or_(Message.customer == call.caller, Message.call_id == call.id),
        ~Message.purpose_key.startswith(Purpose.ALERT.prefix),
        Message.created_at >= since,
    ).order_by(Message.created_at)))


@bp.get("/conversations/<call_id>")
@login_required
def thread(call_id: str) -> str:
    """One conversation: the call, every text both ways, the reply box and the pause switch."""
    with _runtime().db.session() as s:
        call = s.get(Call, call_id)
        if call is None:
            abort(404)
        account = account_for_user(s, call.account_id)
        profile = s.get(ContactProfile, (account.id, call.caller or ""))
        return render_template("thread.html", account=account, call=call,
                               messages=_thread(s, account, call),
                               paused=bool(profile and profile.automation_paused),
                               owners=owner_names(account))


@bp.get("/conversations/<call_id>/explain")
@login_required
def why(call_id: str) -> str:
    """``textback explain`` for one call of the user's accounts (the thread loads it on demand)."""
    return explain_fragment(call_id, lambda s, call: account_for_user(s, call.account_id))


def explain_fragment(call_id: str, may_see: Callable[[Any, Call], object]) -> str:
    """``textback explain`` of a call as a page fragment; ``may_see`` aborts for a call the
    request may not see (404 for a call that does not exist)."""
    runtime = _runtime()
    with runtime.db.session() as s:
        call = s.get(Call, call_id)
        if call is None:
            abort(404)
        may_see(s, call)
    return render_template("_explain.html", text=explain(runtime, call_id))


@bp.post("/conversations/<call_id>/reply")
@login_required
def reply(call_id: str) -> Response:
    """Send the typed reply to the customer from the business number, as a person."""
    runtime = _runtime()
    text = request.form.get("body", "").strip()
    with runtime.db.session() as s:
        call = s.get(Call, call_id)
        if call is None or call.caller is None:
            abort(404)
        account = account_for_user(s, call.account_id)
        if not text or len(text) > 1600:
            abort(400, "a reply needs 1 to 1600 characters")
        numbers = account.settings["carrier"]["numbers"]
        message = Message(
            account_id=account.id, call_id=call.id, direction="outbound",
            purpose_key=Purpose.HUMAN.key("web", secrets.token_hex(8)), customer=call.caller,
            business_number=call.called if call.called in numbers else numbers[0],
            body=text, status=MessageStatus.INTENT,
        )
        s.add(message)
        s.flush()
        mark_human_response(s, call, clock.now(), f"{session.get('user_name')} replied on the page")
        message_id = message.id
    runtime.jobs.enqueue_reply(message_id)
    return redirect(url_for("pages.thread", call_id=call_id))


@bp.post("/conversations/<call_id>/pause")
@login_required
def pause(call_id: str) -> Response:
    """Turn automated texts to this caller off (or back on)."""
    with _runtime().db.session() as s:
        call = s.get(Call, call_id)
        if call is None or call.caller is None:
            abort(404)
        account = account_for_user(s, call.account_id)
        profile = s.get(ContactProfile, (account.id, call.caller))
        if profile is None:
            profile = ContactProfile(account_id=account.id, number=call.caller)
            s.add(profile)
        profile.automation_paused = request.form.get("paused") == "1"
    return redirect(url_for("pages.thread", call_id=call_id))


@bp.get("/dashboard")
@login_required
def dashboard() -> tuple[str, int]:
    """The account's numbers per day over a period (the last 30 days unless ``since`` and
    ``until`` say otherwise): totals, rates and a chart per series, the same figures as
    ``textback report``. A bad period is named on the page and the last 30 days are shown."""
    with _runtime().db.session() as s:
        account = account_for_user(s, request.args.get("account"))
        today = clock.today_in(_zone(account))
        since, until = default_range(today)
        error, status = None, 200
        try:
            since, until = _period_asked(since, until, today)
            report = build(s, account.id, since, until, "day")
        except ConfigurationError as exc:
            error, status = str(exc), 400
            since, until = default_range(today)
            report = build(s, account.id, since, until, "day")
        return render_template(
            "dashboard.html", account=account, accounts=visible_accounts(s), report=report,
            board=build_dashboard(report), since=since, until=until, today=today, error=error,
            presets=[(days, *default_range(today, days)) for days in (7, 30, 90)],
        ), status


def _period_asked(since: date, until: date, today: date) -> tuple[date, date]:
    """The ``since`` and ``until`` of the query (each defaulting to the given), checked."""
    asked_since = request.args.get("since", "").strip()
    asked_until = request.args.get("until", "").strip()
    problems = []
    try:
        since = parse_day(asked_since, "From") if asked_since else since
    except ConfigurationError:
        problems.append(f"From takes a date like 2026-05-31, not {asked_since!r}")
    try:
        until = parse_day(asked_until, "To") if asked_until else until
    except ConfigurationError:
        problems.append(f"To takes a date like 2026-05-31, not {asked_until!r}")
    if not problems and since > today:
        problems.append(f"From ({since}) is after today ({today} in the account's time zone)")
    if not problems and until < since:
        problems.append(f"To ({until}) is before From ({since})")
    if not problems and (until - since).days + 1 > MAX_DAYS:
        problems.append(f"the dashboard shows at most {MAX_DAYS} days at once")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return since, until
