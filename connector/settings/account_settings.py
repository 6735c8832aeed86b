"""An account's settings as frozen, typed objects.

An account's settings are stored as the account file's JSON (secrets apart). The jobs read them
through these objects, built by loading each stored section through its schema, so a default
lives in one place (the schema, ``account_schema.py``) and a setting added after an account was
imported takes its default without anyone restating it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol

from connector.settings.account_schema import (
    BusinessSchema,
    CarrierSchema,
    CrmMappingSchema,
    PolicySchema,
    RoutingSchema,
    TemplatesSchema,
)


class HasSettings(Protocol):
    """Anything with stored account settings (the ``Account`` row)."""

    @property
    def settings(self) -> Mapping[str, Any]:
        """The account file's sections, as stored."""


@dataclass(frozen=True)
class CrmMapping:
    """``crm.mapping``: where a missed call's records go in the CRM."""

    pipeline: str | None
    stage: str | None
    owner_id: str | None
    task_queue_id: str | None
    lead_source: str | None
    record_url: str | None
    task_priority: str
    task_due_minutes: int
    # What a missed call makes besides the contact and the call log: "task" adds the follow-up
    # task, "lead" also the deal / request / lead; "contact" nothing more.
    creates: str


@dataclass(frozen=True)
class Escalation:
    """``routing.escalation``: when nobody answers a customer's reply."""

    minutes: float
    business_hours_only: bool
    second_level_minutes: float | None


@dataclass(frozen=True)
class Routing:
    """``routing``: who owns a call and who is next (owners themselves: ``jobs.routing``)."""

    owners: tuple[Mapping[str, Any], ...]
    default_owner: str | None
    by_number: Mapping[str, str]
    after_hours_owner: str | None
    round_robin: tuple[str, ...]
    backup_owner: str | None
    manager: str | None
    escalation: Escalation


@dataclass(frozen=True)
class PolicyOptions:
    """The ``policy`` settings the jobs read beside the decision itself."""

    line_type_lookup: bool
    line_type_ttl_days: int
    human_conversation_hours: float
    carrier_confirms_opt_out: bool | None


@dataclass(frozen=True)
class Business:
    """``business``: what the templates may mention besides the business name."""

    booking_link: str | None
    emergency_number: str | None
    callback_number: str | None


@dataclass(frozen=True)
class CarrierNumbers:
    """``carrier``: the business numbers and where calls ring."""

    numbers: tuple[str, ...]
    forward_to: tuple[str, ...]
    ring_timeout_seconds: int


@dataclass(frozen=True)
class AccountSettings:
    """The typed settings of one account."""

    carrier: CarrierNumbers
    crm_mapping: CrmMapping
    routing: Routing
    policy: PolicyOptions
    business: Business
    #: The ``policy`` and ``templates`` sections with their defaults, for the policy's parser.
    policy_section: Mapping[str, Any]
    templates_section: Mapping[str, Any]


def _section(settings: Mapping[str, Any], *path: str) -> dict[str, Any]:
    value: Any = settings
    for key in path:
        value = (value or {}).get(key) if isinstance(value, Mapping) else None
    return dict(value or {})


def account_settings(account: HasSettings) -> AccountSettings:
    """The account's settings, typed, with the schema's defaults filled in.

    Built once per distinct settings document (a job reads them several times): the same stored
    dict is recognised by identity, an equal one by its JSON."""
    stored = account.settings
    known = _by_identity.get(id(stored))
    if known is not None and known[0] is stored:
        return known[1]
    typed = _typed(json.dumps(stored, sort_keys=True, default=str))
    if len(_by_identity) >= _IDENTITY_CACHE_SIZE:
        _by_identity.clear()
    _by_identity[id(stored)] = (stored, typed)
    return typed


#: Settings dicts seen lately, by ``id`` (the dict is kept, so its id cannot be reused meanwhile).
_by_identity: dict[int, tuple[Mapping[str, Any], AccountSettings]] = {}
_IDENTITY_CACHE_SIZE = 512


@lru_cache(maxsize=256)
def _typed(document: str) -> AccountSettings:
    stored = json.loads(document)
    mapping = CrmMappingSchema().load(_section(stored, "crm", "mapping"))
    routing = RoutingSchema().load(_section(stored, "routing"))
    policy = PolicySchema().load(_section(stored, "policy"))
    business = BusinessSchema().load(_section(stored, "business"))
    carrier = _section(stored, "carrier")
    escalation = routing["escalation"]
    return AccountSettings(
        carrier=CarrierNumbers(
            numbers=tuple(carrier.get("numbers") or ()),
            forward_to=tuple(carrier.get("forward_to") or ()),
            ring_timeout_seconds=int(carrier.get("ring_timeout_seconds") or
                                     _carrier_default("ring_timeout_seconds")),
        ),
        crm_mapping=CrmMapping(**{name: mapping[name] for name in CrmMapping.__dataclass_fields__}),
        routing=Routing(
            owners=tuple(routing["owners"]), default_owner=routing["default_owner"],
            by_number=dict(routing["by_number"]), after_hours_owner=routing["after_hours_owner"],
            round_robin=tuple(routing["round_robin"]), backup_owner=routing["backup_owner"],
            manager=routing["manager"],
            escalation=Escalation(minutes=escalation["minutes"],
                                  business_hours_only=escalation["business_hours_only"],
                                  second_level_minutes=escalation["second_level_minutes"]),
        ),
        policy=PolicyOptions(**{name: policy[name]
                                for name in PolicyOptions.__dataclass_fields__}),
        business=Business(**{name: business[name] for name in Business.__dataclass_fields__}),
        policy_section=MappingProxyType(policy),
        templates_section=MappingProxyType(TemplatesSchema().load(_section(stored, "templates"))),
    )


def _carrier_default(name: str) -> Any:
    """A ``carrier`` field's default from its schema (the carrier section needs credentials to
    load, which the stored settings do not keep)."""
    return CarrierSchema().fields[name].load_default
