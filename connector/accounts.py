"""The account file: its schema, and ``textback accounts import/export/list``.

An account file is JSON (DESIGN.md section 2). It is validated in full before anything is
written; a bad one is refused with every bad field named by its dotted path. Credentials are
sealed with :class:`~connector.crypto.CredentialBox` before they reach the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from carrier_adapters import CARRIERS
from carrier_adapters.base import secret_fields
from connector.crypto import CredentialBox
from connector.errors import ConfigurationError
from connector.phone import to_e164
from connector.storage.models import Account
from crm_adapters import CRMS

#: What ``export`` writes in place of a secret; ``import`` keeps the stored value when it sees it.
REDACTED = "********"

DEFAULT_TEMPLATE = (
    "Sorry we missed your call, this is {business_name}. What can we help with today? "
    "Reply here and our team will follow up. Reply STOP to opt out."
)


class E164(fields.String):
    """A phone number, normalised to E.164 on load; anything unparseable is refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        number = to_e164(text)
        if number is None:
            raise ValidationError("not a valid phone number (use E.164, e.g. +14155550100)")
        return number


class CarrierSchema(Schema):
    """``carrier``: which carrier, its credentials, the business numbers and call forwarding."""

    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, validate=validate.OneOf(sorted(CARRIERS)))
    credentials = fields.Dict(keys=fields.String(), required=True)
    numbers = fields.List(E164(), required=True, validate=validate.Length(min=1))
    forward_to = fields.List(E164(), load_default=list)
    ring_timeout_seconds = fields.Integer(load_default=20, validate=validate.Range(min=5, max=60))
    api_base_url = fields.Url(load_default=None, allow_none=True, require_tld=False)


class CrmMappingSchema(Schema):
    """``crm.mapping``: where records go in the CRM."""

    class Meta:
        unknown = RAISE

    pipeline = fields.String(load_default=None, allow_none=True)
    stage = fields.String(load_default=None, allow_none=True)
    owner_id = fields.String(load_default=None, allow_none=True)
    task_queue_id = fields.String(load_default=None, allow_none=True)
    lead_source = fields.String(load_default=None, allow_none=True)
    task_priority = fields.String(
        load_default="HIGH", validate=validate.OneOf(["LOW", "MEDIUM", "HIGH"])
    )
    task_due_minutes = fields.Integer(load_default=15, validate=validate.Range(min=0, max=10080))


class CrmSchema(Schema):
    """``crm``: which CRM, its credentials and the field mapping."""

    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, validate=validate.OneOf(sorted(CRMS)))
    credentials = fields.Dict(keys=fields.String(), required=True)
    api_base_url = fields.Url(load_default=None, allow_none=True, require_tld=False)
    mapping = fields.Nested(CrmMappingSchema, load_default=lambda: CrmMappingSchema().load({}))


class TemplatesSchema(Schema):
    """``templates``: the texts we send. Placeholders: ``{business_name}``."""

    class Meta:
        unknown = RAISE

    missed_call = fields.String(load_default=DEFAULT_TEMPLATE, validate=validate.Length(1, 1600))

    @validates("missed_call")
    def _check_placeholders(self, value: str, **_: Any) -> None:
        unknown = set(re.findall(r"{(\w*)}", value)) - {"business_name"}
        if unknown:
            raise ValidationError(f"unknown placeholder(s): {', '.join(sorted(unknown))}")


class PolicySchema(Schema):
    """``policy``: who gets a text."""

    class Meta:
        unknown = RAISE

    cooldown_hours = fields.Float(load_default=24.0, validate=validate.Range(min=0, max=24 * 30))


class AccountSchema(Schema):
    """The whole account file."""

    class Meta:
        unknown = RAISE

    id = fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,63}$", error="lowercase letters, digits, -"),
    )
    name = fields.String(required=True, validate=validate.Length(1, 200))
    timezone = fields.String(load_default="UTC")
    carrier = fields.Nested(CarrierSchema, required=True)
    crm = fields.Nested(CrmSchema, required=True)
    hours = fields.Dict(load_default=dict)
    templates = fields.Nested(TemplatesSchema, load_default=lambda: TemplatesSchema().load({}))
    policy = fields.Nested(PolicySchema, load_default=lambda: PolicySchema().load({}))
    routing = fields.Dict(load_default=dict)

    @validates("timezone")
    def _check_tz(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("not an IANA time zone, e.g. America/Chicago") from None

    @validates_schema
    def _check_credentials(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, Any] = {}
        for section, registry in (("carrier", CARRIERS), ("crm", CRMS)):
            part = data.get(section) or {}
            adapter = registry.get(part.get("kind", ""))
            if adapter is None:
                continue
            creds = {k: v for k, v in part.get("credentials", {}).items() if v != REDACTED}
            schema = adapter.config_schema(partial=tuple(
                k for k, v in part.get("credentials", {}).items() if v == REDACTED
            ))
            try:
                schema.load(creds, unknown=RAISE)
            except ValidationError as exc:
                errors[section] = {"credentials": exc.normalized_messages()}
        if errors:
            raise ValidationError(errors)


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, Mapping):
        out: list[str] = []
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out += _flatten(value, name)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, prefix)]
    return [f"{prefix}: {messages}"]


def validate_account(document: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an account document; raise ConfigurationError naming every bad field."""
    try:
        return AccountSchema().load(dict(document))  # type: ignore[no-any-return]
    except ValidationError as exc:
        lines = _flatten(exc.normalized_messages())
        raise ConfigurationError(
            "account file refused, nothing written:\n  " + "\n  ".join(lines),
            field=", ".join(line.split(":")[0] for line in lines),
        ) from None


def parse_account_file(text: str) -> dict[str, Any]:
    """Parse and validate the JSON text of an account file."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"account file is not JSON: {exc}", field="(file)") from None
    if not isinstance(document, dict):
        raise ConfigurationError("account file must be a JSON object", field="(file)")
    return validate_account(document)


def _merge_redacted(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    merged = dict(new)
    for key, value in new.items():
        if value == REDACTED:
            if key not in stored:
                raise ConfigurationError(
                    f"credential {key} is redacted and no stored value exists", field=key
                )
            merged[key] = stored[key]
    return merged


def import_account(session: Session, box: CredentialBox, document: Mapping[str, Any]) -> Account:
    """Validate and store an account (insert or replace); secrets are sealed before storage."""
    data = validate_account(document)
    existing = session.get(Account, data["id"])
    carrier_creds = dict(data["carrier"].pop("credentials"))
    crm_creds = dict(data["crm"].pop("credentials"))
    if existing is not None:
        carrier_creds = _merge_redacted(carrier_creds, box.open(existing.carrier_credentials))
        crm_creds = _merge_redacted(crm_creds, box.open(existing.crm_credentials))
    else:
        carrier_creds = _merge_redacted(carrier_creds, {})
        crm_creds = _merge_redacted(crm_creds, {})
    settings = {k: v for k, v in data.items() if k not in ("id", "name", "timezone")}
    account = existing or Account(id=data["id"])
    account.name = data["name"]
    account.timezone = data["timezone"]
    account.carrier_kind = data["carrier"]["kind"]
    account.crm_kind = data["crm"]["kind"]
    account.settings = json.loads(json.dumps(settings))
    account.carrier_credentials = box.seal(carrier_creds)
    account.crm_credentials = box.seal(crm_creds)
    account.crm_needs_reauth = False
    if existing is None:
        session.add(account)
    session.flush()
    return account


def export_account(account: Account, box: CredentialBox, *, include_secrets: bool = False) -> dict:
    """The account as an account-file document; secret credentials redacted unless asked for."""
    settings = json.loads(json.dumps(account.settings))
    for section, registry, sealed in (
        ("carrier", CARRIERS, account.carrier_credentials),
        ("crm", CRMS, account.crm_credentials),
    ):
        creds = box.open(sealed)
        if not include_secrets:
            secret = secret_fields(registry[settings[section]["kind"]].config_schema)
            creds = {k: (REDACTED if k in secret else v) for k, v in creds.items()}
        settings[section]["credentials"] = creds
    return {"id": account.id, "name": account.name, "timezone": account.timezone, **settings}


def list_accounts(session: Session) -> list[Account]:
    """Every account, by id."""
    return list(session.scalars(select(Account).order_by(Account.id)))
