"""Saving a setup page: the account document edited and stored through the same schema and
import as ``textback accounts import``, with every refused field's messages kept by path for the
form, and an audit entry of who changed what.

Nothing is written when the schema refuses anything: the page shows each message next to its
field. Secrets never reach the audit entry; a changed credential is recorded as "changed".
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from connector.kernel.errors import ConfigurationError
from connector.settings.account_schema import account_errors
from connector.storage.accounts import export_account, import_account
from connector.storage.crypto import CredentialBox
from connector.storage.models import Account, AuditEntry

#: A refused form: readable field path (``hours.weekly.mon[0] end``) -> its messages.
FieldErrors = dict[str, list[str]]
#: The longest value an audit entry keeps of one setting.
_AUDIT_VALUE_CHARS = 300


def schema_errors(document: Mapping[str, Any]) -> FieldErrors:
    """What ``accounts import`` refuses in ``document``, by readable path (empty: nothing)."""
    return account_errors(dict(document))


def current_document(account: Account, box: CredentialBox) -> dict[str, Any]:
    """The account as its file, secrets redacted: what a page edits."""
    return export_account(account, box, include_secrets=False)


def _short(value: Any) -> Any:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) <= _AUDIT_VALUE_CHARS:
        return value
    return text[: _AUDIT_VALUE_CHARS - 1] + "…"


def changes_between(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Every setting that differs, by dotted path; credentials only as "changed"."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            name = f"{path}.{key}" if path else str(key)
            out += changes_between(before.get(key), after.get(key), name)
        return out
    if before == after:
        return []
    if "credentials" in path.split("."):
        return [{"field": path, "before": None, "after": "changed"}]
    return [{"field": path, "before": _short(before), "after": _short(after)}]


def record(s: Session, account_id: str, user_email: str, action: str,
           changes: list[dict[str, Any]] | None = None) -> None:
    """Add an audit entry (the caller's transaction commits it)."""
    s.add(AuditEntry(account_id=account_id, user_email=user_email, action=action,
                     changes=changes or []))


def save_document(s: Session, box: CredentialBox, account: Account, user_email: str,
                  action: str, edit: Callable[[dict[str, Any]], FieldErrors | None],
                  check: Callable[[dict[str, Any]], FieldErrors] | None = None,
                  ) -> FieldErrors:
    """Apply ``edit`` to the account's document and store it, or store nothing.

    ``edit`` changes the document in place and may return errors of its own (a form value it
    could not read); those and the schema's are returned together, and then nothing is
    written. ``check`` then runs on a document the schema accepts (a provider refusing the
    credentials, say) and may refuse it too. On success the change is stored by
    ``import_account`` and audited.
    """
    before = current_document(account, box)
    secrets_before = export_account(account, box, include_secrets=True)
    document = copy.deepcopy(before)
    errors = dict(edit(document) or {})
    for path, messages in schema_errors(document).items():
        errors.setdefault(path, []).extend(messages)
    if not errors and check is not None:
        errors = check(document)
    if errors:
        return errors
    try:
        import_account(s, box, document)
    except ConfigurationError as exc:  # what the schema cannot see (a redacted secret unset)
        return {exc.field or "account": [str(exc)]}
    changes = changes_between(secrets_before, export_account(account, box, include_secrets=True))
    record(s, account.id, user_email, action, changes)  # a save without changes is a review
    return {}
