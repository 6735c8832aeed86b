"""Typed account settings: every default comes from the account file's schema."""

from __future__ import annotations

from types import SimpleNamespace

from connector.settings.account_schema import CrmMappingSchema, EscalationSchema, PolicySchema
from connector.settings.account_settings import account_settings


def test_an_account_imported_before_a_setting_existed_gets_the_schemas_default() -> None:
    # Stored settings that predate task_due_minutes, escalation and line_type_ttl_days.
    account = SimpleNamespace(settings={
        "carrier": {"kind": "sandbox", "numbers": ["+14155550100"]},
        "crm": {"kind": "sandbox", "mapping": {"pipeline": "default", "stage": "new"}},
        "routing": {"owners": [{"id": "101", "name": "Dana"}], "default_owner": "101"},
    })
    typed = account_settings(account)
    assert typed.crm_mapping.task_due_minutes == CrmMappingSchema().fields["task_due_minutes"].load_default
    assert typed.crm_mapping.pipeline == "default" and typed.crm_mapping.owner_id is None
    assert typed.routing.escalation.minutes == EscalationSchema().fields["minutes"].load_default
    assert typed.routing.default_owner == "101"
    assert typed.policy.line_type_ttl_days == PolicySchema().fields["line_type_ttl_days"].load_default
    assert typed.carrier.numbers == ("+14155550100",) and typed.carrier.ring_timeout_seconds == 20
    assert typed.policy_section["quiet_hours"]["start"] == "08:00"


def test_settings_are_read_fresh_when_the_account_changes() -> None:
    account = SimpleNamespace(settings={"crm": {"mapping": {"task_due_minutes": 30}}})
    assert account_settings(account).crm_mapping.task_due_minutes == 30
    account.settings = {"crm": {"mapping": {"task_due_minutes": 45}}}
    assert account_settings(account).crm_mapping.task_due_minutes == 45
