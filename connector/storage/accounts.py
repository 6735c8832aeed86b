"""The account file: its schema, and ``textback accounts import/export/list``.

An account file is JSON. It is validated in full before anything is
written; a bad one is refused with every problem named by its readable path
(:class:`~connector.settings.account_schema.AccountFileError`). Credentials are
sealed with :class:`~connector.storage.crypto.CredentialBox` before they reach the database.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from carrier_adapters import CARRIERS
from carrier_adapters.base import secret_fields
from connector.kernel.errors import ConfigurationError
from connector.settings.account_schema import REDACTED, AccountFileError, load_account
from connector.storage.crypto import CredentialBox
from connector.storage.installations import credentials_auth
from connector.storage.models import Account, AccountMember, Call, Message, SandboxRecord
from crm_adapters import CRMS


def validate_account(document: Mapping[str, Any], *, partial: tuple[str, ...] = ()
                     ) -> dict[str, Any]:
    """Validate an account document; raise AccountFileError (a ConfigurationError) naming every
    problem at once, by readable path.

    ``partial`` names fields (dotted) that may be missing yet, as in an account a marketplace
    install just created, whose carrier is set up afterwards.
    """
    return load_account(dict(document), partial=partial)


def parse_account_file(text: str) -> dict[str, Any]:
    """Parse and validate the JSON text of an account file."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"account file is not JSON: {exc}", field="(file)") from None
    return load_account(document)


def _merge_redacted(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``new`` with each ``********`` replaced by the stored value (checked to exist first)."""
    return {k: stored[k] if v == REDACTED else v for k, v in new.items()}


def _redaction_errors(document: Mapping[str, Any], stored: Mapping[str, dict[str, Any]]
                      ) -> dict[str, list[str]]:
    """Credentials given as ``********`` with no stored value to keep, by readable path."""
    carrier = document.get("carrier")
    sections = {"carrier": carrier, "crm": document.get("crm"),
                "carrier.sms": carrier.get("sms") if isinstance(carrier, dict) else None}
    errors: dict[str, list[str]] = {}
    for section, part in sections.items():
        given = part.get("credentials") if isinstance(part, dict) else None
        if not isinstance(given, dict):
            continue
        for key, value in given.items():
            if value == REDACTED and key not in stored.get(section, {}):
                errors[f"{section}.credentials.{key}"] = [
                    f"is {REDACTED} (hidden by export) but no value is stored for this account: "
                    "give the real value"]
    return errors


def import_account(session: Session, box: CredentialBox, document: Mapping[str, Any],
                   *, partial: tuple[str, ...] = ()) -> Account:
    """Validate and store an account (insert or replace); secrets are sealed before storage.

    Every problem is reported at once (AccountFileError), a ``********`` credential with nothing
    stored to keep among them; then nothing is written. ``partial``: fields that may be missing
    yet (see :func:`validate_account`).
    """
    account_id = document.get("id")
    existing = session.get(Account, account_id) if isinstance(account_id, str) else None
    stored = {
        "carrier": box.open(existing.carrier_credentials) if existing else {},
        "crm": box.open(existing.crm_credentials) if existing else {},
        "carrier.sms": box.open(existing.sms_credentials)
        if existing and existing.sms_credentials else {},
    }
    try:
        data = validate_account(document, partial=partial)
        errors: dict[str, list[str]] = {}
    except AccountFileError as exc:
        errors = dict(exc.errors)
    errors.update(_redaction_errors(document, stored))
    if errors:
        raise AccountFileError(errors)
    carrier_creds = _merge_redacted(dict(data["carrier"].pop("credentials")), stored["carrier"])
    crm_creds = _merge_redacted(dict(data["crm"].pop("credentials")), stored["crm"])
    sms = data["carrier"].get("sms")
    sms_creds = _merge_redacted(dict(sms.pop("credentials")), stored["carrier.sms"]) \
        if sms else None
    settings = {k: v for k, v in data.items() if k not in ("id", "name", "timezone")}
    account = existing or Account(id=data["id"])
    account.name = data["name"]
    account.timezone = data["timezone"]
    account.carrier_kind = data["carrier"]["kind"]
    account.crm_kind = data["crm"]["kind"]
    account.settings = json.loads(json.dumps(settings))
    account.carrier_credentials = box.seal(carrier_creds)
    account.crm_credentials = box.seal(crm_creds)
    account.sms_credentials = box.seal(sms_creds) if sms_creds is not None else None
    account.crm_auth = credentials_auth(account.crm_kind, crm_creds)
    account.crm_needs_reauth = False
    if existing is None:
        session.add(account)
    session.flush()
    return account


def export_account(account: Account, box: CredentialBox, *, include_secrets: bool = False
                   ) -> dict[str, Any]:
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
    sms = settings["carrier"].get("sms")
    if sms and account.sms_credentials:
        creds = box.open(account.sms_credentials)
        if not include_secrets:
            secret = secret_fields(CARRIERS[sms["kind"]].config_schema)
            creds = {k: (REDACTED if k in secret else v) for k, v in creds.items()}
        sms["credentials"] = creds
    return {"id": account.id, "name": account.name, "timezone": account.timezone, **settings}


def list_accounts(session: Session) -> list[Account]:
    """Every account, by id."""
    return list(session.scalars(select(Account).order_by(Account.id)))


def delete_account(session: Session, account_id: str) -> dict[str, int]:
    """Delete an account and everything kept for it; how many calls, texts and users' accesses
    went with it.

    The database's foreign keys cascade to every table keyed by account; the sandbox's records,
    which carry no foreign key, are deleted here.
    """
    account = session.get(Account, account_id)
    if account is None:
        raise ConfigurationError(f"no account {account_id!r}", field="ID")
    counts = {
        "calls": session.scalar(select(func.count()).select_from(Call)
                                .where(Call.account_id == account_id)) or 0,
        "texts": session.scalar(select(func.count()).select_from(Message)
                                .where(Message.account_id == account_id)) or 0,
        "user accesses": session.scalar(select(func.count()).select_from(AccountMember)
                                        .where(AccountMember.account_id == account_id)) or 0,
    }
    session.execute(delete(SandboxRecord).where(SandboxRecord.account_id == account_id))
    session.delete(account)
    session.flush()
    return counts


def new_install_account(
    session: Session, box: CredentialBox, *, crm: str, external_id: str, name: str,
    timezone: str, credentials: Mapping[str, Any], api_base_url: str | None,
    mapping: Mapping[str, Any] | None = None,
) -> Account:
    """The account a marketplace install of ``crm`` creates for a CRM account we have not seen.

    Its id is ``<crm>-<external id>`` (a number appended if that is taken). It starts on the
    built-in sandbox carrier with no business number, so nothing is texted until an admin
    connects the real carrier on the setup pages; a time zone the CRM named that is not an
    IANA name falls back to UTC.
    """
    base = re.sub(r"[^a-z0-9-]+", "-", f"{crm}-{external_id}".lower()).strip("-")[:56]
    account_id, n = base, 1
    while session.get(Account, account_id) is not None:
        n += 1
        account_id = f"{base}-{n}"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        timezone = "UTC"
    document = {
        "id": account_id,
        "name": name[:200] or account_id,
        "timezone": timezone,
        "carrier": {"kind": "sandbox",
                    "credentials": {"webhook_secret": secrets.token_urlsafe(24)}},
        "crm": {"kind": crm, "credentials": dict(credentials), "api_base_url": api_base_url,
                "mapping": dict(mapping or {})},
    }
    account = import_account(session, box, document, partial=("carrier.numbers",))
    account.settings = {**account.settings,
                        "carrier": {**account.settings["carrier"], "numbers": []}}
    session.flush()
    return account
