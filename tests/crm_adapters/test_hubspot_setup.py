"""HubSpot's "test connection" and lists beyond the contract: scopes, token kinds, paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connector.kernel.errors import PermanentProviderError
from crm_adapters.base import TaskSpec
from crm_adapters.catalog import Choice
from crm_adapters.hubspot import HubSpotCrm
from tests.stubs.hubspot_catalog_stub import HubSpotCatalogStub, owner

WHEN = datetime(2026, 6, 15, 13, 0, tzinfo=UTC)
PRIVATE_TOKEN = "pat-na1-11111111-setup-test-token"
OAUTH_TOKEN = "CKDZpunPLhICAQEYs-setup-oauth-token"


@pytest.fixture
def stub() -> Iterator[HubSpotCatalogStub]:
    with HubSpotCatalogStub(access_token=PRIVATE_TOKEN) as running:
        yield running


def crm(stub: HubSpotCatalogStub, token: str = PRIVATE_TOKEN) -> HubSpotCrm:
    return HubSpotCrm({"access_token": token}, api_base_url=stub.url)


def test_missing_scopes_are_named_next_to_what_they_stop(stub: HubSpotCatalogStub) -> None:
    stub.scopes = ["crm.objects.contacts.read", "crm.objects.contacts.write",
                   "crm.objects.owners.read"]
    check = crm(stub).check_connection()
    assert check.scopes == tuple(stub.scopes)
    assert not check.ok
    refused = {p.action: p.needs for p in check.refused}
    assert refused == {
        "create deals and move them through the pipeline":
            ("crm.objects.deals.read", "crm.objects.deals.write"),
        "create textback's unique phone property": ("crm.schemas.contacts.write",),
    }
    assert "find contacts by phone" in {p.action for p in check.allowed}
    assert check.record is None  # an empty portal: nothing to read yet, still connected


def test_every_required_scope_makes_a_green_check(stub: HubSpotCatalogStub) -> None:
    stub.scopes = list(HubSpotCrm.required_scopes)
    stub.add_contact(phone="+14155550134", firstname="Jane")
    check = crm(stub).check_connection()
    assert check.ok and len(check.allowed) == len(check.permissions)
    assert check.record is not None and check.record.startswith("contact ")


def test_an_oauth_token_is_described_by_its_metadata(stub: HubSpotCatalogStub) -> None:
    stub.access_token = OAUTH_TOKEN
    stub.scopes = ["oauth", "crm.objects.contacts.read"]
    check = crm(stub, OAUTH_TOKEN).check_connection()
    assert check.account == "HubSpot account 4242424 (acme-plumbing.hubspot.com)"
    assert check.scopes == ("oauth", "crm.objects.contacts.read")
    assert stub.routes()[0].startswith("GET /oauth/v1/access-tokens/")


def test_owners_are_read_page_by_page(stub: HubSpotCatalogStub) -> None:
    stub.owners = [owner(str(i), f"Rep{i}", "Smith", f"rep{i}@example.com") for i in (1, 2, 3)]
    stub.owners_page_size = 2
    choices = crm(stub).list_choices()
    assert [o.id for o in choices.owners or ()] == ["1", "2", "3"]
    assert stub.routes().count("GET /crm/v3/owners") == 2


def test_a_portal_without_listed_queues_offers_none(stub: HubSpotCatalogStub) -> None:
    stub.queue_options = None
    choices = crm(stub).list_choices()
    assert choices.task_queues == ()
    assert choices.lead_sources is None and choices.pipeline_statuses is None


def test_without_listed_queues_the_queues_tasks_are_in_are_offered(
    stub: HubSpotCatalogStub,
) -> None:
    stub.queue_options = []
    api = crm(stub)
    contact = api.find_or_create_contact("+14155550134")
    for queue in ("55", "55", "71"):
        api.create_task(TaskSpec(contact.id, "Call back", "Missed call", WHEN, queue_id=queue))
    api.create_task(TaskSpec(contact.id, "Call back", "Missed call", WHEN))
    choices = api.list_choices()
    assert choices.task_queues == (Choice("55", "Queue 55"), Choice("71", "Queue 71"))


def test_a_list_outside_the_scopes_names_the_scope(stub: HubSpotCatalogStub) -> None:
    stub.fail_next(
        403,
        {"status": "error", "category": "MISSING_SCOPES", "message": "This app lacks scopes",
         "errors": [{"context": {"requiredGranularScopes": ["crm.objects.owners.read"]}}]},
        path="/crm/v3/owners",
    )
    with pytest.raises(PermanentProviderError, match="crm.objects.owners.read"):
        crm(stub).list_choices()
