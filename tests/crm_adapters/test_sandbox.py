"""The built-in sandbox CRM passes the CRM contract suite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from connector.kernel.http import WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.signing import hmac_hex
from crm_adapters.catalog import CrmChoices
from crm_adapters.sandbox import OWNERS, PIPELINES, SIGNATURE_HEADER, MemoryCrmStore, SandboxCrm
from tests.contracts.crm_contract import CrmContract
from tests.contracts.crm_setup_contract import CrmSetupContract

SECRET = "sandbox-crm-secret"


class TestSandboxCrmContract(CrmContract, CrmSetupContract):
    adapter_class = SandboxCrm
    expected_account = "Sandbox"
    secret_credentials = frozenset({"webhook_secret"})

    @pytest.fixture
    def backend(self) -> MemoryCrmStore:
        return MemoryCrmStore()

    def credentials(self) -> Mapping[str, Any]:
        return {"webhook_secret": SECRET}

    def make_adapter(self, backend: MemoryCrmStore) -> SandboxCrm:
        return SandboxCrm(self.credentials(), store=backend)

    backend_speaks = False  # the sandbox store fails with a status only

    def seed_choices(self, backend: MemoryCrmStore) -> CrmChoices:
        return CrmChoices(pipelines=PIPELINES, owners=OWNERS)  # fixed: nothing to seed

    def fail_next(self, backend: MemoryCrmStore, status: int, *, message: str | None = None,
                  retry_after: str | None = None) -> None:
        backend.fail_next(status)

    def contacts_with_phone(self, backend: MemoryCrmStore, e164: str) -> Sequence[str]:
        return [c["id"] for c in backend.all("contact") if to_e164(c["phone"]) == e164]

    def add_contact(self, backend: MemoryCrmStore, phone: str, first_name: str | None = None,
                    last_name: str | None = None) -> str:
        return backend.add("contact", {"phone": phone, "first_name": first_name,
                                       "last_name": last_name})

    def task_text(self, backend: MemoryCrmStore, task_id: str) -> str:
        task = backend.get("task", task_id)
        assert task is not None
        return f"{task['subject']}\n{task['body']}"

    def close_lead(self, backend: MemoryCrmStore, lead_id: str) -> None:
        backend.update("lead", lead_id, {"closed": True})

    def signed_webhook(self, body: bytes, *, url: str, age_seconds: float = 0.0,
                       wrong_secret: bool = False) -> WebhookRequest | None:
        if age_seconds > 0:
            return None  # the sandbox signature carries no timestamp
        key = "not-the-secret" if wrong_secret else SECRET
        return WebhookRequest.build(
            url=url, body=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: hmac_hex(key, body)},
        )

    def signature_headers(self) -> tuple[str, ...]:
        return (SIGNATURE_HEADER,)
