"""The setup checklist: the eight questions to answer before texting back missed calls, each
with its state and the page that answers it.

A state is read from the account's settings and from what its admins did on the setup pages
(the audit entries): *done*, *needs attention* (started, but something is missing or broken,
said in ``detail``) or *not started*.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carrier_adapters import CARRIERS
from connector.jobs.compose import account_texts
from connector.storage.installations import ConnectionState, connection_state
from connector.storage.models import Account, AuditEntry, Call
from crm_adapters import CRMS

DONE, ATTENTION, NOT_STARTED = "done", "needs attention", "not started"


@dataclass(frozen=True)
class Item:
    """One question of the checklist."""

    number: int
    question: str
    state: str
    detail: str
    page: str  # the setup page's endpoint name (``setup.carrier``)
    link_text: str


def _carrier(account: Account) -> str:
    return str(CARRIERS[account.carrier_kind].display_name)


def _crm_name(account: Account) -> str:
    return str(CRMS[account.crm_kind].display_name)


def _last(s: Session, account_id: str, *actions: str) -> AuditEntry | None:
    return s.scalar(select(AuditEntry).where(AuditEntry.account_id == account_id,
                                             AuditEntry.action.in_(actions))
                    .order_by(AuditEntry.id.desc()).limit(1))


def _after(entry: AuditEntry | None, other: AuditEntry | None) -> bool:
    return entry is not None and (other is None or entry.id > other.id)


def _number(s: Session, account: Account) -> tuple[str, str]:
    # Pointed after the carrier and the numbers last changed: a new number needs pointing too.
    carrier = _last(s, account.id, "carrier", "carrier numbers")
    pointed = _last(s, account.id, "carrier webhooks")
    numbers = ", ".join(account.settings["carrier"]["numbers"])
    if _after(pointed, carrier):
        return DONE, f"{numbers} on {_carrier(account)}: its webhooks reach textback."
    if carrier is not None or pointed is not None:
        return ATTENTION, (f"{numbers}: point the number's webhooks at textback (or paste the "
                           "URLs) so its calls reach us.")
    return NOT_STARTED, "Connect the carrier and pick the number customers call."


def _missed(s: Session, account: Account) -> tuple[str, str]:
    policy = account.settings["policy"]
    outcomes = policy.get("texted_outcomes") or []
    if not outcomes:
        return ATTENTION, "No call outcome gets a text: choose at least one."
    words = ", ".join(outcomes)
    if _last(s, account.id, "missed calls") is None:
        return NOT_STARTED, f"Review the defaults: {words}."
    return DONE, f"{words}; rang at least {policy.get('min_ring_seconds', 3):g} s."


def _after_hours(s: Session, account: Account) -> tuple[str, str]:
    hours = account.settings.get("hours") or {}
    weekly = hours.get("weekly") or {}
    if _last(s, account.id, "hours") is None and not weekly:
        return NOT_STARTED, "Set the opening hours; outside them callers get the after-hours text."
    if not weekly:
        return ATTENTION, "Open around the clock: the after-hours text is never sent."
    return DONE, (f"Weekly hours set ({len(weekly)} days open); after hours the "
                  f"'{account.settings['templates'].get('after_hours')}' text goes out.")


def _owners(routing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in routing.get("owners") or []}


def _replies(s: Session, account: Account) -> tuple[str, str]:
    routing = account.settings["routing"]
    owners = _owners(routing)
    if not owners:
        return NOT_STARTED, "Choose who owns follow-ups from the CRM's users."
    first = routing.get("default_owner") or (routing.get("round_robin") or [None])[0]
    if first is None:
        return ATTENTION, "Owners are listed but nobody is the default owner or in a rotation."
    unreachable = [o["name"] for o in owners.values() if not (o.get("mobile") or o.get("email"))]
    if unreachable:
        return ATTENTION, f"No phone or email to alert: {', '.join(unreachable)}."
    return DONE, f"{owners[first]['name']} sees replies first."


def _escalation(s: Session, account: Account) -> tuple[str, str]:
    routing = account.settings["routing"]
    owners = _owners(routing)
    minutes = (routing.get("escalation") or {}).get("minutes", 15)
    nxt = routing.get("backup_owner") or routing.get("manager")
    if nxt and nxt in owners:
        return DONE, f"After {minutes:g} minutes without a reply, {owners[nxt]['name']} is alerted."
    if owners:
        return ATTENTION, "Name a backup owner or a manager to alert when nobody replies."
    return NOT_STARTED, "Choose who is alerted when nobody replies."


def _crm(s: Session, account: Account, state: ConnectionState) -> tuple[str, str]:
    creates = {"contact": "a contact", "task": "a contact and a task",
               "lead": "a contact, a task and a deal / request / lead"}[
        account.settings["crm"].get("mapping", {}).get("creates", "lead")]
    if account.crm_needs_reauth or state.status in ("disconnected", "not connected"):
        return ATTENTION, f"{_crm_name(account)}: {state.describe(account.timezone)}. Connect it again."
    test, saved = _last(s, account.id, "crm test"), _last(s, account.id, "crm")
    if test is None and saved is None:
        return NOT_STARTED, f"Connect {_crm_name(account)} and choose what a missed call creates."
    result = test.changes[0]["after"] if test is not None and test.changes else None
    if result != "ok":
        return ATTENTION, f"Each missed call makes {creates}; run “Test connection” until it " \
                          "passes."
    return DONE, (f"Each missed call makes {creates} in {_crm_name(account)} "
                  f"({state.describe(account.timezone)}).")


def _consent(s: Session, account: Account) -> tuple[str, str]:
    texts = account_texts(account)
    scenarios = {account.settings["templates"].get(k) for k in
                 ("missed_call", "voicemail", "after_hours")} - {None}
    missing = sorted({name for name in scenarios for text in texts.get(name, {}).values()
                      if "STOP" not in text.upper()})
    if missing:
        return ATTENTION, f"Say how to opt out (Reply STOP) in: {', '.join(missing)}."
    if _last(s, account.id, "consent") is None:
        return NOT_STARTED, "Choose who answers STOP and HELP, and check the confirmation texts."
    who = account.settings["policy"].get("carrier_confirms_opt_out")
    said = {None: "the carrier's default", True: "the carrier", False: "textback"}[who]
    return DONE, f"STOP and HELP are answered by {said}; every text says how to opt out."


def _measured(s: Session, account: Account) -> tuple[str, str]:
    calls = s.scalar(select(func.count()).select_from(Call)
                     .where(Call.account_id == account.id)) or 0
    if calls:
        return DONE, (f"{calls} missed call(s) measured: texted, replied, saved conversations "
                      "and time to first response on the dashboard.")
    return NOT_STARTED, "Run a simulated missed call; the dashboard then counts it."


def checklist(s: Session, account: Account) -> list[Item]:
    """The eight questions for ``account``, in their usual order and words."""
    state = connection_state(s, account.id)
    answers = [
        ("Which number should trigger the text-back?", _number(s, account), "setup.carrier",
         "Connect the carrier"),
        ("What counts as a missed call?", _missed(s, account), "setup.missed_calls",
         "Missed calls"),
        ("Should messages change after hours or on weekends?", _after_hours(s, account),
         "setup.hours", "Hours"),
        ("Who sees replies first?", _replies(s, account), "setup.routing", "Routing"),
        ("What happens if nobody replies within 15 minutes?", _escalation(s, account),
         "setup.routing", "Escalation"),
        ("Should the lead become a CRM contact, task, or appointment request?",
         _crm(s, account, state), "setup.crm", "Connect the CRM"),
        ("What opt-out and consent language does the vendor recommend?", _consent(s, account),
         "setup.consent", "Consent"),
        ("How will the business measure saved conversations?", _measured(s, account),
         "setup.test", "Test it"),
    ]
    return [Item(i, question, st, detail, page, link)
            for i, (question, (st, detail), page, link) in enumerate(answers, start=1)]


def last_change(s: Session, account_id: str) -> tuple[str, datetime] | None:
    """Who changed the setup last, and when."""
    entry = s.scalar(select(AuditEntry).where(AuditEntry.account_id == account_id)
                     .order_by(AuditEntry.id.desc()).limit(1))
    return None if entry is None else (entry.user_email, entry.at)
