"""Database-backed stores for the built-in sandbox carrier and CRM (the ``sandbox_records`` table)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from connector.storage.db import Database
from connector.storage.models import SandboxRecord


class DbOutbox:
    """The sandbox carrier's sent texts for one account."""

    def __init__(self, db: Database, account_id: str) -> None:
        self.db = db
        self.account_id = account_id

    def record_sms(self, message: Mapping[str, Any]) -> None:
        """Keep one sent text."""
        with self.db.session() as s:
            s.add(SandboxRecord(account_id=self.account_id, kind="sms", data=dict(message)))

    def sent_messages(self) -> list[Mapping[str, Any]]:
        """Every text recorded for the account, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(SandboxRecord)
                .where(SandboxRecord.account_id == self.account_id, SandboxRecord.kind == "sms")
                .order_by(SandboxRecord.id)
            )
            return [dict(r.data) for r in rows]


    def number_webhooks(self) -> Mapping[str, Mapping[str, str]]:
        """Where each sandbox number's webhooks point, as ``point_webhooks`` recorded it."""
        with self.db.session() as s:
            rows = s.scalars(
                select(SandboxRecord)
                .where(
                    SandboxRecord.account_id == self.account_id,
                    SandboxRecord.kind == "number_webhooks",
                )
                .order_by(SandboxRecord.id)
            )
            return {str(r.key): dict(r.data) for r in rows}

    def set_number_webhooks(self, number: str, settings: Mapping[str, str]) -> None:
        """Replace where ``number``'s webhooks point."""
        with self.db.session() as s:
            row = s.scalar(
                select(SandboxRecord).where(
                    SandboxRecord.account_id == self.account_id,
                    SandboxRecord.kind == "number_webhooks",
                    SandboxRecord.key == number,
                )
            )
            if row is None:
                s.add(SandboxRecord(
                    account_id=self.account_id, kind="number_webhooks", key=number,
                    data=dict(settings),
                ))
            else:
                row.data = dict(settings)


class DbCrmStore:
    """The sandbox CRM's records for one account."""

    def __init__(self, db: Database, account_id: str) -> None:
        self.db = db
        self.account_id = account_id

    def add(self, kind: str, data: Mapping[str, Any], key: str | None = None) -> str:
        """Store a record; with ``key``, return the existing record of that key instead."""
        with self.db.session() as s:
            if key is not None:
                existing = s.scalar(
                    select(SandboxRecord).where(
                        SandboxRecord.account_id == self.account_id,
                        SandboxRecord.kind == kind,
                        SandboxRecord.key == key,
                    )
                )
                if existing is not None:
                    return str(existing.id)
            row = SandboxRecord(account_id=self.account_id, kind=kind, key=key, data=dict(data))
            s.add(row)
            s.flush()
            return str(row.id)

    def get(self, kind: str, record_id: str) -> Mapping[str, Any] | None:
        """One record by id, with its ``id``."""
        with self.db.session() as s:
            row = s.get(SandboxRecord, int(record_id))
            if row is None or row.account_id != self.account_id or row.kind != kind:
                return None
            return {**row.data, "id": str(row.id)}

    def update(self, kind: str, record_id: str, data: Mapping[str, Any]) -> None:
        """Merge ``data`` into a record."""
        with self.db.session() as s:
            row = s.get(SandboxRecord, int(record_id))
            if row is None or row.account_id != self.account_id or row.kind != kind:
                raise KeyError(record_id)
            row.data = {**row.data, **data}

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        """Every record of a kind for the account, oldest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(SandboxRecord)
                .where(SandboxRecord.account_id == self.account_id, SandboxRecord.kind == kind)
                .order_by(SandboxRecord.id)
            )
            return [{**r.data, "id": str(r.id)} for r in rows]
