"""HubSpot adapter: the CRM contract suite plus HubSpot's paths, bodies, ids and error quirks.

Everything runs against :class:`tests.stubs.hubspot_stub.HubSpotStub` on 127.0.0.1 because
hubspot-api-client sends through urllib3, which ``responses`` cannot intercept.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hubspot.utils.signature import Signature

from connector.kernel.errors import (
    ConfigurationError,
    PermanentProviderError,
    ProviderAuthError,
    RateLimitedError,
    TransientProviderError,
    WebhookVerificationError,
)
from connector.kernel.events import CallOutcome
from connector.kernel.http import WebhookRequest
from crm_adapters.base import (
    CallLog,
    CrmEvent,
    LeadSpec,
    LeadStageChanged,
    MessageLog,
    TaskCompleted,
    TaskSpec,
)
from crm_adapters.catalog import Choice, CrmChoices, PipelineChoice
from crm_adapters.hubspot import API_CALLS, HubSpotCrm, api_calls_per_missed_call
from crm_adapters.hubspot.contacts import UNIQUE_PHONE_PROPERTY
from crm_adapters.hubspot.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_v3
from tests.contracts.crm_contract import CrmContract
from tests.contracts.crm_setup_contract import CrmSetupContract
from tests.stubs.hubspot_catalog_stub import HubSpotCatalogStub, owner, pipeline
from tests.stubs.hubspot_stub import HubSpotStub

TOKEN = "pat-na1-0b7c5d1e-test-token-4a2f"
CLIENT_SECRET = "cs-5f8e2a9b-test-secret-77c1"
BUSINESS = "+14155550100"
CALLER = "+14155550134"
WHEN = datetime(2026, 9, 1, 15, 4, 5, 678000, tzinfo=UTC)
WEBHOOK_URL = "https://textback.example.com/webhooks/crm/hubspot"


def make_crm(stub: HubSpotStub, **kwargs: Any) -> HubSpotCrm:
    creds = {"access_token": TOKEN, "client_secret": CLIENT_SECRET}
    return HubSpotCrm(creds, api_base_url=stub.url, **kwargs)


def sign(
    body: bytes,
    *,
    url: str,
    secret: str = CLIENT_SECRET,
    age_seconds: float = 0.0,
    method: str = "POST",
) -> WebhookRequest:
    """A webhook signed the way HubSpot signs, computed with the SDK's own helper."""
    stamp = str(int((time.time() - age_seconds) * 1000))
    signature = Signature.get_signature(secret, body.decode(), "v3", url, method, stamp)
    headers = {
        SIGNATURE_HEADER: signature,
        TIMESTAMP_HEADER: stamp,
        "Content-Type": "application/json",
    }
    return WebhookRequest.build(method=method, url=url, headers=headers, body=body)


# -- the contract ----------------------------------------------------------------------------


class TestHubSpotContract(CrmContract, CrmSetupContract):
    adapter_class = HubSpotCrm
    secret_credentials = frozenset({"access_token", "client_secret"})
    webhook_url = WEBHOOK_URL
    expected_account = "HubSpot account 4242424"

    @pytest.fixture
    def backend(self) -> Iterator[HubSpotStub]:
        with HubSpotCatalogStub(access_token=TOKEN) as stub:
            yield stub

    def seed_choices(self, backend: HubSpotCatalogStub) -> CrmChoices:
        backend.pipelines = [
            pipeline("77", "Service", [("s1", "Booked")], order=1),
            pipeline("default", "Sales", [("new", "New"), ("won", "Won")], order=0),
            pipeline("old", "Old pipeline", [("x", "X")], archived=True),
        ]
        backend.owners = [owner("7", "Ann", "Lee", "ann@example.com")]
        backend.queue_options = [{"label": "Callbacks", "value": "55", "hidden": False}]
        return CrmChoices(
            pipelines=(
                PipelineChoice("default", "Sales", (Choice("new", "New"), Choice("won", "Won"))),
                PipelineChoice("77", "Service", (Choice("s1", "Booked"),)),
            ),
            owners=(Choice("7", "Ann Lee (ann@example.com)"),),
            task_queues=(Choice("55", "Callbacks"),),
        )

    def credentials(self) -> Mapping[str, Any]:
        return {"access_token": TOKEN, "client_secret": CLIENT_SECRET}

    def make_adapter(self, backend: HubSpotStub) -> HubSpotCrm:
        return make_crm(backend)

    def fail_next(
        self,
        backend: HubSpotStub,
        status: int,
        *,
        message: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        headers = {"Retry-After": retry_after} if retry_after else None
        backend.fail_next(status, message=message, headers=headers)

    def contacts_with_phone(self, backend: HubSpotStub, e164: str) -> Sequence[str]:
        return backend.contacts_with_phone(e164)

    def add_contact(
        self,
        backend: HubSpotStub,
        phone: str,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> str:
        names = {"firstname": first_name, "lastname": last_name}
        return backend.add_contact(phone=phone, **{k: v for k, v in names.items() if v})

    def task_text(self, backend: HubSpotStub, task_id: str) -> str:
        record = backend.record("tasks", task_id)
        assert record is not None
        return str(record["properties"].get("hs_task_body", ""))

    def close_lead(self, backend: HubSpotStub, lead_id: str) -> None:
        backend.close_deal(lead_id)

    def signed_webhook(
        self, body: bytes, *, url: str, age_seconds: float = 0.0, wrong_secret: bool = False
    ) -> WebhookRequest | None:
        secret = "cs-another-app-secret-0000" if wrong_secret else CLIENT_SECRET
        return sign(body, url=url, secret=secret, age_seconds=age_seconds)

    def signature_headers(self) -> tuple[str, ...]:
        return (SIGNATURE_HEADER, TIMESTAMP_HEADER)

    def requests_made(self, backend: HubSpotStub) -> int:
        return len(backend.requests)

    def webhook_samples(self) -> Sequence[tuple[bytes, Sequence[CrmEvent]]]:
        change = {"subscriptionType": "object.propertyChange", "portalId": 62515,
                  "occurredAt": 1788274800000, "attemptNumber": 0}
        acted = [
            {**change, "eventId": 7, "objectId": 9001, "propertyName": "hs_task_status",
             "propertyValue": "COMPLETED"},
            {**change, "eventId": 8, "objectId": 5005, "propertyName": "dealstage",
             "propertyValue": "qualifiedtobuy"},
        ]
        ignored = [{**change, "eventId": 9, "subscriptionType": "contact.creation",
                    "objectId": 123},
                   {**change, "eventId": 10, "objectId": 9001, "propertyName": "hs_task_status",
                    "propertyValue": "IN_PROGRESS"}]
        return [
            (json.dumps(acted).encode(), [
                TaskCompleted(event_id="7", task_id="9001"),
                LeadStageChanged(event_id="8", lead_id="5005", stage="qualifiedtobuy")]),
            (json.dumps(ignored).encode(), []),
        ]


# -- HubSpot specifics -----------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[HubSpotStub]:
    with HubSpotStub(access_token=TOKEN) as server:
        yield server


@pytest.fixture
def crm(stub: HubSpotStub) -> HubSpotCrm:
    return make_crm(stub)


def bodies(stub: HubSpotStub, route: str) -> list[Any]:
    return [r.json for r in stub.requests if r.route == route]


def assoc(to_id: str, type_id: int) -> dict[str, Any]:
    return {
        "to": {"id": to_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }


def new_contact_and_deal(crm: HubSpotCrm) -> tuple[str, str]:
    contact = crm.find_or_create_contact(CALLER).id
    deal = crm.set_pipeline_stage(
        LeadSpec(contact, "Missed call", "default", "appointmentscheduled")
    )
    return contact, deal


def test_declared_scopes_and_credentials() -> None:
    assert set(HubSpotCrm.required_scopes) == {
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.deals.read",
        "crm.objects.deals.write",
        "crm.objects.owners.read",
        "crm.schemas.contacts.write",
    }
    assert HubSpotCrm.default_api_base_url == "https://api.hubapi.com"
    crm = HubSpotCrm({"access_token": TOKEN})
    assert crm.api_base_url == "https://api.hubapi.com"
    assert crm.credentials["client_secret"] is None


def test_sdk_retries_are_off_and_every_call_has_a_timeout(crm: HubSpotCrm) -> None:
    api = crm._api
    for group in (
        api.contacts_search,
        api.contacts_batch,
        api.properties,
        api.calls,
        api.communications,
        api.tasks,
        api.deals,
    ):
        retries = group.api_client.rest_client.pool_manager.connection_pool_kw["retries"]
        assert retries.total == 0
    assert api.timeout == (5.0, 15.0)


def test_search_sends_the_four_or_groups_and_properties(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    crm.find_or_create_contact(CALLER)
    (search,) = bodies(stub, "POST /crm/v3/objects/contacts/search")
    groups = [
        [(f["propertyName"], f["operator"], f["value"]) for f in g["filters"]]
        for g in search["filterGroups"]
    ]
    assert groups == [
        [("hs_searchable_calculated_phone_number", "EQ", "4155550134")],
        [("hs_searchable_calculated_mobile_number", "EQ", "4155550134")],
        [("phone", "EQ", CALLER)],
        [("mobilephone", "EQ", CALLER)],
    ]
    assert set(search["properties"]) == {
        "phone",
        "mobilephone",
        "hs_calculated_phone_number",
        "firstname",
        "lastname",
        "hs_language",
    }


def test_found_contact_carries_names_and_language(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    existing = stub.add_contact(
        mobilephone="415.555.0134", firstname="Ana", lastname="Ruiz", hs_language="es"
    )
    contact = crm.find_or_create_contact(CALLER)
    assert (contact.id, contact.first_name, contact.last_name, contact.language) == (
        existing,
        "Ana",
        "Ruiz",
        "es",
    )
    assert stub.routes() == ["POST /crm/v3/objects/contacts/search"]


def test_search_hit_for_another_country_is_not_accepted(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    # A US contact shares the national digits of a London caller, so HubSpot's searchable
    # property matches; the client-side check must refuse it and create the caller.
    us = stub.add_contact(phone="+1 207-555-0134")
    london = crm.find_or_create_contact("+442075550134")
    assert london.id != us and london.created is True
    (search,) = bodies(stub, "POST /crm/v3/objects/contacts/search")
    assert search["filterGroups"][0]["filters"][0]["value"] == "2075550134"


def test_new_contact_is_upserted_on_the_unique_property(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    contact = crm.find_or_create_contact(CALLER, name="Jane van Dyke")
    (prop,) = bodies(stub, "POST /crm/v3/properties/contacts")
    assert prop["name"] == UNIQUE_PHONE_PROPERTY == "textback_phone_e164"
    assert (prop["type"], prop["fieldType"], prop["groupName"], prop["hasUniqueValue"]) == (
        "string",
        "text",
        "contactinformation",
        True,
    )
    (upsert,) = bodies(stub, "POST /crm/v3/objects/contacts/batch/upsert")
    assert upsert == {
        "inputs": [
            {
                "id": CALLER,
                "idProperty": "textback_phone_e164",
                "properties": {
                    "phone": CALLER,
                    "textback_phone_e164": CALLER,
                    "firstname": "Jane",
                    "lastname": "van Dyke",
                },
            }
        ]
    }
    assert (contact.first_name, contact.last_name, contact.created) == ("Jane", "van Dyke", True)


def test_unique_property_is_created_once_per_adapter(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    crm.find_or_create_contact(CALLER)
    crm.find_or_create_contact("+14155550177")
    assert stub.routes().count("POST /crm/v3/properties/contacts") == 1
    # Another process (adapter) meets 409 "already exists" and carries on.
    other = make_crm(stub).find_or_create_contact("+14155550188")
    assert other.created is True
    assert stub.routes().count("POST /crm/v3/properties/contacts") == 2


def test_simultaneous_creates_during_search_lag_converge(stub: HubSpotStub) -> None:
    stub.search_lag = 60.0  # HubSpot's index trails writes: neither call can see the other
    stub.latency = 0.05
    first, second = make_crm(stub), make_crm(stub)
    first.find_or_create_contact("+14155550101")  # the property exists before the race
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.find_or_create_contact(CALLER)))
        for c in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 2 and results[0].id == results[1].id
    assert sorted(r.created for r in results) == [False, True]
    assert stub.contacts_with_phone(CALLER) == [results[0].id]


def test_409_on_create_returns_the_existing_id(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    body = {
        "status": "error",
        "message": "Contact already exists. Existing ID: 8675309",
        "correlationId": "3f6c",
        "category": "CONFLICT",
    }
    stub.fail_next(409, body, path="/crm/v3/objects/contacts/batch/upsert")
    contact = crm.find_or_create_contact(CALLER)
    assert (contact.id, contact.created) == ("8675309", False)


def test_409_without_an_id_reads_by_the_unique_property(stub: HubSpotStub) -> None:
    stub.search_lag = 60.0
    made = make_crm(stub).find_or_create_contact(CALLER)
    stub.fail_next(
        409,
        {"status": "error", "message": "Conflict", "category": "CONFLICT"},
        path="/crm/v3/objects/contacts/batch/upsert",
    )
    stub.clear_requests()
    found = make_crm(stub).find_or_create_contact(CALLER)
    assert (found.id, found.created) == (made.id, False)
    (read,) = bodies(stub, "POST /crm/v3/objects/contacts/batch/read")
    assert read["idProperty"] == UNIQUE_PHONE_PROPERTY and read["inputs"] == [{"id": CALLER}]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (CallOutcome.NO_ANSWER, "NO_ANSWER"),
        (CallOutcome.BUSY, "BUSY"),
        (CallOutcome.FAILED, "FAILED"),
        (CallOutcome.CANCELED, "CANCELED"),
        (CallOutcome.VOICEMAIL, "NO_ANSWER"),
        (CallOutcome.REJECTED, "BUSY"),
    ],
)
def test_log_call_body(
    crm: HubSpotCrm, stub: HubSpotStub, outcome: CallOutcome, status: str
) -> None:
    contact, deal = new_contact_and_deal(crm)
    call_id = crm.log_call(
        CallLog(
            contact,
            CALLER,
            BUSINESS,
            outcome,
            WHEN,
            "Missed call",
            "Texted back.",
            owner_id="77",
            deal_id=deal,
        )
    )
    (body,) = bodies(stub, "POST /crm/v3/objects/calls")
    assert body["properties"] == {
        "hs_timestamp": "2026-09-01T15:04:05.678Z",
        "hs_call_title": "Missed call",
        "hs_call_body": "Texted back.",
        "hs_call_direction": "INBOUND",
        "hs_call_status": status,
        "hs_call_from_number": CALLER,
        "hs_call_to_number": BUSINESS,
        "hubspot_owner_id": "77",
    }
    assert body["associations"] == [assoc(contact, 194), assoc(deal, 206)]
    assert stub.record("calls", call_id) is not None


@pytest.mark.parametrize(
    ("direction", "head"),
    [
        ("inbound", f"Inbound SMS from {CALLER} to {BUSINESS}:"),
        ("outbound", f"Outbound SMS from {BUSINESS} to {CALLER}:"),
    ],
)
def test_log_message_body(crm: HubSpotCrm, stub: HubSpotStub, direction: str, head: str) -> None:
    contact, deal = new_contact_and_deal(crm)
    sender, recipient = (CALLER, BUSINESS) if direction == "inbound" else (BUSINESS, CALLER)
    crm.log_message(
        MessageLog(
            contact,
            direction,
            "Leak <b>now</b> & fast",
            WHEN,
            sender,
            recipient,
            owner_id="77",
            deal_id=deal,
        )
    )
    (body,) = bodies(stub, "POST /crm/v3/objects/communications")
    props = body["properties"]
    assert (props["hs_communication_channel_type"], props["hs_communication_logged_from"]) == (
        "SMS",
        "CRM",
    )
    assert props["hs_communication_body"] == f"{head}\nLeak &lt;b&gt;now&lt;/b&gt; &amp; fast"
    assert (props["hs_timestamp"], props["hubspot_owner_id"]) == ("2026-09-01T15:04:05.678Z", "77")
    assert body["associations"] == [assoc(contact, 81), assoc(deal, 85)]


def test_create_task_body(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    contact, deal = new_contact_and_deal(crm)
    crm.create_task(
        TaskSpec(
            contact,
            "Call back",
            "Missed at 9:02",
            WHEN,
            owner_id="77",
            priority="medium",
            queue_id="4455",
            deal_id=deal,
        )
    )
    (body,) = bodies(stub, "POST /crm/v3/objects/tasks")
    assert body["properties"] == {
        "hs_task_subject": "Call back",
        "hs_task_body": "Missed at 9:02",
        "hs_timestamp": "2026-09-01T15:04:05.678Z",
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": "MEDIUM",
        "hs_task_type": "CALL",
        "hubspot_owner_id": "77",
        "hs_queue_membership_ids": "4455",
    }
    assert body["associations"] == [assoc(contact, 204), assoc(deal, 216)]


def test_task_without_owner_queue_or_deal_leaves_them_out(
    crm: HubSpotCrm, stub: HubSpotStub
) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    crm.create_task(TaskSpec(contact, "Call back", "Missed", WHEN))
    (body,) = bodies(stub, "POST /crm/v3/objects/tasks")
    assert not {"hubspot_owner_id", "hs_queue_membership_ids"} & set(body["properties"])
    assert body["properties"]["hs_task_priority"] == "HIGH"
    assert body["associations"] == [assoc(contact, 204)]


def test_bad_task_priority_fails_before_any_request(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    with pytest.raises(ValueError, match="priority"):
        crm.create_task(TaskSpec("1", "Call back", "Missed", WHEN, priority="URGENT"))
    assert stub.requests == []


def test_append_to_task_reads_then_patches(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    task = crm.create_task(TaskSpec(contact, "Call back", "Missed at 9:02", WHEN))
    stub.clear_requests()
    crm.append_to_task(task, "Reply: today please")
    assert stub.routes() == [
        "GET /crm/v3/objects/tasks/{taskId}",
        "PATCH /crm/v3/objects/tasks/{taskId}",
    ]
    assert stub.requests[0].query["properties"] == ["hs_task_body"]
    assert stub.requests[1].json == {
        "properties": {"hs_task_body": "Missed at 9:02\nReply: today please"}
    }


def test_append_to_an_html_task_body_adds_a_paragraph(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    task = crm.create_task(TaskSpec(contact, "Call back", "<p>Missed at 9:02</p>", WHEN))
    crm.append_to_task(task, "Reply: <3 & thanks")
    record = stub.record("tasks", task)
    assert record is not None
    assert (
        record["properties"]["hs_task_body"]
        == "<p>Missed at 9:02</p><p>Reply: &lt;3 &amp; thanks</p>"
    )


def test_new_deal_body(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    deal = crm.set_pipeline_stage(
        LeadSpec(contact, "Missed call", "default", "appointmentscheduled", owner_id="77")
    )
    (body,) = bodies(stub, "POST /crm/v3/objects/deals")
    assert body == {
        "properties": {
            "dealname": "Missed call",
            "pipeline": "default",
            "dealstage": "appointmentscheduled",
            "hubspot_owner_id": "77",
        },
        "associations": [assoc(contact, 3)],
    }
    stub.clear_requests()
    assert crm.set_pipeline_stage(LeadSpec(contact, "x", "default", "qualifiedtobuy"), deal) == deal
    assert stub.routes() == ["GET /crm/v3/objects/deals/{dealId}"]
    assert sorted(stub.requests[0].query["properties"]) == ["dealstage", "hs_is_closed", "pipeline"]
    record = stub.record("deals", deal)
    assert record is not None and record["properties"]["dealstage"] == "appointmentscheduled"


def test_deleted_deal_is_replaced(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    fresh = crm.set_pipeline_stage(
        LeadSpec(contact, "Missed call", "default", "appointmentscheduled"), existing_id="999999"
    )
    assert fresh != "999999" and stub.record("deals", fresh) is not None


@pytest.mark.parametrize(
    ("pipeline", "stage", "field"),
    [
        (None, "appointmentscheduled", "crm.mapping.pipeline"),
        ("default", None, "crm.mapping.stage"),
    ],
)
def test_missing_pipeline_mapping_is_a_configuration_error(
    crm: HubSpotCrm, stub: HubSpotStub, pipeline: str | None, stage: str | None, field: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        crm.set_pipeline_stage(LeadSpec("1", "Missed call", pipeline, stage), existing_id="5")
    assert info.value.field == field
    assert stub.requests == []


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "wait"), [("TEN_SECONDLY_ROLLING", 10.0), ("SECONDLY", 1.0)])
def test_429_wait_comes_from_the_policy(
    crm: HubSpotCrm, stub: HubSpotStub, policy: str, wait: float
) -> None:
    stub.fail_next(
        429,
        {
            "status": "error",
            "message": "limit",
            "errorType": "RATE_LIMIT",
            "policyName": policy,
            "correlationId": "c-1",
        },
    )
    with pytest.raises(RateLimitedError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.retry_after == wait and info.value.status == 429


def test_429_then_success_is_one_attempt_each(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    stub.fail_next(429, headers={"Retry-After": "2"})
    with pytest.raises(RateLimitedError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.retry_after == 2.0
    assert stub.routes() == ["POST /crm/v3/objects/contacts/search"]  # the SDK did not retry
    contact = crm.find_or_create_contact(CALLER)  # what the connector's retry does
    assert contact.created is True
    assert stub.routes().count("POST /crm/v3/objects/contacts/search") == 2


def test_wrong_token_is_an_auth_error_without_the_token(stub: HubSpotStub) -> None:
    crm = HubSpotCrm({"access_token": "pat-na1-revoked-token-9999"}, api_base_url=stub.url)
    with pytest.raises(ProviderAuthError) as info:
        crm.find_or_create_contact(CALLER)
    assert "INVALID_AUTHENTICATION" in str(info.value)
    assert "pat-na1-revoked-token-9999" not in str(info.value)
    assert stub.requests[0].headers["authorization"] == "Bearer pat-na1-revoked-token-9999"


def test_403_names_the_missing_scopes(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    stub.fail_next(403)
    with pytest.raises(PermanentProviderError) as info:
        crm.set_pipeline_stage(LeadSpec(contact, "Missed call", "default", "appointmentscheduled"))
    assert not isinstance(info.value, ProviderAuthError)
    assert info.value.code == "MISSING_SCOPES"
    assert "missing scopes: crm.objects.deals.write" in str(info.value)


def test_400_keeps_hubspots_message_and_correlation_id(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    stub.fail_next(
        400,
        {
            "status": "error",
            "message": "Property values were not valid",
            "correlationId": "aaaabbbb-1111-2222-3333-444455556666",
            "category": "VALIDATION_ERROR",
        },
    )
    with pytest.raises(PermanentProviderError) as info:
        crm.find_or_create_contact(CALLER)
    text = str(info.value)
    assert "Property values were not valid" in text
    assert "aaaabbbb-1111-2222-3333-444455556666" in text
    assert info.value.code == "VALIDATION_ERROR" and info.value.provider == "hubspot"


def test_html_502_is_transient(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    stub.fail_next(502, "<html><body>Bad gateway</body></html>")
    with pytest.raises(TransientProviderError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.status == 502 and info.value.ambiguous is False  # a search changes nothing


def test_read_timeout_on_a_read_is_one_attempt_and_not_ambiguous(stub: HubSpotStub) -> None:
    crm = make_crm(stub, timeout=(1.0, 0.2))
    contact = crm.find_or_create_contact(CALLER).id
    task = crm.create_task(TaskSpec(contact, "Call back", "Missed", WHEN))
    stub.clear_requests()
    stub.latency = 0.6
    with pytest.raises(TransientProviderError) as info:
        crm.append_to_task(task, "Reply")
    assert info.value.ambiguous is False
    time.sleep(0.8)  # a retried GET (urllib3's default) would have arrived by now
    assert stub.routes() == ["GET /crm/v3/objects/tasks/{taskId}"]


def test_read_timeout_on_a_create_is_ambiguous(stub: HubSpotStub) -> None:
    crm = make_crm(stub, timeout=(1.0, 0.2))
    contact = crm.find_or_create_contact(CALLER).id
    stub.latency = 0.6
    with pytest.raises(TransientProviderError) as info:
        crm.log_call(CallLog(contact, CALLER, BUSINESS, CallOutcome.NO_ANSWER, WHEN, "t", "b"))
    assert info.value.ambiguous is True and "ReadTimeoutError" in str(info.value)


def test_refused_connection_is_transient_not_ambiguous() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    crm = HubSpotCrm({"access_token": TOKEN}, api_base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(TransientProviderError) as info:
        crm.log_call(CallLog("1", CALLER, BUSINESS, CallOutcome.NO_ANSWER, WHEN, "t", "b"))
    assert info.value.ambiguous is False


def test_nothing_sensitive_is_logged(
    crm: HubSpotCrm, stub: HubSpotStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    contact, deal = new_contact_and_deal(crm)
    crm.log_message(
        MessageLog(
            contact, "inbound", "my secret gate code 4321", WHEN, CALLER, BUSINESS, deal_id=deal
        )
    )
    stub.fail_next(400, message=f"bad phone {CALLER}")
    with pytest.raises(PermanentProviderError):
        crm.find_or_create_contact(CALLER)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged, "expected some log lines to inspect"
    for secret in (TOKEN, CALLER, "4155550134", "gate code"):
        assert secret not in logged


# -- webhooks --------------------------------------------------------------------------------


def test_our_signature_matches_the_sdk(crm: HubSpotCrm) -> None:
    body = b'[{"eventId":7,"subscriptionType":"contact.propertyChange"}]'
    stamp = str(int(time.time() * 1000))
    ours = signature_v3(CLIENT_SECRET, "POST", WEBHOOK_URL + "?portal=1", body, stamp)
    assert Signature.is_valid(
        signature=ours,
        client_secret=CLIENT_SECRET,
        request_body=body.decode(),
        http_uri=WEBHOOK_URL + "?portal=1",
        http_method="POST",
        signature_version="v3",
        timestamp=stamp,
    )


def test_encoded_uri_characters_are_decoded_before_hashing(crm: HubSpotCrm) -> None:
    decoded = WEBHOOK_URL + "?next=https://x.test/a:b"
    encoded = WEBHOOK_URL + "?next=https%3A%2F%2Fx.test%2Fa%3ab"
    signed = sign(b"[]", url=decoded)
    received = WebhookRequest.build(url=encoded, headers=dict(signed.headers.items()), body=b"[]")
    crm.verify_request(received)


def test_webhook_timestamp_window(crm: HubSpotCrm) -> None:
    crm.verify_request(sign(b"[]", url=WEBHOOK_URL, age_seconds=290))
    with pytest.raises(WebhookVerificationError):
        crm.verify_request(sign(b"[]", url=WEBHOOK_URL, age_seconds=310))
    with pytest.raises(WebhookVerificationError):
        crm.verify_request(sign(b"[]", url=WEBHOOK_URL, age_seconds=-400))  # from the future
    bad = sign(b"[]", url=WEBHOOK_URL)
    headers = {**dict(bad.headers.items()), TIMESTAMP_HEADER: "yesterday"}
    with pytest.raises(WebhookVerificationError):
        crm.verify_request(WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=b"[]"))


def test_webhooks_need_the_client_secret(stub: HubSpotStub) -> None:
    crm = HubSpotCrm({"access_token": TOKEN}, api_base_url=stub.url)
    with pytest.raises(WebhookVerificationError, match="client_secret"):
        crm.verify_request(sign(b"[]", url=WEBHOOK_URL))


# -- API call budget (the benchmark counts these) -----------------------------------------------


def sync_missed_call(
    crm: HubSpotCrm, number: str, *, contact: str | None = None, lead: str | None = None
) -> tuple[str, str]:
    """What ``connector.jobs.crm_sync`` does for one missed call; known ids skip their lookups."""
    if contact is None:
        contact = crm.find_or_create_contact(number).id
    lead = crm.set_pipeline_stage(
        LeadSpec(contact, "Missed call", "default", "appointmentscheduled"), lead
    )
    crm.log_call(
        CallLog(contact, number, BUSINESS, CallOutcome.NO_ANSWER, WHEN, "t", "b", deal_id=lead)
    )
    crm.log_message(
        MessageLog(contact, "outbound", "Sorry we missed you", WHEN, BUSINESS, number, deal_id=lead)
    )
    crm.create_task(TaskSpec(contact, "Call back", "b", WHEN + timedelta(minutes=15), deal_id=lead))
    return contact, lead


def test_documented_api_calls_match_the_requests_made(crm: HubSpotCrm, stub: HubSpotStub) -> None:
    tail = [*API_CALLS["log_call"], *API_CALLS["log_message"], *API_CALLS["create_task"]]
    contact, lead = sync_missed_call(crm, CALLER)
    assert stub.routes() == [
        *API_CALLS["find_or_create_contact:new_first_in_process"],
        *API_CALLS["set_pipeline_stage:new"],
        *tail,
    ]
    assert len(stub.routes()) == api_calls_per_missed_call("new", first_in_process=True) == 7

    stub.clear_requests()
    sync_missed_call(crm, "+14155550177")
    assert len(stub.routes()) == api_calls_per_missed_call("new") == 6

    stub.add_contact(phone="(415) 555-0188")  # already a HubSpot contact, typed in by hand
    stub.clear_requests()
    sync_missed_call(crm, "+14155550188")
    assert stub.routes()[:2] == [
        *API_CALLS["find_or_create_contact:returning"],
        *API_CALLS["set_pipeline_stage:new"],
    ]
    assert len(stub.routes()) == api_calls_per_missed_call("in_crm") == 5

    stub.clear_requests()
    sync_missed_call(crm, CALLER, contact=contact, lead=lead)
    assert stub.routes() == [*API_CALLS["set_pipeline_stage:open"], *tail]
    assert len(stub.routes()) == api_calls_per_missed_call("linked") == 4
    with pytest.raises(ValueError):
        api_calls_per_missed_call("returning")


def test_a_crm_write_leaves_the_process_logging_alone(
    crm: HubSpotCrm, stub: HubSpotStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every SDK model built without a configuration made its own, which resets the SDK's and
    # urllib3's logger levels and so empties the level cache of every logger in the process.
    def write_everything() -> None:
        contact, deal = new_contact_and_deal(crm)
        crm.log_call(CallLog(contact, CALLER, BUSINESS, CallOutcome.NO_ANSWER, WHEN,
                             "Missed call", "Texted back.", deal_id=deal))
        crm.log_message(MessageLog(contact, "outbound", "Sorry we missed you", WHEN, BUSINESS,
                                   CALLER, deal_id=deal))
        task = crm.create_task(TaskSpec(contact, "Call back", "Missed", WHEN, deal_id=deal))
        crm.append_to_task(task, "They replied.")
        crm.find_task(TaskSpec(contact, "Call back", "Missed", WHEN), "marker")
        crm.set_opt_out(contact, True)

    write_everything()  # the first write of each kind may set its SDK package up
    resets: list[str] = []
    real_set_level = logging.Logger.setLevel

    def set_level(logger: logging.Logger, level: int | str) -> None:
        resets.append(logger.name)
        real_set_level(logger, level)

    monkeypatch.setattr(logging.Logger, "setLevel", set_level)
    write_everything()
    assert resets == []
    assert len(bodies(stub, "POST /crm/v3/objects/calls")) == 2


def test_lookups_search_by_contact_and_time_in_milliseconds(
    crm: HubSpotCrm, stub: HubSpotStub
) -> None:
    contact, deal = new_contact_and_deal(crm)
    call = CallLog(contact, CALLER, BUSINESS, CallOutcome.NO_ANSWER, WHEN, "Missed call", "b")
    text = MessageLog(contact, "outbound", "Sorry we missed you", WHEN, BUSINESS, CALLER)
    call_id, text_id = crm.log_call(call), crm.log_message(text)
    stub.clear_requests()
    lead = LeadSpec(contact, "Missed call", "default", "appointmentscheduled")
    assert (crm.find_call_log(call), crm.find_message_log(text), crm.find_lead(lead)) == (
        call_id, text_id, deal)
    assert stub.routes() == ["POST /crm/v3/objects/calls/search",
                             "POST /crm/v3/objects/communications/search",
                             "POST /crm/v3/objects/deals/search"]
    millis = str(int(WHEN.timestamp() * 1000))
    on_contact = {"propertyName": "associations.contact", "operator": "EQ", "value": contact}
    at_when = [{"propertyName": "hs_timestamp", "operator": "GTE", "value": millis},
               {"propertyName": "hs_timestamp", "operator": "LTE", "value": millis}]
    calls, texts, deals = (r.json for r in stub.requests)
    assert calls["filterGroups"] == [{"filters": [on_contact, *at_when]}]
    assert texts["filterGroups"] == [{"filters": [on_contact, *at_when]}]
    assert deals["filterGroups"] == [{"filters": [
        on_contact, {"propertyName": "pipeline", "operator": "EQ", "value": "default"},
        {"propertyName": "dealname", "operator": "EQ", "value": "Missed call"}]}]
    assert millis == "1788275045678"
    assert {r.json["sorts"][0]["direction"] for r in stub.requests} == {"DESCENDING"}
