"""docs/ACCOUNT_FILE.md describes every setting of the account file, and only those."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from marshmallow import Schema, fields

from connector.settings.account_schema import AccountSchema

DOC = Path(__file__).parents[2] / "docs" / "ACCOUNT_FILE.md"


def setting_paths(schema: Schema, prefix: str = "") -> Iterator[str]:
    """Every setting's path as the doc writes it: ``routing.owners[].id``. The schedules under
    ``hours.per_number`` are the account's own, so the doc describes them once."""
    for name, field in schema.fields.items():
        path = f"{prefix}{name}"
        yield path
        if isinstance(field, fields.Nested):
            yield from setting_paths(field.schema, f"{path}.")
        elif isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
            yield from setting_paths(field.inner.schema, f"{path}[].")


def documented_paths() -> list[str]:
    """The first column of every table row in the doc."""
    return re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), flags=re.MULTILINE)


def test_every_setting_is_documented():
    missing = [p for p in setting_paths(AccountSchema()) if p not in documented_paths()]
    assert missing == [], f"describe these in {DOC.name}: {missing}"


def test_the_doc_describes_no_setting_that_does_not_exist():
    known = set(setting_paths(AccountSchema()))
    stale = [p for p in documented_paths() if p not in known]
    assert stale == [], f"{DOC.name} describes settings the schema does not have: {stale}"
