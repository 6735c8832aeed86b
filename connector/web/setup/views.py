"""The checklist and the pages that keep to the account file: missed calls, hours, texts,
consent, routing and escalation."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from carrier_adapters import CARRIERS
from connector.domain.hours import WEEKDAYS, BusinessHours, describe_next_open
from connector.domain.templates import (
    DEFAULT_TEXTS,
    LANGUAGES,
    TemplateError,
    render,
    sms_encoding,
    validate_template,
)
from connector.jobs.compose import SAMPLE_VALUES, account_texts
from connector.kernel import clock
from connector.settings.account_schema import TEXTABLE_OUTCOMES
from connector.storage.models import Account, AuditEntry, User
from connector.storage.users import user_accounts
from connector.web.pages import NAV_LINKS, login_required
from connector.web.setup.access import admin_account, runtime
from connector.web.setup.blueprint import bp
from connector.web.setup.checklist import DONE, checklist, last_change
from connector.web.setup.connect import crm_choices
from connector.web.setup.forms import (
    HOURS_HINT,
    add_error,
    dated_lines,
    errors_at,
    format_spans,
    lines_of,
    parse_spans,
)
from connector.web.setup.saving import FieldErrors, current_document, save_document
from crm_adapters import CRMS

#: The scenarios a first text can use, with what each is for.
FIRST_TEXTS = {
    "general": "General service business",
    "contractor": "Contractor or home service",
    "appointment": "Appointment business",
    "after_hours": "After hours",
    "emergency": "Emergency service",
}
#: The texts that answer STOP, START and HELP.
CONSENT_TEXTS = {
    "opt_out_confirmation": "After STOP (opt-out confirmation)",
    "opt_in_confirmation": "After START (opt-in confirmation)",
    "help": "After HELP",
}
OUTCOME_WORDS = {
    "no-answer": "Nobody answered", "busy": "The line was busy",
    "voicemail": "The caller left a voicemail", "canceled": "The caller hung up while it rang",
    "failed": "The call failed to connect",
    "rejected": "The call was declined",
    "after-hours": "The phone system sent it to its after-hours flow",
}
LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}


def _page(template: str, account: Account, errors: FieldErrors, **context: Any) -> Any:
    """Render a setup page; 400 when the form was refused (its values are shown again)."""
    html = render_template(template, account=account, errors=errors,
                           form=request.form if errors else None, **context)
    return (html, 400) if errors else html


Edit = Callable[[dict[str, Any], Account], FieldErrors | None]
Show = Callable[[Session, Account, FieldErrors], Any]


def _form_view(account_id: str, action: str, saved: str, edit: Edit, show: Show,
               **redirect_args: Any) -> Any:
    """A setup form: on POST, ``edit`` the account document and save it (then back to the
    page with a note); otherwise, or when refused, ``show`` the page with the errors."""
    rt = runtime()
    with rt.db.session() as s:
        account, user = admin_account(s, account_id)
        errors: FieldErrors = {}
        if request.method == "POST":
            errors = save_document(s, rt.box, account, user.email, action,
                                   lambda doc: edit(doc, account))
            if not errors:
                flash(f"{saved} saved.")
                return redirect(url_for(str(request.endpoint), account_id=account.id,
                                        **redirect_args))
        return show(s, account, errors)


@bp.app_template_filter("plain")
def plain_number(value: Any) -> Any:
    """A stored number as people write it: ``15.0`` -> ``15``, ``2.5`` stays."""
    return f"{value:g}" if isinstance(value, float) else value


@bp.app_template_global()
def field_errors(errors: dict[str, list[str]] | None, path: str) -> list[str]:
    """The messages to show next to the field of ``path``."""
    return errors_at(errors or {}, path)


@bp.get("")
@login_required
def overview(account_id: str) -> str:
    """The eight questions with their states, and who changed the setup last."""
    with runtime().db.session() as s:
        account, _user = admin_account(s, account_id)
        items = checklist(s, account)
        recent = s.scalars(select(AuditEntry).where(AuditEntry.account_id == account.id)
                           .order_by(AuditEntry.id.desc()).limit(8)).all()
        return render_template("setup/checklist.html", account=account, items=items,
                               done=sum(i.state == DONE for i in items), recent=recent,
                               last=last_change(s, account.id), zone=ZoneInfo(account.timezone))


# -- question 2: what counts as a missed call ------------------------------------------------

@bp.route("/missed-calls", methods=["GET", "POST"])
@login_required
def missed_calls(account_id: str) -> Any:
    """Which call outcomes get a text, the shortest ring, and who the calls ring first."""
    def show(_s: Session, account: Account, errors: FieldErrors) -> Any:
        return _page("setup/missed_calls.html", account, errors,
                     doc=current_document(account, runtime().box),
                     outcomes=[(o, OUTCOME_WORDS.get(o, o)) for o in TEXTABLE_OUTCOMES])

    return _form_view(account_id, "missed calls", "What counts as a missed call",
                      lambda doc, _account: _edit_missed(doc, request.form), show)


def _number_or_text(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text  # the schema names it: "Not a valid number."


def _edit_missed(doc: dict[str, Any], form: MultiDict[str, str]) -> FieldErrors:
    policy, carrier = doc["policy"], doc["carrier"]
    policy["texted_outcomes"] = form.getlist("texted_outcomes")
    policy["min_ring_seconds"] = _number_or_text(form.get("min_ring_seconds", ""))
    policy["cooldown_hours"] = _number_or_text(form.get("cooldown_hours", ""))
    policy["send_delay_seconds"] = _number_or_text(form.get("send_delay_seconds", ""))
    carrier["forward_to"] = lines_of(form.get("forward_to", ""))
    ring = form.get("ring_timeout_seconds", "")
    carrier["ring_timeout_seconds"] = int(ring) if ring.isdigit() else ring
    return {}


# -- question 3: hours -------------------------------------------------------------------------

@bp.route("/hours", methods=["GET", "POST"])
@login_required
def hours(account_id: str) -> Any:
    """Weekly hours with split shifts, holidays and date overrides, for the account or one of
    its business numbers; "open now / next opens at" in the account's zone."""
    asked = request.args.get("number") or None

    def number_of(account: Account) -> str | None:
        return asked if asked in account.settings["carrier"]["numbers"] else None

    def show(_s: Session, account: Account, errors: FieldErrors) -> Any:
        number, numbers = number_of(account), account.settings["carrier"]["numbers"]
        doc = current_document(account, runtime().box)
        schedule = doc["hours"] if number is None else doc["hours"]["per_number"].get(number)
        own = schedule is not None
        schedule = schedule or doc["hours"]
        now, zone = clock.now(), ZoneInfo(account.timezone)
        business_hours = BusinessHours.from_settings(account.timezone, account.settings["hours"])
        status = []
        for shown in numbers:
            is_open = business_hours.is_open(now, shown)
            nxt = None if is_open else describe_next_open(
                business_hours.next_open(now, shown), now, zone)
            status.append((shown, is_open, nxt))
        return _page(
            "setup/hours.html", account, errors, number=number, numbers=numbers, own=own,
            weekdays=WEEKDAYS, hint=HOURS_HINT, status=status,
            local_now=now.astimezone(zone),
            weekly={day: format_spans(schedule["weekly"].get(day, [])) for day in WEEKDAYS},
            holidays="\n".join(f"{h['date']} {h['name']}" for h in schedule["holidays"]),
            overrides="\n".join(
                f"{o['date']} {format_spans(o['open']) or 'closed'} {o.get('note', '')}".strip()
                for o in schedule["overrides"]),
            zones=sorted(zoneinfo.available_timezones()),
            prefix="hours" if number is None else f"hours.per_number.{number}",
        )

    return _form_view(account_id, "hours", "Hours",
                      lambda doc, account: _edit_hours(doc, request.form, number_of(account)),
                      show, **({"number": asked} if asked else {}))


def _edit_hours(doc: dict[str, Any], form: MultiDict[str, str], number: str | None) -> FieldErrors:
    errors: FieldErrors = {}
    prefix = "hours" if number is None else f"hours.per_number.{number}"
    if number is None:
        doc["timezone"] = form.get("timezone", "").strip()
    elif form.get("same_as_account"):
        doc["hours"]["per_number"].pop(number, None)
        return errors
    weekly: dict[str, list[list[str]]] = {}
    for day in WEEKDAYS:
        spans = parse_spans(form.get(f"weekly_{day}", ""))
        if spans is None:
            add_error(errors, f"{prefix}.weekly.{day}", HOURS_HINT)
        elif spans:
            weekly[day] = spans
    holidays = []
    for i, (day, name) in enumerate(dated_lines(form.get("holidays", ""))):
        if not name:
            add_error(errors, f"{prefix}.holidays",
                      f"line {i + 1}: name the day after its date, e.g. 2026-12-25 Christmas Day")
        holidays.append({"date": day, "name": name})
    overrides = []
    for i, (day, rest) in enumerate(dated_lines(form.get("overrides", ""))):
        words = rest.split(None, 1)
        first = words[0] if words else ""
        note = words[1] if len(words) > 1 else ""
        spans = [] if first.lower() == "closed" else parse_spans(first)
        if spans is None or not first:
            add_error(errors, f"{prefix}.overrides",
                      f"line {i + 1}: write a date, then hours or 'closed', then an optional "
                      "note, e.g. 2026-12-24 08:00-12:00 Christmas Eve")
            continue
        overrides.append({"date": day, "open": spans, "note": note})
    schedule = {"weekly": weekly, "holidays": holidays, "overrides": overrides}
    if number is None:
        doc["hours"].update(schedule)
    else:
        doc["hours"]["per_number"][number] = schedule
    return errors


# -- texts and their live preview ----------------------------------------------------------------

def _text_fields(account: Account, names: dict[str, str]) -> list[dict[str, Any]]:
    texts = account_texts(account)
    return [{"name": name, "label": label, "language": lang,
             "field": f"text_{name}_{lang}", "value": texts.get(name, {}).get(lang, ""),
             "preview": preview_of(account, name, texts.get(name, {}).get(lang, ""), lang)}
            for name, label in names.items() for lang in LANGUAGES]


def preview_of(account: Account, scenario: str, text: str, language: str) -> dict[str, Any]:
    """The text filled with sample data, its encoding and segments, and what import would
    refuse in it."""
    problem = None
    try:
        validate_template(text, first_message=scenario in FIRST_TEXTS,
                          business_name=account.name)
    except TemplateError as exc:
        problem = str(exc)
    body = render(text, {"business_name": account.name, **SAMPLE_VALUES}, language) \
        if problem is None else ""
    return {"body": body, "encoding": sms_encoding(body) if body else None, "problem": problem}


def _edit_texts(doc: dict[str, Any], form: MultiDict[str, str], names: dict[str, str]
                ) -> FieldErrors:
    texts = doc["templates"].setdefault("texts", {})
    for name in names:
        for lang in LANGUAGES:
            text = form.get(f"text_{name}_{lang}", "").strip().replace("\r\n", "\n")
            default = DEFAULT_TEXTS.get(name, {}).get(lang)
            if not text or text == default:
                texts.get(name, {}).pop(lang, None)  # back to our own wording
            else:
                texts.setdefault(name, {})[lang] = text
        if name in texts and not texts[name]:
            del texts[name]
    return {}


@bp.route("/texts", methods=["GET", "POST"])
@login_required
def texts(account_id: str) -> Any:
    """Each scenario's text in English and Spanish, with a live preview, and which scenario
    each situation uses."""
    def edit(doc: dict[str, Any], _account: Account) -> FieldErrors:
        templates, business = doc["templates"], doc["business"]
        templates["language"] = request.form.get("language", "")
        for use in ("missed_call", "after_hours"):
            templates[use] = request.form.get(use, "")
        templates["voicemail"] = request.form.get("voicemail") or None
        for key in ("booking_link", "emergency_number", "callback_number"):
            business[key] = request.form.get(key, "").strip() or None
        return _edit_texts(doc, request.form, FIRST_TEXTS)

    def show(_s: Session, account: Account, errors: FieldErrors) -> Any:
        return _page("setup/texts.html", account, errors,
                     doc=current_document(account, runtime().box),
                     fields=_text_fields(account, FIRST_TEXTS), scenarios=FIRST_TEXTS,
                     languages=LANGUAGE_NAMES)

    return _form_view(account_id, "texts", "Texts", edit, show)


@bp.get("/texts/preview")
@login_required
def preview(account_id: str) -> str:
    """The preview of one text as typed (htmx swaps it in under the text area)."""
    with runtime().db.session() as s:
        account, _user = admin_account(s, account_id)
        field = next((k for k in request.args if k.startswith("text_")), "")
        name, _, lang = field.removeprefix("text_").rpartition("_")
        if lang not in LANGUAGES or name not in {**FIRST_TEXTS, **CONSENT_TEXTS}:
            return ""
        return render_template("setup/_preview.html",
                               preview=preview_of(account, name, request.args[field], lang))


# -- question 7: consent -------------------------------------------------------------------------

@bp.route("/consent", methods=["GET", "POST"])
@login_required
def consent(account_id: str) -> Any:
    """Who answers STOP, START and HELP, and the texts textback sends for them."""
    def edit(doc: dict[str, Any], _account: Account) -> FieldErrors:
        answer = request.form.get("who_answers", "")
        if answer not in ("carrier", "textback", "default"):
            return {"policy.carrier_confirms_opt_out": ["choose who answers"]}
        doc["policy"]["carrier_confirms_opt_out"] = {
            "carrier": True, "textback": False, "default": None}[answer]
        return _edit_texts(doc, request.form, CONSENT_TEXTS)

    def show(_s: Session, account: Account, errors: FieldErrors) -> Any:
        doc = current_document(account, runtime().box)
        carrier = CARRIERS[(doc["carrier"].get("sms") or doc["carrier"])["kind"]]
        who = doc["policy"].get("carrier_confirms_opt_out")
        return _page("setup/consent.html", account, errors, carrier=carrier,
                     who={None: "default", True: "carrier", False: "textback"}[who],
                     fields=_text_fields(account, CONSENT_TEXTS))

    return _form_view(account_id, "consent", "Consent", edit, show)


# -- questions 4 and 5: routing and escalation ----------------------------------------------------

@bp.route("/routing", methods=["GET", "POST"])
@login_required
def routing(account_id: str) -> Any:
    """Owners picked from the CRM's users, who sees replies first, after hours, the rotation,
    alert channels, and who is alerted when nobody replies."""
    def people_of(account: Account) -> tuple[dict[str, str], str | None]:
        if "setup_people" not in g:  # the CRM is asked once per request
            choices, problem = crm_choices(runtime(), account)
            people = {c.id: c.label for c in (choices.owners or ())} if choices else {}
            for owner in account.settings["routing"].get("owners") or []:
                people.setdefault(owner["id"], owner["name"])
            g.setup_people = (people, problem)
        return g.setup_people  # type: ignore[no-any-return]

    def show(_s: Session, account: Account, errors: FieldErrors) -> Any:
        people, problem = people_of(account)
        doc = current_document(account, runtime().box)
        order = [o["id"] for o in doc["routing"]["owners"]]
        if errors:
            order = [p for p in request.form.getlist("owner") if p in people]
        return _page("setup/routing.html", account, errors, doc=doc, people=people,
                     stored={o["id"]: o for o in doc["routing"]["owners"]}, problem=problem,
                     owner_errors={pid: field_errors(errors, f"routing.owners[{i}]")
                                   for i, pid in enumerate(order)},
                     numbers=account.settings["carrier"]["numbers"],
                     crm_name=CRMS[account.crm_kind].display_name)

    return _form_view(account_id, "routing", "Routing",
                      lambda doc, account: _edit_routing(doc, request.form,
                                                         people_of(account)[0]), show)


def _edit_routing(doc: dict[str, Any], form: MultiDict[str, str], people: dict[str, str]
                  ) -> FieldErrors:
    errors: FieldErrors = {}
    owners = []
    for pid in form.getlist("owner"):
        if pid not in people:
            add_error(errors, "routing.owners", f"{pid!r} is not one of the CRM's users")
            continue
        owners.append({
            "id": pid, "name": people[pid],
            "mobile": form.get(f"mobile_{pid}", "").strip() or None,
            "email": form.get(f"email_{pid}", "").strip() or None,
            "alerts": form.getlist(f"alerts_{pid}") or None,
            "away": bool(form.get(f"away_{pid}")),
        })
    routing = doc["routing"]
    routing["owners"] = owners
    for key in ("default_owner", "after_hours_owner", "backup_owner", "manager"):
        routing[key] = form.get(key) or None
    routing["round_robin"] = form.getlist("round_robin")
    routing["by_number"] = {n: form[f"by_number_{n}"] for n in doc["carrier"]["numbers"]
                            if form.get(f"by_number_{n}")}
    escalation = routing["escalation"]
    escalation["minutes"] = _number_or_text(form.get("escalation_minutes", ""))
    second = form.get("second_level_minutes", "").strip()
    escalation["second_level_minutes"] = _number_or_text(second) if second else None
    escalation["business_hours_only"] = bool(form.get("business_hours_only"))
    return errors


@bp.app_context_processor
def _setup_link() -> dict[str, Any]:
    """A "Setup" header link for an admin, to the setup of the account they are working on."""
    if "user_id" not in session:
        return {}
    with runtime().db.session() as s:
        user = s.get(User, session["user_id"])
        if user is None or user.role != "admin":
            return {}
        ids = user_accounts(s, user)
    if not ids:
        return {}
    account_id = request.view_args.get("account_id") if request.view_args else None
    if account_id not in ids:
        remembered = session.get("account")
        account_id = remembered if remembered in ids else ids[0]
    return {"nav_links": [*NAV_LINKS, (url_for("setup.overview", account_id=account_id),
                                       "Setup")]}
