"""Who owns a missed call: an owner per business number, one for after hours, a fair
round-robin across a team (skipping people marked away, persistent across restarts), or the
account's default. Owners are CRM users; the CRM task and lead are assigned to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from connector.settings.account_settings import account_settings
from connector.storage.models import Account, RoutingState


@dataclass(frozen=True)
class Owner:
    """A person who owns follow-ups (``id`` is their CRM user id)."""

    id: str
    name: str
    mobile: str | None = None
    email: str | None = None
    alerts: tuple[str, ...] = ()
    away: bool = False

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> Owner:
        """From a validated ``routing.owners`` entry; alerts default to the channels they have."""
        alerts = raw.get("alerts")
        if alerts is None:
            alerts = [c for c, f in (("sms", "mobile"), ("email", "email")) if raw.get(f)]
        return cls(str(raw["id"]), str(raw["name"]), raw.get("mobile"), raw.get("email"),
                   tuple(alerts), bool(raw.get("away")))


def owners(account: Account) -> dict[str, Owner]:
    """The account's owners by id."""
    return {o["id"]: Owner.from_settings(o) for o in account_settings(account).routing.owners}


def owner_by_mobile(account: Account, number: str | None) -> Owner | None:
    """The owner whose mobile is ``number`` (an owner replying to an alert), if any."""
    return next((o for o in owners(account).values() if number and o.mobile == number), None)


def _next_turn(session: Session, account_id: str, team: str) -> int:
    """Atomically take the team's next turn number (0, 1, 2 ...)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(RoutingState).values(account_id=account_id, team=team, turns=0)
                    .on_conflict_do_nothing())
    turns = session.execute(
        update(RoutingState)
        .where(RoutingState.account_id == account_id, RoutingState.team == team)
        .values(turns=RoutingState.turns + 1)
        .returning(RoutingState.turns)
    ).scalar_one()
    return int(turns) - 1


def round_robin(session: Session, account: Account, team: Sequence[str]) -> Owner | None:
    """The next available team member in turn; everyone away means nobody."""
    people = owners(account)
    available = [people[i] for i in team if i in people and not people[i].away]
    if not available:
        return None
    return available[_next_turn(session, account.id, "default") % len(available)]


def choose_owner(session: Session, account: Account, business_number: str | None,
                 business_open: bool) -> Owner | None:
    """The owner of a new missed call, or None to fall back to ``crm.mapping.owner_id``."""
    routing = account_settings(account).routing
    people = owners(account)

    def present(owner_id: str | None) -> Owner | None:
        owner = people.get(owner_id or "")
        return owner if owner is not None and not owner.away else None

    if not business_open and present(routing.after_hours_owner):
        return present(routing.after_hours_owner)
    numbered = routing.by_number.get(business_number or "")
    if numbered and present(numbered):
        return present(numbered)
    if routing.round_robin:
        chosen = round_robin(session, account, routing.round_robin)
        if chosen is not None:
            return chosen
    return present(routing.default_owner)
