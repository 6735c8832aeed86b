"""The home page and the demo.

``/`` is the demo while the demo account is the only account (anyone may try it: it runs on the
built-in sandbox carrier and CRM, so it never texts a real customer). Otherwise ``/`` is the home
page: a signed-in user sees the status of each of their accounts, anyone else a way to sign in.

The demo (``/demo`` and everything under it) simulates a missed call, the caller's reply or STOP,
and the carrier's delivery report, and shows what textback did: each call with its texts, why it
was or was not texted (``textback explain``), and the CRM records as the CRM shows them. Once a
real account exists the demo is off, unless ``TEXTBACK_DEMO=keep`` asked to keep it: then it is
behind sign-in, for users of the demo account.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import func, or_, select

from connector.domain.policy import NO_CRM_REASONS
from connector.jobs.crm_text import OUTCOME_WORDS
from connector.kernel import clock, safe_json
from connector.kernel.errors import ConfigurationError, MalformedWebhookError
from connector.kernel.phone import to_e164
from connector.kernel.times import parse_time
from connector.runtime import Runtime
from connector.simulate import (
    DEMO_ACCOUNT_ID,
    DemoMode,
    account_snapshot,
    demo_mode,
    simulate_call,
    simulate_delivery,
    simulate_text,
)
from connector.storage.installations import connection_state
from connector.storage.models import Account, Call, Message, SandboxRecord, User
from connector.web.pages import (
    account_for_user,
    check_csrf,
    crm_words,
    explain_fragment,
    login_required,
    what_happened,
)
from connector.web.pages import visible_accounts as users_accounts

bp = Blueprint("demo", __name__)
F = TypeVar("F", bound=Callable[..., Any])

OUTCOMES = ("no-answer", "busy", "canceled", "failed", "voicemail", "answered")
#: What the customer panel can do as the caller, and as their carrier.
CUSTOMER_ACTIONS = ("reply", "stop", "delivered", "failed")
#: How many recent calls the demo shows.
RECENT = 10
#: The activity list refreshes itself while a call this recent is still being worked on.
BUSY_WINDOW = timedelta(minutes=2)


def _runtime() -> Runtime:
    return cast(Runtime, current_app.extensions["textback"])


def _mode() -> DemoMode:
    runtime = _runtime()
    with runtime.db.session() as s:
        return demo_mode(s, runtime.settings.keep_demo)


def _wants_json() -> bool:
    return request.is_json or request.path.endswith(".json")


def demo_only(view: F) -> F:
    """Let a demo view run while the demo is on: open while it is the only account, behind
    sign-in (for users of the demo account) while kept beside real accounts; 404 once off.

    Form posts carry the page's CSRF token whoever sends them; JSON posts (a script's) are taken
    only while the demo is open.
    """
    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if request.method == "POST" and not request.is_json:
            check_csrf()
        return view(*args, **kwargs)

    @login_required
    def signed_in(*args: Any, **kwargs: Any) -> Any:
        with _runtime().db.session() as s:
            account_for_user(s, DEMO_ACCOUNT_ID)  # 404 unless the user belongs to the demo
        return view(*args, **kwargs)

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mode = _mode()
        if mode in ("absent", "retired"):
            why = ("no demo account is loaded" if mode == "absent" else
                   "the demo is off now that a real account exists (TEXTBACK_DEMO=keep keeps it)")
            if _wants_json():
                return jsonify(error=why), 404
            abort(404, why)
        if mode == "beside":
            return signed_in(*args, **kwargs)
        return checked(*args, **kwargs)
    return cast(F, wrapper)


# -- home -----------------------------------------------------------------------------------------


@dataclass
class AccountStatus:
    """One account as the home page shows it."""

    account: Account
    crm: str
    crm_status: str
    crm_since: datetime | None
    numbers: list[str]
    calls_today: int
    texted_today: int
    last_call: datetime | None
    waiting: int  # customers who replied and have not heard from a person yet
    problems: list[str] = field(default_factory=list)


def _status(s: Any, account: Account) -> AccountStatus:
    zone_today = clock.today_in(_zone(account))
    start = datetime.combine(zone_today, datetime.min.time(), _zone(account))
    calls_today = select(func.count()).select_from(Call).where(
        Call.account_id == account.id, Call.occurred_at >= start)
    connection = connection_state(s, account.id)
    problems = []
    if connection.status in ("disconnected", "not connected"):
        problems.append(f"The CRM is {connection.status}"
                        + (f": {connection.disconnected_reason}"
                           if connection.disconnected_reason else "") + ".")
    stuck = s.scalar(select(func.count()).select_from(Call).where(
        Call.account_id == account.id, Call.crm_state.in_(("failed", "partial", "needs_reauth"))))
    if stuck:
        problems.append(f"{stuck} call{'s' if stuck != 1 else ''} could not be written to the "
                        "CRM in full.")
    return AccountStatus(
        account=account, crm=connection.crm, crm_status=connection.status,
        crm_since=connection.connected_at,
        numbers=list(account.settings.get("carrier", {}).get("numbers", [])),
        calls_today=int(s.scalar(calls_today) or 0),
        texted_today=int(s.scalar(calls_today.where(Call.state == "texted")) or 0),
        last_call=s.scalar(select(func.max(Call.occurred_at)).where(
            Call.account_id == account.id)),
        waiting=int(s.scalar(select(func.count()).select_from(Call).where(
            Call.account_id == account.id, Call.customer_replied_at.is_not(None),
            Call.human_responded_at.is_(None))) or 0),
        problems=problems,
    )


def _zone(account: Account) -> ZoneInfo:
    return ZoneInfo(account.timezone)


@login_required
def _home(mode: DemoMode) -> str:
    with _runtime().db.session() as s:
        statuses = [_status(s, a) for a in users_accounts(s)]
        user = s.get(User, session["user_id"])
        return render_template("home.html", statuses=statuses, demo_on=mode == "beside"
                               and any(st.account.id == DEMO_ACCOUNT_ID for st in statuses),
                               admin=user is not None and user.role == "admin")


@bp.get("/")
def index() -> Any:
    """The demo while it is the only account; else the home page (account status when signed
    in, a way to sign in when not)."""
    mode = _mode()
    if mode == "alone":
        return _demo_page()
    if "user_id" in session:
        return _home(mode)
    with _runtime().db.session() as s:
        any_account = s.scalar(select(Account.id).limit(1)) is not None
    return render_template("welcome.html", any_account=any_account)


# -- the demo page --------------------------------------------------------------------------------


def _fresh_number(s: Any) -> str:
    """A sandbox caller number this demo has not called from yet (so no cooldown applies)."""
    used = set(s.scalars(select(Call.caller).where(Call.account_id == DEMO_ACCOUNT_ID)))
    for _ in range(50):
        number = f"+1415555{secrets.randbelow(9000) + 1000:04d}"
        if number not in used:
            return number
    return f"+1415555{secrets.randbelow(9000) + 1000:04d}"


def _demo_page() -> str:
    runtime = _runtime()
    with runtime.db.session() as s:
        account = s.get(Account, DEMO_ACCOUNT_ID)
        if account is None:
            abort(404)
        last_caller = s.scalar(select(Call.caller).where(
            Call.account_id == DEMO_ACCOUNT_ID, Call.caller.is_not(None))
            .order_by(Call.occurred_at.desc()).limit(1))
        return render_template(
            "demo.html", account=account, number=account.settings["carrier"]["numbers"][0],
            outcomes=OUTCOMES, fresh=_fresh_number(s),
            last_caller=session.get("demo_caller") or last_caller or "",
            activity=_activity(s),
            today=clock.today_in(_zone(account)))


@bp.get("/demo")
@demo_only
def page() -> str:
    """The demo page."""
    return _demo_page()


@dataclass
class CallView:
    """One call on the demo page, in words."""

    call: Call
    outcome: str
    what: str
    crm: str
    messages: list[Message]
    repeat: str | None  # "cooldown" or "burst": not texted again, on purpose


@dataclass
class ContactCard:
    """A CRM contact with the records filed under it, as the CRM would show them."""

    contact: dict[str, Any]
    leads: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


def _record(row: SandboxRecord) -> dict[str, Any]:
    data = dict(row.data)
    data["id"], data["seq"] = str(row.id), row.id
    for key in ("due_at", "occurred_at"):
        if data.get(key):
            data[key] = parse_time(data[key])
    return data


def _crm_cards(s: Any) -> list[ContactCard]:
    rows = s.scalars(select(SandboxRecord).where(
        SandboxRecord.account_id == DEMO_ACCOUNT_ID, SandboxRecord.kind != "sms")
        .order_by(SandboxRecord.id.desc()).limit(200)).all()
    cards: dict[str, ContactCard] = {}
    for row in rows:
        if row.kind == "contact":
            cards[str(row.id)] = ContactCard(_record(row))
    for row in reversed(rows):
        card = cards.get(str(row.data.get("contact_id")))
        if card is None or row.kind == "contact":
            continue
        bucket = {"lead": card.leads, "task": card.tasks, "call": card.calls,
                  "message": card.messages}.get(row.kind)
        if bucket is not None:
            bucket.append(_record(row))
    return list(cards.values())[:RECENT]


def _activity(s: Any) -> dict[str, Any]:
    account = s.get(Account, DEMO_ACCOUNT_ID)
    calls = s.scalars(select(Call).where(Call.account_id == DEMO_ACCOUNT_ID)
                      .order_by(Call.occurred_at.desc()).limit(RECENT)).all()
    views = []
    for call in calls:
        messages = list(s.scalars(select(Message).where(
            Message.account_id == DEMO_ACCOUNT_ID,
            or_(Message.call_id == call.id, Message.customer == (call.caller or "-")),
            ~Message.purpose_key.startswith("alert:"),
            Message.created_at >= call.occurred_at - timedelta(minutes=1),
        ).order_by(Message.created_at)))
        views.append(CallView(call, OUTCOME_WORDS.get(call.outcome, call.outcome), what_happened(call),
                              crm_words(call), messages,
                              call.reason if call.reason in ("cooldown", "burst") else None))
    now = clock.now()
    busy = any(
        (v.call.state in ("received", "decided")
         or (v.call.crm_state in ("pending", "retry") and v.call.reason not in NO_CRM_REASONS))
        and now - _aware(v.call.created_at) < BUSY_WINDOW for v in views)
    policy = account.settings.get("policy") or {}
    return {"account": account, "calls": views, "cards": _crm_cards(s), "busy": busy,
            "cooldown_hours": float(policy.get("cooldown_hours", 24)),
            "burst_minutes": float(policy.get("burst_window_minutes", 15))}


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@bp.get("/demo/activity")
@demo_only
def activity() -> str:
    """The calls, texts and CRM records of the demo, for the page to refresh in place."""
    with _runtime().db.session() as s:
        return render_template("_demo_activity.html", activity=_activity(s))


@bp.get("/demo/explain/<call_id>")
@demo_only
def why(call_id: str) -> str:
    """``textback explain`` for one of the demo's calls."""
    def the_demos(_: Any, call: Call) -> None:
        if call.account_id != DEMO_ACCOUNT_ID:
            abort(404)

    return explain_fragment(call_id, the_demos)


# -- simulating -----------------------------------------------------------------------------------


def _payload() -> dict[str, Any] | tuple[Response, int]:
    if not request.is_json:
        return dict(request.form)
    try:
        payload = safe_json.loads(request.get_data(cache=True), what="demo request")
    except MalformedWebhookError as exc:
        return jsonify(error=str(exc)), 400
    if not isinstance(payload, dict):
        return jsonify(error="the request body must be a JSON object"), 400
    return payload


def _refused(message: str, status: int = 400) -> Any:
    if request.is_json:
        return jsonify(error=message), status
    flash(message[:1].upper() + message[1:] + ".")
    return redirect(url_for("demo.page"), code=303)


@bp.post("/demo/simulate-call")
@demo_only
def simulate() -> Any:
    """Simulate a call from the number in the form (or JSON) to the demo account."""
    runtime = _runtime()
    payload = _payload()
    if isinstance(payload, tuple):
        return payload
    caller = str(payload.get("from") or "+14155550123").strip()
    outcome = str(payload.get("outcome") or "no-answer")
    if outcome not in OUTCOMES:
        return _refused(f"outcome must be one of {', '.join(OUTCOMES)}")
    try:
        status, call_id = simulate_call(
            runtime, current_app._get_current_object(), DEMO_ACCOUNT_ID, caller, outcome  # type: ignore[attr-defined]
        )
    except ConfigurationError as exc:
        return _refused(str(exc), 404)
    if status >= 400:
        return _refused(f"the webhook answered {status}")
    if request.is_json:
        return jsonify(call_id=call_id, answered=call_id is None), 200
    flash("Answered: nothing to do." if call_id is None else
          f"Call from {caller} received. What textback did shows below.")
    session["demo_caller"] = caller
    return redirect(url_for("demo.page"), code=303)


@bp.post("/demo/customer")
@demo_only
def customer() -> Any:
    """Act as the caller (a reply or STOP) or as their carrier (a delivery report)."""
    runtime = _runtime()
    action = request.form.get("action", "")
    number = to_e164(request.form.get("from", "").strip()) or ""
    body = request.form.get("body", "").strip()
    problems = []
    if action not in CUSTOMER_ACTIONS:
        problems.append(f"choose one of {', '.join(CUSTOMER_ACTIONS)}")
    if not number:
        problems.append("the caller's number should look like +14155550123")
    if action == "reply" and not 1 <= len(body) <= 1600:
        problems.append("a reply needs 1 to 1600 characters")
    if problems:
        return _refused("; ".join(problems))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if action in ("reply", "stop"):
        status = simulate_text(runtime, app, DEMO_ACCOUNT_ID, number,
                               body if action == "reply" else "STOP")
        if status >= 400:
            return _refused(f"the webhook answered {status}")
        flash(f"{number} texted " + ("STOP: they are opted out, and get one confirmation."
                                     if action == "stop" else "back."))
    else:
        try:
            sent = simulate_delivery(runtime, app, DEMO_ACCOUNT_ID, number, action)
        except ConfigurationError as exc:
            return _refused(str(exc))
        flash(f"The carrier reported {sent} text{'s' if sent != 1 else ''} to {number} "
              f"{action}." if sent else f"No text to {number} is waiting for a delivery report.")
    session["demo_caller"] = number
    return redirect(url_for("demo.page"), code=303)


@bp.get("/demo/state.json")
@demo_only
def state() -> Response:
    """Recent calls, texts and CRM records of the demo account."""
    return jsonify(account_snapshot(_runtime(), DEMO_ACCOUNT_ID))

