"""What a job needs from the process it runs in, as a typed protocol.

The jobs (text-back, CRM sync, conversation, replies, the sweeper) are handed the process's
runtime, but they depend only on this: storage, the queue's job handles, the settings and the
adapters of an account. The runtime satisfies it; a test may pass anything else that does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from huey.api import Huey

from carrier_adapters.base import CarrierAdapter
from connector.settings.config import Settings
from connector.storage.db import Database
from connector.storage.models import Account
from crm_adapters.base import CrmAdapter


class JobHandles(Protocol):
    """Put work on the queue; the database already holds it."""

    def enqueue_text_back(self, call_id: str, *, delay: float | None = None,
                          eta: datetime | None = None) -> None: ...

    def enqueue_crm_sync(self, call_id: str) -> None: ...

    def enqueue_message_sync(self, message_id: str) -> None: ...

    def enqueue_escalation(self, timer_id: int, *, eta: datetime) -> None: ...

    def enqueue_reply(self, message_id: str) -> None: ...

    def enqueue_reply_received(self, message_id: str) -> None: ...

    def enqueue_email(self, to: str, subject: str, body: str) -> None: ...

    def enqueue_workflow_text(self, message_id: str) -> None: ...


class JobContext(Protocol):
    """The process's services a job may use."""

    settings: Settings
    db: Database
    huey: Huey  # the texts lane
    crm_huey: Huey  # the CRM lane

    @property
    def jobs(self) -> JobHandles: ...

    def crm_for(self, account: Account) -> CrmAdapter: ...

    def sms_carrier_for(self, account: Account) -> CarrierAdapter: ...

    def webhook_url(self, carrier: str, account_id: str, kind: str) -> str: ...
