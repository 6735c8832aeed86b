"""Jobber adapter: the CRM contract suite, the schema checks, tokens, OAuth, errors, webhooks.

HTTP goes to :class:`tests.fixtures.jobber.fake_jobber.FakeJobber` through ``responses``; the
fake executes every GraphQL document against Jobber's (trimmed, patched) schema.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from graphql import GraphQLError, parse, validate
from graphql.execution.values import get_variable_values

from connector.kernel.errors import (
    ConfigurationError,
    CredentialsRejectedError,
    MalformedWebhookError,
    PermanentProviderError,
    ProviderAuthError,
    RateLimitedError,
    TransientProviderError,
    WebhookVerificationError,
)
from connector.kernel.events import CallOutcome
from connector.kernel.http import WebhookRequest
from connector.kernel.signing import hmac_base64
from crm_adapters import oauth_flow
from crm_adapters.base import (
    AppDisconnected,
    CallLog,
    CrmEvent,
    LeadSpec,
    MessageLog,
    OAuthTokens,
    TaskSpec,
)
from crm_adapters.catalog import Choice, CrmChoices
from crm_adapters.jobber import (
    API_CALLS,
    DEFAULT_GRAPHQL_VERSION,
    JobberCrm,
    activities,
    api_calls_per_missed_call,
    contacts,
    leads,
    oauth,
)
from crm_adapters.jobber.adapter import app_disconnect
from crm_adapters.jobber.documents import DOCUMENTS, MUTATIONS, operation_name
from crm_adapters.jobber.errors import ddos_window_wait
from crm_adapters.jobber.tokens import jwt_expiry
from crm_adapters.jobber.webhooks import SIGNATURE_HEADER, read_event
from tests.contracts.crm_contract import CrmContract
from tests.contracts.crm_setup_contract import CrmSetupContract
from tests.fixtures.jobber import make_schema, schema_patch
from tests.fixtures.jobber.fake_jobber import ACCOUNT_ID, FakeJobber, MemoryTokenStore, gid, jwt

CLIENT_ID = "jobber-client-id-6f1e2d"
CLIENT_SECRET = "jobber-client-secret-9c4b7a21"
BUSINESS = "+14155550100"
CALLER = "+14155550134"
WHEN = datetime(2026, 9, 1, 15, 4, 5, tzinfo=UTC)
WEBHOOK_URL = "https://textback.example.com/webhooks/crm/jobber"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jobber"
OWNER = gid("User", 1)


def make_crm(fake: FakeJobber, store: MemoryTokenStore | None = None, **kwargs: Any) -> JobberCrm:
    creds = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return JobberCrm(creds, api_base_url=fake.url, token_store=store or fake.install(), **kwargs)


def signed(body: bytes, secret: str = CLIENT_SECRET, **headers: str) -> WebhookRequest:
    return WebhookRequest.build(
        url=WEBHOOK_URL,
        headers={SIGNATURE_HEADER: hmac_base64(secret, body),
                 "Content-Type": "application/json", **headers},
        body=body,
    )


# -- the contract ----------------------------------------------------------------------------


class TestJobberContract(CrmContract, CrmSetupContract):
    """``fail_next(401)`` revokes the installation's tokens (what a disconnect does): the request
    gets 401, the one renewal is refused, and the adapter raises ProviderAuthError. A 401 that a
    renewal cures is tested below."""

    adapter_class = JobberCrm
    secret_credentials = frozenset({"client_secret"})
    webhook_url = WEBHOOK_URL
    expected_account = "Acme Plumbing"

    def seed_choices(self, backend: FakeJobber) -> CrmChoices:
        backend.users.append({"id": gid("User", 3), "name": {"full": "Lee Admin"},
                              "email": {"raw": "lee@acme.test"}, "isAccountAdmin": True})
        return CrmChoices(owners=(
            Choice(gid("User", 1), "Dana Owner (dana@acme.test)"),
            Choice(gid("User", 3), "Lee Admin (lee@acme.test)"),
            Choice(gid("User", 2), "Sam Tech (sam@acme.test)"),
        ))

    @pytest.fixture
    def backend(self) -> Iterator[FakeJobber]:
        with FakeJobber(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
            yield fake

    def credentials(self) -> Mapping[str, Any]:
        return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}

    def make_adapter(self, backend: FakeJobber) -> JobberCrm:
        return make_crm(backend)

    def fail_next(self, backend: FakeJobber, status: int, *, message: str | None = None,
                  retry_after: str | None = None) -> None:
        if status == 401:
            backend.revoke()
            return
        headers = {"Retry-After": retry_after} if retry_after else None
        backend.fail_next(status, message=message, headers=headers)

    def contacts_with_phone(self, backend: FakeJobber, e164: str) -> Sequence[str]:
        return backend.clients_with_phone(e164)

    def add_contact(self, backend: FakeJobber, phone: str, first_name: str | None = None,
                    last_name: str | None = None) -> str:
        return backend.add_client(phone, first_name, last_name)

    def task_text(self, backend: FakeJobber, task_id: str) -> str:
        if task_id.startswith(activities.ASSESSMENT_PREFIX):
            return str(backend.assessments[task_id.split(":", 1)[1]]["instructions"])
        return str(backend.tasks[task_id]["instructions"])

    def close_lead(self, backend: FakeJobber, lead_id: str) -> None:
        backend.requests[lead_id]["requestStatus"] = "archived"

    def signed_webhook(self, body: bytes, *, url: str, age_seconds: float = 0.0,
                       wrong_secret: bool = False) -> WebhookRequest | None:
        if age_seconds > 0:
            return None  # Jobber's signature carries no timestamp
        secret = "another-apps-client-secret" if wrong_secret else CLIENT_SECRET
        return WebhookRequest.build(url=url, body=body, headers={
            SIGNATURE_HEADER: hmac_base64(secret, body), "Content-Type": "application/json"})

    def signature_headers(self) -> tuple[str, ...]:
        return (SIGNATURE_HEADER,)

    def requests_made(self, backend: FakeJobber) -> int:
        return len(backend.calls)

    def webhook_samples(self) -> Sequence[tuple[bytes, Sequence[CrmEvent]]]:
        disconnect = (FIXTURES / "webhook_app_disconnect.json").read_bytes()
        return [
            (disconnect, [AppDisconnected(
                event_id=f"jobber:APP_DISCONNECT:{ACCOUNT_ID}:{ACCOUNT_ID}:"
                         "2026-09-01T08:31:36-06:00",
                external_account_id=ACCOUNT_ID)]),
            ((FIXTURES / "webhook_client_create_legacy.json").read_bytes(), []),
        ]


@pytest.fixture
def fake() -> Iterator[FakeJobber]:
    with FakeJobber(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as backend:
        yield backend


@pytest.fixture
def crm(fake: FakeJobber) -> JobberCrm:
    return make_crm(fake)


def contact_and_request(crm: JobberCrm) -> tuple[str, str]:
    contact = crm.find_or_create_contact(CALLER).id
    return contact, crm.set_pipeline_stage(LeadSpec(contact, "Missed call", None, None))


# -- every document against Jobber's schema --------------------------------------------------


def sample_variables() -> dict[str, dict[str, Any]]:
    """The variables the adapter sends, built by its own input builders."""
    task = TaskSpec("Q2xpZW50LzE=", "Call back", "Missed at 9:02", WHEN, owner_id="VXNlci8x")
    return {
        "ClientsByPhone": {"searchTerm": "4155550134", "first": contacts.SEARCH_LIMIT},
        "ClientCreate": {"input": contacts.client_input(CALLER, "Jane van Dyke")},
        "ClientNoteCreate": {"clientId": "Q2xpZW50LzE=",
                             "input": {"message": "note", "linkedTo": {"requests": True}}},
        "ClientNotes": {"clientId": "Q2xpZW50LzE=", "first": activities.NOTES_PAGE},
        "RequestStatus": {"id": "UmVxdWVzdC8x"},
        "ClientRequests": {"clientId": "Q2xpZW50LzE=", "first": leads.REQUESTS_PAGE},
        "RequestCreate": {"input": {"clientId": "Q2xpZW50LzE=", "title": "Missed call"}},
        "TaskCreate": {"clientId": "Q2xpZW50LzE=", "input": activities.task_input(task)},
        "TaskInstructions": {"id": "VGFzay8x"},
        "TaskDone": {"id": "VGFzay8x"},
        "TaskEdit": {"taskId": "VGFzay8x", "input": {"instructions": "a\nb"}},
        "ScheduledTasks": {"filter": activities.scheduled_tasks_filter(task),
                           "first": activities.TASKS_PAGE, "after": "25"},
        "AssessmentCreate": {"requestId": "UmVxdWVzdC8x",
                             "input": activities.assessment_input(task, "America/Denver")},
        "AssessmentInstructions": {"id": "QXNzZXNzbWVudC8x"},
        "AssessmentDone": {"id": "QXNzZXNzbWVudC8x"},
        "AssessmentEdit": {"assessmentId": "QXNzZXNzbWVudC8x", "input": {"instructions": "x"}},
        "RequestAssessment": {"requestId": "UmVxdWVzdC8x"},
        "Users": {"first": 50, "after": None},
        "Account": {},
        "FirstClient": {},
        "AppDisconnect": {},
    }


def coercion_errors(schema: Any, name: str, variables: Mapping[str, Any]) -> list[GraphQLError]:
    operation = parse(DOCUMENTS[name]).definitions[0]
    result = get_variable_values(schema, operation.variable_definitions or [], dict(variables))  # type: ignore[attr-defined]
    return result if isinstance(result, list) else []


#: Documents written for the pinned version where it differs from the dump: the dump's type each
#: one is refused by (``schema_patch.PATCH`` records the change).
PATCHED_DOCUMENTS = {"ClientNotes": "ClientNotesSortAttributes"}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_document_is_valid_against_jobbers_schema(name: str) -> None:
    document = parse(DOCUMENTS[name])
    assert operation_name(DOCUMENTS[name]) == name
    assert validate(schema_patch.schema(), document) == []
    unpatched = validate(schema_patch.schema(patched=False), document)
    if name in PATCHED_DOCUMENTS:
        # Only the patched argument is refused by the dump as it is.
        assert unpatched and all(PATCHED_DOCUMENTS[name] in e.message for e in unpatched)
    else:
        assert unpatched == []


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_the_adapters_variables_coerce_against_the_input_types(name: str) -> None:
    assert coercion_errors(schema_patch.schema(), name, sample_variables()[name]) == []


def test_the_schema_patch_is_needed_and_only_for_request_create_and_client_notes() -> None:
    unpatched = schema_patch.schema(patched=False)
    failing = [n for n, v in sample_variables().items() if coercion_errors(unpatched, n, v)]
    assert failing == ["RequestCreate"]
    (error,) = coercion_errors(unpatched, "RequestCreate", sample_variables()["RequestCreate"])
    assert "customFormInput" in error.message
    assert [p.target for p in schema_patch.PATCH] == [
        "RequestCreateInput.customFormInput", "Client.notes(sort:)"]
    assert [n for n in DOCUMENTS if validate(unpatched, parse(DOCUMENTS[n]))] == ["ClientNotes"]


def test_mutations_are_the_documents_that_change_data() -> None:
    assert MUTATIONS == {"ClientCreate", "ClientNoteCreate", "RequestCreate", "TaskCreate",
                         "TaskEdit", "AssessmentCreate", "AssessmentEdit", "AppDisconnect"}


def test_trimmed_schema_is_what_the_script_makes_from_the_full_dump() -> None:
    if not make_schema.DEFAULT_SOURCE.exists():
        pytest.skip("the full Jobber dump (../shared/specs/jobber/schema.json) is not here")
    full = json.loads(make_schema.DEFAULT_SOURCE.read_text(encoding="utf-8"))
    committed = (FIXTURES / "schema.trimmed.json").read_text(encoding="utf-8")
    assert make_schema.render(make_schema.trim(full)) == committed


def test_fixtures_carry_jobbers_license() -> None:
    text = (FIXTURES / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in text and "Copyright (c) 2022 Jobber" in text


def test_a_whole_sync_sends_only_known_documents(crm: JobberCrm, fake: FakeJobber) -> None:
    contact, lead = contact_and_request(crm)
    crm.log_call(CallLog(contact, CALLER, BUSINESS, CallOutcome.NO_ANSWER, WHEN, "t", "b",
                         deal_id=lead))
    task = crm.create_task(TaskSpec(contact, "Call back", "b", WHEN, owner_id=OWNER))
    crm.append_to_task(task, "reply")
    crm.list_users()
    crm.account()
    sent = {c.operation for c in fake.calls if c.kind == "graphql"}
    assert sent <= set(DOCUMENTS) and len(sent) == 9


# -- transport -------------------------------------------------------------------------------


def test_requests_pin_the_version_and_carry_the_bearer_token(crm: JobberCrm,
                                                             fake: FakeJobber) -> None:
    crm.find_or_create_contact(CALLER)
    call = fake.calls[0]
    assert call.headers["x-jobber-graphql-version"] == DEFAULT_GRAPHQL_VERSION == "2025-04-16"
    assert call.headers["authorization"].startswith("Bearer ey")
    assert call.headers["content-type"] == "application/json"


def test_the_version_and_base_url_can_be_overridden(fake: FakeJobber) -> None:
    crm = make_crm(fake, graphql_version="2026-05-12")
    crm.find_or_create_contact(CALLER)
    assert fake.calls[0].headers["x-jobber-graphql-version"] == "2026-05-12"
    default = JobberCrm({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert default.graphql_url == "https://api.getjobber.com/api/graphql"
    assert default.token_url == "https://api.getjobber.com/api/oauth/token"


def test_without_an_installation_api_calls_name_the_setting() -> None:
    crm = JobberCrm({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    with pytest.raises(ConfigurationError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.field == "crm"


def test_version_warnings_are_logged_once(crm: JobberCrm, fake: FakeJobber,
                                          caplog: pytest.LogCaptureFixture) -> None:
    body = {"data": {"account": {"id": "A", "name": "n"}}, "extensions": {"versioning": {
        "version": "2025-04-16", "warning": "Support for API version 2025-04-16 stops soon."}}}
    fake.fail_next(200, body)
    fake.fail_next(200, body)
    crm.account()
    crm.account()
    warnings = [r for r in caplog.records if "stops soon" in r.getMessage()]
    assert len(warnings) == 1


def test_an_upgraded_version_is_logged(crm: JobberCrm, fake: FakeJobber,
                                       caplog: pytest.LogCaptureFixture) -> None:
    fake.fail_next(200, {"data": {"account": {"id": "A", "name": "n"}},
                         "extensions": {"versioning": {"version": "2026-05-12"}}})
    crm.account()
    assert "answered with API version 2026-05-12" in caplog.text


def test_a_malformed_version_setting_is_a_configuration_error(fake: FakeJobber) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_crm(fake, graphql_version="latest")
    assert info.value.field == "crm.graphql_version"


# -- clients ---------------------------------------------------------------------------------


def test_search_uses_national_digits_and_a_small_page(crm: JobberCrm, fake: FakeJobber) -> None:
    crm.find_or_create_contact(CALLER)
    (search,) = fake.graphql_calls("ClientsByPhone")
    assert search.variables == {"searchTerm": "4155550134", "first": contacts.SEARCH_LIMIT}


@pytest.mark.parametrize("typed", ["(415) 555-0134", "415.555.0134", "+1 415 555 0134",
                                   "14155550134"])
def test_numbers_typed_by_hand_are_matched_after_normalising(crm: JobberCrm, fake: FakeJobber,
                                                             typed: str) -> None:
    existing = fake.add_client(typed, "Ana", "Ruiz")
    found = crm.find_or_create_contact(CALLER)
    assert (found.id, found.first_name, found.last_name, found.created) == (
        existing, "Ana", "Ruiz", False)
    assert fake.routes() == ["query ClientsByPhone"]


def test_fuzzy_hits_with_other_numbers_are_not_accepted(crm: JobberCrm, fake: FakeJobber) -> None:
    # Same last seven digits: the fake's search returns them, like a fuzzy search would.
    decoys = [fake.add_client("+1 212-555-0134"), fake.add_client("+44 20 7555 0134")]
    mine = crm.find_or_create_contact(CALLER)
    assert mine.created is True and mine.id not in decoys


def test_the_oldest_matching_client_wins(crm: JobberCrm, fake: FakeJobber) -> None:
    first = fake.add_client("415-555-0134", "Old")
    fake.add_client("(415) 555-0134", "Newer")
    assert crm.find_or_create_contact(CALLER).id == first


def test_a_new_client_gets_the_number_as_a_texting_mobile(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER, name="Jane van Dyke")
    (create,) = fake.graphql_calls("ClientCreate")
    assert create.variables["input"] == {
        "firstName": "Jane",
        "lastName": "van Dyke",
        "phones": [{"number": CALLER, "description": "MOBILE", "primary": True,
                    "smsAllowed": True}],
    }
    assert (contact.first_name, contact.last_name, contact.created) == ("Jane", "van Dyke", True)


def test_a_nameless_caller_gets_a_placeholder_name_that_is_never_handed_back(
    crm: JobberCrm, fake: FakeJobber
) -> None:
    made = crm.find_or_create_contact(CALLER)
    (create,) = fake.graphql_calls("ClientCreate")
    assert (create.variables["input"]["firstName"], create.variables["input"]["lastName"]) == (
        "Caller", "(415) 555-0134")
    assert (made.first_name, made.last_name) == (None, None)
    again = make_crm(fake).find_or_create_contact(CALLER)
    assert (again.id, again.first_name, again.last_name) == (made.id, None, None)


def test_client_create_user_errors_are_permanent_with_jobbers_message(
    crm: JobberCrm, fake: FakeJobber
) -> None:
    fake.fail_next(200, {"data": {"clients": {"nodes": []}}})
    fake.fail_next(200, {"data": {"clientCreate": {"client": None, "userErrors": [
        {"message": f"Phone {CALLER} is invalid", "path": ["input", "phones", "0"]}]}}})
    with pytest.raises(PermanentProviderError) as info:
        crm.find_or_create_contact(CALLER)
    assert not isinstance(info.value, TransientProviderError)
    assert str(info.value) == (
        "Jobber ClientCreate refused: Phone *********34 is invalid (input.phones.0)")
    assert info.value.code == "USER_ERROR" and info.value.provider == "jobber"


def test_an_invalid_number_fails_before_any_request(crm: JobberCrm, fake: FakeJobber) -> None:
    with pytest.raises(ValueError):
        crm.find_or_create_contact("not a number")
    assert fake.calls == []


# -- notes -----------------------------------------------------------------------------------


def test_the_missed_call_is_one_client_note_linked_to_the_requests(crm: JobberCrm,
                                                                   fake: FakeJobber) -> None:
    contact, lead = contact_and_request(crm)
    fake.clear_calls()
    note = crm.log_call(CallLog(contact, CALLER, BUSINESS, CallOutcome.NO_ANSWER, WHEN,
                                "Missed call (no answer)", "Texted back at 9:05.", deal_id=lead))
    assert fake.routes() == ["mutation ClientNoteCreate"]
    (call,) = fake.calls
    assert call.variables["clientId"] == contact
    assert call.variables["input"]["linkedTo"] == {"requests": True}
    assert call.variables["input"]["message"] == (
        "Missed call (no answer)\nTexted back at 9:05.\n"
        f"Call from {CALLER} to {BUSINESS} at 2026-09-01 15:04:05 UTC (no-answer).")
    assert fake.notes[note]["clientId"] == contact


def test_texts_are_notes_with_direction_numbers_and_time(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    fake.clear_calls()
    crm.log_message(MessageLog(contact, "inbound", "Need a plumber <today> & fast", WHEN,
                               CALLER, BUSINESS))
    crm.log_message(MessageLog(contact, "outbound", "Sorry we missed you", WHEN, BUSINESS, CALLER))
    inbound, outbound = (c.variables["input"] for c in fake.calls)
    assert inbound == {"message": f"Inbound text from {CALLER} to {BUSINESS} at "
                                  "2026-09-01 15:04:05 UTC:\nNeed a plumber <today> & fast"}
    assert outbound["message"].startswith(f"Outbound text from {BUSINESS} to {CALLER}")
    assert "linkedTo" not in outbound


# -- follow-ups ------------------------------------------------------------------------------


def test_task_is_assigned_to_the_team_member(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    task = crm.create_task(TaskSpec(contact, "Call back", "Missed at 9:02", WHEN, owner_id=OWNER,
                                    priority="LOW", queue_id="ignored"))
    (create,) = fake.graphql_calls("TaskCreate")
    assert create.variables == {"clientId": contact, "input": {
        "title": "Call back", "instructions": "Missed at 9:02",
        "startAt": "2026-09-01T15:04:05Z", "endAt": "2026-09-01T15:19:05Z", "allDay": False,
        "assignedTo": [OWNER], "emailAssignments": True}}
    assert fake.tasks[task]["clientId"] == contact


def test_append_to_task_reads_then_edits_the_instructions(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    task = crm.create_task(TaskSpec(contact, "Call back", "Missed at 9:02", WHEN))
    fake.clear_calls()
    crm.append_to_task(task, "Reply: today please")
    assert fake.routes() == list(API_CALLS["append_to_task"])
    assert fake.tasks[task]["instructions"] == "Missed at 9:02\nReply: today please"


def test_append_to_a_deleted_task_is_permanent(crm: JobberCrm) -> None:
    with pytest.raises(PermanentProviderError, match="not found"):
        crm.append_to_task(gid("Task", 999), "Reply")


def test_an_unknown_assignee_is_refused_with_jobbers_message(crm: JobberCrm) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    with pytest.raises(PermanentProviderError) as info:
        crm.create_task(TaskSpec(contact, "Call back", "b", WHEN, owner_id=gid("User", 77)))
    assert "Assigned user is not on this account (input.assignedTo)" in str(info.value)


def test_assessment_follow_up_is_scheduled_on_the_request(fake: FakeJobber) -> None:
    crm = make_crm(fake, follow_up="assessment", timezone="America/Denver")
    contact, lead = contact_and_request(crm)
    follow_up = crm.create_task(TaskSpec(contact, "Call back", "Missed at 9:02", WHEN,
                                         owner_id=OWNER, deal_id=lead))
    assert follow_up.startswith("assessment:")
    (create,) = fake.graphql_calls("AssessmentCreate")
    assert create.variables == {"requestId": lead, "input": {
        "instructions": "Call back\nMissed at 9:02",
        "schedule": {
            "startAt": {"date": "2026-09-01", "time": "09:04:05", "timezone": "America/Denver"},
            "endAt": {"date": "2026-09-01", "time": "09:19:05", "timezone": "America/Denver"},
            "teamMemberIdsToAssign": [OWNER], "notifyTeam": True}}}
    crm.append_to_task(follow_up, "Reply: today")
    assert fake.routes()[-2:] == list(API_CALLS["append_to_task:assessment"])
    assessment = fake.assessments[follow_up.removeprefix("assessment:")]
    assert assessment["instructions"] == "Call back\nMissed at 9:02\nReply: today"


def test_assessment_mode_without_a_request_falls_back_to_a_task(fake: FakeJobber) -> None:
    crm = make_crm(fake, follow_up="assessment")
    contact = crm.find_or_create_contact(CALLER).id
    task = crm.create_task(TaskSpec(contact, "Call back", "b", WHEN))
    assert task in fake.tasks


@pytest.mark.parametrize(("kwargs", "field"), [({"follow_up": "visit"}, "crm.mapping.follow_up"),
                                               ({"timezone": "Mars/Olympus"}, "timezone")])
def test_bad_follow_up_settings_are_configuration_errors(fake: FakeJobber, kwargs: dict[str, str],
                                                         field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_crm(fake, **kwargs)
    assert info.value.field == field


def test_users_are_listed_for_setup_page_by_page(crm: JobberCrm, fake: FakeJobber) -> None:
    users = crm.list_users(page_size=1)
    assert [(u.name, u.email, u.is_admin) for u in users] == [
        ("Dana Owner", "dana@acme.test", True), ("Sam Tech", "sam@acme.test", False)]
    assert [c.variables for c in fake.graphql_calls("Users")] == [
        {"first": 1, "after": None}, {"first": 1, "after": "1"}]


# -- requests (the pipeline) -----------------------------------------------------------------


def test_a_new_lead_is_a_request_titled_with_the_lead_name(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    fake.clear_calls()
    lead = crm.set_pipeline_stage(LeadSpec(contact, "Missed call +1 415", None, None))
    (create,) = fake.graphql_calls("RequestCreate")
    assert create.variables == {"input": {"clientId": contact, "title": "Missed call +1 415"}}
    assert fake.requests[lead]["clientId"] == contact


@pytest.mark.parametrize("status", ["new", "unscheduled", "upcoming", "today", "overdue",
                                    "assessment_completed"])
def test_an_open_request_is_reused_with_one_read(crm: JobberCrm, fake: FakeJobber,
                                                 status: str) -> None:
    contact, lead = contact_and_request(crm)
    fake.requests[lead]["requestStatus"] = status
    fake.clear_calls()
    assert crm.set_pipeline_stage(LeadSpec(contact, "x", None, None), lead) == lead
    assert fake.routes() == list(API_CALLS["set_pipeline_stage:open"])


@pytest.mark.parametrize("status", ["converted", "completed", "archived"])
def test_a_closed_request_is_replaced(crm: JobberCrm, fake: FakeJobber, status: str) -> None:
    contact, lead = contact_and_request(crm)
    fake.requests[lead]["requestStatus"] = status
    fake.clear_calls()
    fresh = crm.set_pipeline_stage(LeadSpec(contact, "x", None, None), lead)
    assert fresh != lead and fake.routes() == list(API_CALLS["set_pipeline_stage:closed"])


def test_a_deleted_or_foreign_request_is_replaced(crm: JobberCrm, fake: FakeJobber) -> None:
    contact, lead = contact_and_request(crm)
    assert crm.set_pipeline_stage(LeadSpec(contact, "x", None, None), gid("Request", 999)) != lead
    other = crm.find_or_create_contact("+14155550177").id
    assert crm.set_pipeline_stage(LeadSpec(other, "x", None, None), lead) != lead


# -- finding what an earlier attempt made (a retry after a lost answer) ------------------------


OTHER_CALLER = "+14155550177"


def missed_call(contact: str, *, outcome: CallOutcome = CallOutcome.NO_ANSWER,
                deal_id: str | None = None) -> CallLog:
    return CallLog(contact, CALLER, BUSINESS, outcome, WHEN, "Missed call (no answer)",
                   "Texted back at 9:05.", deal_id=deal_id)


def text(contact: str, body: str = "Need a plumber today", *,
         direction: str = "inbound") -> MessageLog:
    sender, recipient = (CALLER, BUSINESS) if direction == "inbound" else (BUSINESS, CALLER)
    return MessageLog(contact, direction, body, WHEN, sender, recipient)


def test_find_call_log_finds_the_note_log_call_made(crm: JobberCrm, fake: FakeJobber) -> None:
    contact, lead = contact_and_request(crm)
    assert crm.find_call_log(missed_call(contact, deal_id=lead)) is None
    note = crm.log_call(missed_call(contact, deal_id=lead))
    fake.clear_calls()
    assert crm.find_call_log(missed_call(contact, deal_id=lead)) == note
    assert fake.routes() == list(API_CALLS["find_call_log"])
    assert fake.calls[0].variables == {"clientId": contact, "first": activities.NOTES_PAGE}


def test_find_call_log_ignores_near_misses(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    other = crm.find_or_create_contact(OTHER_CALLER).id
    crm.log_call(missed_call(other))  # the same text on another client
    crm.log_call(missed_call(contact, outcome=CallOutcome.BUSY))  # another call's text
    wanted = activities.call_note(missed_call(contact))
    fake.add_note(contact, f"{wanted}\nCalled back, booked Tuesday.")  # ours, then edited
    fake.add_note(contact, wanted.split("\n", 1)[1])  # a part of ours
    assert crm.find_call_log(missed_call(contact)) is None
    note = crm.log_call(missed_call(contact))
    assert crm.find_call_log(missed_call(contact)) == note


def test_find_call_log_for_a_client_jobber_no_longer_has(crm: JobberCrm) -> None:
    assert crm.find_call_log(missed_call(gid("Client", 999))) is None


def test_find_call_log_allows_jobbers_line_endings(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    note = crm.log_call(missed_call(contact))
    stored = fake.notes[note]["message"]
    fake.notes[note]["message"] = stored.replace("\n", "\r\n") + " \r\n"
    assert "\r\n" in fake.notes[note]["message"]
    assert crm.find_call_log(missed_call(contact)) == note


def test_find_call_log_reads_the_newest_notes_first(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    for day in range(activities.NOTES_PAGE + 5):  # a long history, oldest first in Jobber
        fake.add_note(contact, f"Visit {day}", created_at=WHEN - timedelta(days=400 - day))
    note = crm.log_call(missed_call(contact))
    assert crm.find_call_log(missed_call(contact)) == note


def test_find_call_log_reads_one_page_of_notes(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    crm.log_call(missed_call(contact))
    for n in range(activities.NOTES_PAGE):
        fake.add_note(contact, f"Staff note {n}")
    assert crm.find_call_log(missed_call(contact)) is None  # past the page: logged again


def test_find_message_log_finds_the_note_log_message_made(crm: JobberCrm,
                                                          fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    assert crm.find_message_log(text(contact)) is None
    note = crm.log_message(text(contact))
    fake.clear_calls()
    assert crm.find_message_log(text(contact)) == note
    assert fake.routes() == list(API_CALLS["find_message_log"])


def test_find_message_log_tells_equal_texts_in_one_minute_apart(crm: JobberCrm) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    first = crm.log_message(text(contact, "ok"))
    again = replace(text(contact, "ok"), occurred_at=WHEN + timedelta(seconds=20))
    assert crm.find_message_log(again) is None
    assert crm.find_message_log(text(contact, "ok")) == first


def test_find_message_log_ignores_near_misses(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    other = crm.find_or_create_contact(OTHER_CALLER).id
    crm.log_message(text(other))  # the same text logged on another client
    crm.log_message(text(contact, "Need a plumber tomorrow"))
    crm.log_message(text(contact, direction="outbound"))  # same body, the other way
    assert crm.find_message_log(text(contact)) is None
    note = crm.log_message(text(contact))
    assert crm.find_message_log(text(contact)) == note
    assert crm.find_message_log(text(other)) not in (None, note)


def lead_spec(contact: str, name: str = "Missed call") -> LeadSpec:
    return LeadSpec(contact, name, None, None)


def test_find_lead_finds_the_request_set_pipeline_stage_made(crm: JobberCrm,
                                                             fake: FakeJobber) -> None:
    contact, lead = contact_and_request(crm)
    fake.clear_calls()
    assert crm.find_lead(lead_spec(contact)) == lead
    assert fake.routes() == list(API_CALLS["find_lead"])
    assert fake.calls[0].variables == {"clientId": contact, "first": leads.REQUESTS_PAGE}


def test_find_lead_is_none_without_a_request(crm: JobberCrm) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    assert crm.find_lead(lead_spec(contact)) is None


@pytest.mark.parametrize("status", sorted(leads.CLOSED_STATUSES))
def test_find_lead_ignores_a_closed_request(crm: JobberCrm, fake: FakeJobber,
                                            status: str) -> None:
    contact, lead = contact_and_request(crm)
    fake.requests[lead]["requestStatus"] = status
    assert crm.find_lead(lead_spec(contact)) is None


def test_find_lead_ignores_other_titles_and_other_clients(crm: JobberCrm) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    other = crm.find_or_create_contact(OTHER_CALLER).id
    crm.set_pipeline_stage(lead_spec(other))
    crm.set_pipeline_stage(lead_spec(contact, "Kitchen remodel"))
    assert crm.find_lead(lead_spec(contact)) is None


def test_find_lead_takes_the_newest_open_request(crm: JobberCrm, fake: FakeJobber) -> None:
    contact, older = contact_and_request(crm)
    newer = crm.set_pipeline_stage(lead_spec(contact))
    newest = crm.set_pipeline_stage(lead_spec(contact))
    fake.requests[newest]["requestStatus"] = "archived"
    # Staff touched the older one last, so Jobber lists it first.
    fake.requests[older]["updatedAt"] = datetime.now(UTC).isoformat()
    assert crm.find_lead(lead_spec(contact)) == newer


def test_find_lead_refuses_another_clients_request(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    fake.fail_next(200, {"data": {"requests": {"nodes": [{
        "id": gid("Request", 5), "title": "Missed call", "requestStatus": "new",
        "createdAt": "2026-09-01T15:04:05Z", "client": {"id": gid("Client", 77)}}]}}})
    assert crm.find_lead(lead_spec(contact)) is None


MARKER = "0c0ffee17"


def follow_up(contact: str, call: str = MARKER, *, deal_id: str | None = None) -> TaskSpec:
    """The follow-up for one call, as the connector builds it: the marker on its last line."""
    return TaskSpec(contact, "Call back", f"Missed at 9:02\ntextback call {call}", WHEN,
                    owner_id=OWNER, deal_id=deal_id)


def task_lists(fake: FakeJobber) -> list[dict[str, Any]]:
    return [c.variables for c in fake.graphql_calls("ScheduledTasks")]


def test_find_task_finds_the_task_create_task_made(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    assert crm.find_task(follow_up(contact), MARKER) is None
    made = crm.create_task(follow_up(contact))
    fake.clear_calls()
    assert crm.find_task(follow_up(contact), MARKER) == made
    assert fake.routes() == list(API_CALLS["find_task"])
    # The tasks whose slot overlaps the second at the due time (create_task's startAt), the
    # owner's only.
    assert task_lists(fake) == [{"filter": {
        "scheduleItemType": "BASIC_TASK",
        "occursWithin": {"startAt": "2026-09-01T15:04:05Z", "endAt": "2026-09-01T15:04:06Z"},
        "assignedTo": [OWNER]}, "first": activities.TASKS_PAGE, "after": None}]
    crm.append_to_task(made, "Reply: today please")  # lines after the marker
    assert crm.find_task(follow_up(contact), MARKER) == made


def test_find_task_of_a_task_without_an_owner(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    task = replace(follow_up(contact), owner_id=None)
    made = crm.create_task(task)
    assert crm.find_task(task, MARKER) == made
    assert "assignedTo" not in task_lists(fake)[-1]["filter"]


def test_find_task_within_the_slot_when_jobber_keeps_minutes(crm: JobberCrm,
                                                             fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    made = crm.create_task(follow_up(contact))
    fake.tasks[made]["startAt"] = "2026-09-01T15:04:00Z"  # the slot, to the minute
    fake.tasks[made]["endAt"] = "2026-09-01T15:19:00Z"
    assert crm.find_task(follow_up(contact), MARKER) == made


#: Tasks like ours in all but one respect: none of them is the follow-up looked for.
TASK_NEAR_MISSES: dict[str, Callable[[str, str], TaskSpec]] = {
    "another client's task for the call": lambda mine, other: follow_up(other),
    "the client's task for another call": lambda mine, other: follow_up(mine, "0c0ffee18"),
    "a marker with ours in it": lambda mine, other: follow_up(mine, MARKER + "0"),
    "another team member's task": lambda mine, other: replace(follow_up(mine),
                                                             owner_id=gid("User", 2)),
    "a task at another due time": lambda mine, other: replace(
        follow_up(mine), due_at=WHEN + timedelta(hours=1)),
}


@pytest.mark.parametrize("near_miss", sorted(TASK_NEAR_MISSES))
def test_find_task_ignores_near_misses(crm: JobberCrm, near_miss: str) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    other = crm.find_or_create_contact(OTHER_CALLER).id
    crm.create_task(TASK_NEAR_MISSES[near_miss](contact, other))
    assert crm.find_task(follow_up(contact), MARKER) is None
    made = crm.create_task(follow_up(contact))
    assert crm.find_task(follow_up(contact), MARKER) == made


def test_find_task_reads_the_next_page(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    for n in range(activities.TASKS_PAGE):  # other calls' tasks at the same moment, first
        crm.create_task(follow_up(contact, f"call-{n}"))
    made = crm.create_task(follow_up(contact))
    fake.clear_calls()
    assert crm.find_task(follow_up(contact), MARKER) == made
    assert [v["after"] for v in task_lists(fake)] == [None, str(activities.TASKS_PAGE)]


def test_find_task_reads_a_bounded_number_of_pages(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    for n in range(activities.TASKS_PAGE * activities.TASK_PAGES):
        crm.create_task(follow_up(contact, f"call-{n}"))
    crm.create_task(follow_up(contact))  # past the pages read: made again on the retry
    fake.clear_calls()
    assert crm.find_task(follow_up(contact), MARKER) is None
    assert [v["first"] for v in task_lists(fake)] == [activities.TASKS_PAGE] * activities.TASK_PAGES
    assert len(fake.calls) == activities.TASK_PAGES


def test_find_task_finds_the_assessment_on_the_request(fake: FakeJobber) -> None:
    crm = make_crm(fake, follow_up="assessment", timezone="America/Denver")
    contact, lead = contact_and_request(crm)
    assert crm.find_task(follow_up(contact, deal_id=lead), MARKER) is None
    made = crm.create_task(follow_up(contact, deal_id=lead))
    crm.append_to_task(made, "Reply: today please")
    fake.clear_calls()
    assert crm.find_task(follow_up(contact, deal_id=lead), MARKER) == made
    assert made.startswith(activities.ASSESSMENT_PREFIX)
    assert fake.routes() == list(API_CALLS["find_task:assessment"])
    assert fake.calls[0].variables == {"requestId": lead}


def test_find_task_ignores_another_calls_assessment(fake: FakeJobber) -> None:
    crm = make_crm(fake, follow_up="assessment")
    contact, lead = contact_and_request(crm)
    crm.create_task(follow_up(contact, "0c0ffee18", deal_id=lead))
    assert crm.find_task(follow_up(contact, deal_id=lead), MARKER) is None


def test_find_task_for_a_request_jobber_no_longer_has(fake: FakeJobber) -> None:
    crm = make_crm(fake, follow_up="assessment")
    contact = crm.find_or_create_contact(CALLER).id
    assert crm.find_task(follow_up(contact, deal_id=gid("Request", 999)), MARKER) is None


def test_find_task_in_assessment_mode_without_a_request_looks_for_the_task(
        fake: FakeJobber) -> None:
    crm = make_crm(fake, follow_up="assessment")
    contact = crm.find_or_create_contact(CALLER).id
    made = crm.create_task(follow_up(contact))
    assert made in fake.tasks
    assert crm.find_task(follow_up(contact), MARKER) == made


def test_find_task_failures_are_never_ambiguous(crm: JobberCrm, fake: FakeJobber) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    fake._mock.replace("POST", f"{fake.url}/api/graphql", body=requests.ReadTimeout("read"))
    with pytest.raises(TransientProviderError) as info:
        crm.find_task(follow_up(contact), MARKER)
    assert info.value.ambiguous is False


# -- limits and errors -----------------------------------------------------------------------


def test_throttled_waits_for_the_points_the_query_asked_for(crm: JobberCrm,
                                                           fake: FakeJobber) -> None:
    fake.throttle_next(requested=2000, available=500, restore=500)
    with pytest.raises(RateLimitedError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.retry_after == pytest.approx(3.0)  # (2000 - 500) / 500
    assert info.value.code == "THROTTLED" and info.value.status is None
    assert len(fake.calls) == 1


def test_throttled_wait_has_a_floor(crm: JobberCrm, fake: FakeJobber) -> None:
    fake.throttle_next(requested=60, available=50, restore=500)
    with pytest.raises(RateLimitedError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.retry_after == 1.0


def test_a_query_dearer_than_the_whole_bucket_is_permanent(crm: JobberCrm,
                                                          fake: FakeJobber) -> None:
    fake.throttle_next(requested=10001, available=10000)  # Jobber's documented example
    with pytest.raises(PermanentProviderError, match="costs more than the maximum"):
        crm.find_or_create_contact(CALLER)


def test_429_without_retry_after_waits_for_the_next_request_window(crm: JobberCrm,
                                                                  fake: FakeJobber) -> None:
    fake.fail_next(429, "Retry later\n", headers={"Content-Type": "text/plain"})
    with pytest.raises(RateLimitedError) as info:
        crm.find_or_create_contact(CALLER)
    assert 1.0 <= info.value.retry_after <= 300.0 and info.value.status == 429


def test_429_with_a_cost_block_uses_it(crm: JobberCrm, fake: FakeJobber) -> None:
    fake.fail_next(429, {"errors": [{"message": "Too Many Requests"}], "extensions": {"cost": {
        "requestedQueryCost": 900, "throttleStatus": {
            "maximumAvailable": 10000, "currentlyAvailable": 100, "restoreRate": 400}}}})
    with pytest.raises(RateLimitedError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.retry_after == pytest.approx(2.0)


def test_ddos_window_wait() -> None:
    assert ddos_window_wait(now=1_800_000_000.0) == 300.0 - (1_800_000_000 % 300)
    assert ddos_window_wait(now=299.9) == 1.0  # the floor
    assert ddos_window_wait(now=600.0) == 300.0


def test_5xx_on_a_query_is_transient_not_ambiguous(crm: JobberCrm, fake: FakeJobber) -> None:
    fake.fail_next(502, "<html>Bad gateway</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(TransientProviderError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.ambiguous is False and info.value.status == 502


def test_service_unavailable_graphql_error_is_transient(crm: JobberCrm, fake: FakeJobber) -> None:
    fake.fail_next(200, {"errors": [{"message": "Service temporarily unavailable"}]})
    with pytest.raises(TransientProviderError):
        crm.find_or_create_contact(CALLER)


def test_schema_errors_are_permanent_and_name_the_operation(crm: JobberCrm,
                                                            fake: FakeJobber) -> None:
    fake.fail_next(200, {"errors": [{"message": "Field 'phones' doesn't exist on type 'Client'",
                                     "extensions": {"code": "undefinedField"}}]})
    with pytest.raises(PermanentProviderError) as info:
        crm.find_or_create_contact(CALLER)
    assert str(info.value).startswith("Jobber ClientsByPhone failed: Field 'phones'")
    assert info.value.code == "undefinedField"


@pytest.mark.parametrize(("exc", "mutation", "ambiguous"), [
    (requests.ConnectTimeout("connect"), True, False),
    (requests.ConnectionError("refused"), True, False),
    (requests.ReadTimeout("read"), True, True),
    (requests.ReadTimeout("read"), False, False),
])
def test_transport_failures(fake: FakeJobber, exc: Exception, mutation: bool,
                            ambiguous: bool) -> None:
    crm = make_crm(fake)
    contact = crm.find_or_create_contact(CALLER).id if mutation else None
    fake._mock.replace("POST", f"{fake.url}/api/graphql", body=exc)
    with pytest.raises(TransientProviderError) as info:
        if contact:
            crm.log_call(CallLog(contact, CALLER, BUSINESS, CallOutcome.NO_ANSWER, WHEN, "t", "b"))
        else:
            crm.find_or_create_contact(CALLER)
    assert info.value.ambiguous is ambiguous


def test_error_messages_never_show_tokens_or_the_secret(fake: FakeJobber) -> None:
    store = fake.install()
    crm = make_crm(fake, store)
    leak = f"bad token {store.tokens.access_token} secret {CLIENT_SECRET}"
    fake.fail_next(400, message=leak)
    with pytest.raises(PermanentProviderError) as info:
        crm.find_or_create_contact(CALLER)
    for secret in (store.tokens.access_token, CLIENT_SECRET):
        assert secret not in str(info.value) and secret not in repr(info.value)
    assert "[redacted]" in str(info.value)
    assert CLIENT_SECRET not in repr(crm) and store.tokens.access_token not in repr(store.tokens)


def test_nothing_sensitive_is_logged(fake: FakeJobber, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = fake.install(ttl=10)  # renewed on first use
    crm = make_crm(fake, store)
    contact, lead = contact_and_request(crm)
    crm.log_message(MessageLog(contact, "inbound", "gate code 4321", WHEN, CALLER, BUSINESS,
                               deal_id=lead))
    fake.fail_next(400, message=f"bad phone {CALLER}")
    with pytest.raises(PermanentProviderError):
        crm.find_or_create_contact(CALLER)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "access token renewed" in logged
    for secret in (CLIENT_SECRET, CALLER, "4155550134", "gate code", *fake.refresh_tokens,
                   store.tokens.access_token, *fake.used_refresh_tokens):
        assert secret not in logged


# -- tokens ----------------------------------------------------------------------------------


def test_a_fresh_token_is_used_without_refreshing(crm: JobberCrm, fake: FakeJobber) -> None:
    crm.find_or_create_contact(CALLER)
    assert "POST /api/oauth/token" not in fake.routes()


def test_a_token_expiring_within_a_minute_is_renewed_first(fake: FakeJobber) -> None:
    store = fake.install(ttl=45)
    old = store.tokens
    crm = make_crm(fake, store)
    crm.find_or_create_contact(CALLER)
    assert fake.routes()[:2] == ["POST /api/oauth/token", "query ClientsByPhone"]
    token_call = fake.calls[0]
    assert token_call.form == {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                               "grant_type": "refresh_token", "refresh_token": old.refresh_token}
    assert store.saved and store.tokens.refresh_token != old.refresh_token
    assert fake.calls[1].headers["authorization"] == f"Bearer {store.tokens.access_token}"
    assert store.tokens.expires_at == jwt_expiry(store.tokens.access_token)


def test_renewal_keeps_what_the_connector_stored_with_the_tokens(fake: FakeJobber) -> None:
    issued = fake.issue(ttl=10)
    store = MemoryTokenStore(OAuthTokens(issued.access_token, issued.refresh_token,
                                         extra={"account_id": ACCOUNT_ID}))
    make_crm(fake, store).find_or_create_contact(CALLER)
    assert store.tokens.extra is not None
    assert store.tokens.extra["account_id"] == ACCOUNT_ID  # the connector's, untouched
    assert store.tokens.extra["jwt_account_id"] == 430114  # from the new JWT


def test_a_401_renews_once_and_resends_that_request_once(crm: JobberCrm, fake: FakeJobber) -> None:
    fake.expire_access_tokens()  # revoked early; the JWT exp still looks fine
    contact = crm.find_or_create_contact(CALLER)
    assert contact.created is True
    assert fake.routes() == ["query ClientsByPhone", "POST /api/oauth/token",
                             "query ClientsByPhone", "mutation ClientCreate"]


def test_a_second_401_is_an_auth_error_without_disconnecting(crm: JobberCrm,
                                                             fake: FakeJobber) -> None:
    fake.expire_access_tokens()
    fake.fail_next(401, {"error": "invalid_request"})  # the first attempt
    fake.fail_next(200, {"access_token": jwt({"exp": 4102444800}),  # the renewal
                         "refresh_token": "rt-new-0001"})
    fake.fail_next(401, {"error": "invalid_request"})  # the resent request
    store = crm.token_store
    assert isinstance(store, MemoryTokenStore)
    with pytest.raises(ProviderAuthError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.status == 401
    assert store.disconnected == [] and store.tokens.refresh_token == "rt-new-0001"
    assert len(fake.calls) == 3


def test_a_refused_refresh_marks_the_installation_disconnected(fake: FakeJobber) -> None:
    store = fake.install(ttl=10)
    before = store.tokens
    fake.revoke()
    with pytest.raises(ProviderAuthError) as info:
        make_crm(fake, store).find_or_create_contact(CALLER)
    assert info.value.code == "invalid_grant" and "not valid" in str(info.value)
    assert store.disconnected == ["Jobber refused the refresh token (invalid_grant)"]
    assert store.tokens is before and fake.routes() == ["POST /api/oauth/token"]


def test_a_refresh_that_fails_transiently_does_not_disconnect(fake: FakeJobber) -> None:
    store = fake.install(ttl=10)
    fake.fail_next(503, {"error": "temporarily_unavailable"})
    with pytest.raises(TransientProviderError) as info:
        make_crm(fake, store).find_or_create_contact(CALLER)
    assert info.value.ambiguous is True  # the token may have rotated
    assert store.disconnected == []


def test_the_disconnected_app_error_marks_the_installation(crm: JobberCrm, fake: FakeJobber) -> None:
    fake.connected = False
    store = crm.token_store
    assert isinstance(store, MemoryTokenStore)
    with pytest.raises(ProviderAuthError, match="disconnected this app"):
        crm.find_or_create_contact(CALLER)
    assert store.disconnected == ["the Jobber account disconnected the app"]
    assert "POST /api/oauth/token" not in fake.routes()


def test_the_disconnected_app_error_inside_a_200_is_handled_too(crm: JobberCrm,
                                                               fake: FakeJobber) -> None:
    fake.fail_next(200, {"errors": [{"message": "User has disconnected this app from their "
                                                "account. Please delete this token"}]})
    with pytest.raises(ProviderAuthError):
        crm.find_or_create_contact(CALLER)
    store = crm.token_store
    assert isinstance(store, MemoryTokenStore) and store.disconnected


def test_two_workers_refreshing_at_once_make_one_refresh(fake: FakeJobber) -> None:
    """Two adapters (two workers) share one installation whose access token is about to expire;
    the lock is the store's. Exactly one refresh is made and both use the new token."""
    fake.refresh_delay = 0.2  # a slow token endpoint keeps the second worker waiting on the lock
    store = fake.install(ttl=30)
    old = store.tokens
    workers = [make_crm(fake, store), make_crm(fake, store)]
    barrier = threading.Barrier(len(workers))
    results: list[Any] = []

    def work(crm: JobberCrm, number: str) -> None:
        barrier.wait()
        try:
            results.append(crm.find_or_create_contact(number))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=work, args=(w, n))
               for w, n in zip(workers, ("+14155550134", "+14155550177"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(not isinstance(r, Exception) for r in results), results
    assert fake.routes().count("POST /api/oauth/token") == 1
    assert fake.used_refresh_tokens == [old.refresh_token]  # never sent twice
    new = store.tokens
    assert new.refresh_token != old.refresh_token and len(store.saved) == 1
    graphql = [c for c in fake.calls if c.kind == "graphql"]
    assert graphql and all(c.headers["authorization"] == f"Bearer {new.access_token}"
                           for c in graphql)
    assert store.disconnected == []


def test_two_workers_hit_by_a_401_at_once_make_one_refresh(fake: FakeJobber) -> None:
    fake.refresh_delay = 0.2
    store = fake.install()
    fake.expire_access_tokens()
    workers = [make_crm(fake, store), make_crm(fake, store)]
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def work(crm: JobberCrm) -> None:
        barrier.wait()
        try:
            crm.list_users()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert fake.routes().count("POST /api/oauth/token") == 1
    assert len(fake.used_refresh_tokens) == 1


def test_without_the_lock_the_second_refresh_is_refused(fake: FakeJobber) -> None:
    """Why the lock matters: with a no-op lock both workers redeem the same refresh token and
    Jobber refuses the second redemption, disconnecting the installation."""

    class NoLock:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc: Any) -> None:
            return None

    fake.refresh_delay = 0.2
    store = fake.install(ttl=30, lock=NoLock())
    workers = [make_crm(fake, store), make_crm(fake, store)]
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def work(crm: JobberCrm) -> None:
        barrier.wait()
        try:
            outcomes.append(crm.account())
        except ProviderAuthError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert fake.routes().count("POST /api/oauth/token") == 2
    assert any(isinstance(o, ProviderAuthError) for o in outcomes)
    assert store.disconnected


# -- OAuth -----------------------------------------------------------------------------------


def test_authorize_url() -> None:
    url = oauth_flow.authorize_url(JobberCrm, CLIENT_ID,
                                   "https://tb.example.com/oauth/jobber/callback", "st8")
    assert url == (
        "https://api.getjobber.com/api/oauth/authorize?response_type=code"
        f"&client_id={CLIENT_ID}"
        "&redirect_uri=https%3A%2F%2Ftb.example.com%2Foauth%2Fjobber%2Fcallback&state=st8")


def test_authorize_and_token_urls_follow_the_api_base_url() -> None:
    base = "http://127.0.0.1:8123/jobber"
    assert oauth_flow.authorize_url(JobberCrm, CLIENT_ID, "https://tb/cb", "s",
                                    api_base_url=base).startswith(f"{base}/api/oauth/authorize?")
    assert oauth_flow.token_url(JobberCrm, base + "/") == f"{base}/api/oauth/token"
    assert oauth_flow.token_url(JobberCrm, None) == "https://api.getjobber.com/api/oauth/token"
    crm = JobberCrm({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, api_base_url=base)
    assert crm.token_url == f"{base}/api/oauth/token"


def exchange(fake: FakeJobber, code: str) -> OAuthTokens:
    return oauth_flow.exchange_code(JobberCrm, CLIENT_ID, CLIENT_SECRET, code,
                                    "https://tb.example.com/cb",
                                    token_url=f"{fake.url}/api/oauth/token")


def refresh(fake: FakeJobber, token: str, secret: str = CLIENT_SECRET) -> OAuthTokens:
    return oauth_flow.refresh(JobberCrm, CLIENT_ID, secret, token,
                              token_url=f"{fake.url}/api/oauth/token")


def test_exchange_code(fake: FakeJobber) -> None:
    tokens = exchange(fake, "good-code")
    (call,) = fake.calls
    assert call.form == {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                         "grant_type": "authorization_code", "code": "good-code",
                         "redirect_uri": "https://tb.example.com/cb"}
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert tokens.access_token in fake.access_tokens and tokens.refresh_token in fake.refresh_tokens
    assert tokens.expires_at == jwt_expiry(tokens.access_token)
    assert tokens.extra == {"jwt_account_id": 430114, "jwt_user_id": 1, "jwt_app_id": "app-1",
                            "jwt_scope": "read_clients write_clients"}
    assert "<hidden>" in repr(tokens)


def test_exchange_of_a_bad_code_is_an_auth_error(fake: FakeJobber) -> None:
    with pytest.raises(oauth_flow.TokenRefusedError) as info:
        exchange(fake, "used-code")
    assert info.value.code == "invalid_grant"
    assert "used-code" not in str(info.value)


def test_refresh_with_a_wrong_secret_is_a_configuration_auth_error(fake: FakeJobber) -> None:
    issued = fake.issue()
    with pytest.raises(ProviderAuthError) as info:
        refresh(fake, str(issued.refresh_token), secret="wrong-secret-123")
    assert not isinstance(info.value, oauth_flow.TokenRefusedError)
    assert info.value.code == "invalid_client" and "client id, secret" in str(info.value)


def test_refresh_parses_expires_at_when_the_token_is_not_a_jwt(fake: FakeJobber,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    fake.fail_next(200, {"access_token": "opaque", "refresh_token": "rt-2",
                         "expires_at": "2024-04-09 21:04:31 UTC",
                         "warning": "Refresh token rotation is off."})
    with caplog.at_level(logging.INFO):
        tokens = refresh(fake, "rt-1")
    assert tokens.expires_at == datetime(2024, 4, 9, 21, 4, 31, tzinfo=UTC)
    assert "Refresh token rotation is off." in caplog.text and "rt-1" not in caplog.text


def test_token_endpoint_429_is_rate_limited(fake: FakeJobber) -> None:
    fake.fail_next(429, "Retry later", headers={"Retry-After": "12"})
    with pytest.raises(RateLimitedError) as info:
        refresh(fake, "rt-1")
    assert info.value.retry_after == 12.0


def test_the_install_keys_the_installation_on_the_account(fake: FakeJobber) -> None:
    tokens, account = oauth_flow.install(
        JobberCrm, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, "good-code",
        "https://tb.example.com/cb", api_base_url=fake.url)
    assert account == ACCOUNT_ID and tokens.access_token in fake.access_tokens
    assert fake.routes() == ["POST /api/oauth/token", "query Account"]


def test_fetch_account_keys_the_installation(fake: FakeJobber) -> None:
    issued = fake.issue()
    account = oauth.fetch_account(requests.Session(), issued.access_token,
                                  graphql_url=f"{fake.url}/api/graphql",
                                  graphql_version=DEFAULT_GRAPHQL_VERSION)
    assert account == oauth.JobberAccount(id=ACCOUNT_ID, name="Acme Plumbing")
    assert fake.calls[0].headers["x-jobber-graphql-version"] == DEFAULT_GRAPHQL_VERSION


def test_app_disconnect_revokes_and_marks_the_installation(crm: JobberCrm,
                                                           fake: FakeJobber) -> None:
    store = crm.token_store
    assert isinstance(store, MemoryTokenStore)
    app_disconnect(crm)
    assert fake.routes() == ["mutation AppDisconnect"]
    assert fake.access_tokens == set() and store.disconnected == ["app disconnected from textback"]
    app_disconnect(crm)  # already gone at Jobber: still fine
    assert store.disconnected[-1] == "app disconnected from textback"


# -- webhooks --------------------------------------------------------------------------------


def fixture_body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_app_disconnect_webhook_is_verified_and_parsed(crm: JobberCrm) -> None:
    request = signed(fixture_body("webhook_app_disconnect.json"))
    crm.verify_request(request)
    event = read_event(request)
    assert (event.topic, event.account_id, event.app_id) == (
        "APP_DISCONNECT", ACCOUNT_ID, "3ef22a50-072d-430c-a78f-b7646657560b")
    assert event.occurred_at == datetime(2026, 9, 1, 14, 31, 36, tzinfo=UTC)
    assert event.dedupe_key == (
        f"jobber:APP_DISCONNECT:{ACCOUNT_ID}:{ACCOUNT_ID}:2026-09-01T08:31:36-06:00")


def test_redeliveries_share_a_dedupe_key_and_other_events_do_not() -> None:
    body = fixture_body("webhook_app_disconnect.json")
    assert read_event(signed(body)).dedupe_key == read_event(signed(body)).dedupe_key
    later = body.replace(b"08:31:36", b"08:31:37")
    assert read_event(signed(later)).dedupe_key != read_event(signed(body)).dedupe_key


def test_legacy_occured_at_spelling_is_read(crm: JobberCrm) -> None:
    request = signed(fixture_body("webhook_client_create_legacy.json"))
    crm.verify_request(request)
    event = read_event(request)
    assert event.topic == "CLIENT_CREATE" and event.item_id == gid("Client", 123)
    assert event.occurred_at == datetime(2021, 8, 12, 22, 31, 36, tzinfo=UTC)


def test_form_encoded_webhooks_of_older_apps_are_read(crm: JobberCrm) -> None:
    body = ("data%5BwebHookEvent%5D%5Btopic%5D=APP_DISCONNECT"
            f"&data%5BwebHookEvent%5D%5BaccountId%5D={ACCOUNT_ID.replace('=', '%3D')}"
            "&data%5BwebHookEvent%5D%5BitemId%5D=1"
            "&data%5BwebHookEvent%5D%5BoccuredAt%5D=2021-08-12T16%3A31%3A36-06%3A00").encode()
    request = signed(body, **{"Content-Type": "application/x-www-form-urlencoded"})
    crm.verify_request(request)
    event = read_event(request)
    assert (event.topic, event.account_id, event.item_id) == ("APP_DISCONNECT", ACCOUNT_ID, "1")


def test_the_signature_is_over_the_raw_bytes(crm: JobberCrm) -> None:
    body = fixture_body("webhook_app_disconnect.json")
    reencoded = json.dumps(json.loads(body)).encode()  # same JSON, other spacing
    request = signed(body)
    moved = WebhookRequest.build(url=WEBHOOK_URL, headers=dict(request.headers.items()),
                                 body=reencoded)
    with pytest.raises(WebhookVerificationError):
        crm.verify_request(moved)


@pytest.mark.parametrize("body", [b"not json", b'{"data": {}}',
                                  b'{"data": {"webHookEvent": {"topic": "APP_DISCONNECT"}}}'])
def test_malformed_webhooks(body: bytes) -> None:
    with pytest.raises(MalformedWebhookError):
        read_event(signed(body))


# -- API call budget (the benchmark counts these) --------------------------------------------


def sync_missed_call(crm: JobberCrm, number: str, *, contact: str | None = None,
                     lead: str | None = None) -> tuple[str, str]:
    """What ``connector.jobs.crm_sync`` does for one missed call; known ids skip their lookups."""
    if contact is None:
        contact = crm.find_or_create_contact(number).id
    lead = crm.set_pipeline_stage(LeadSpec(contact, "Missed call", None, None), lead)
    crm.log_call(CallLog(contact, number, BUSINESS, CallOutcome.NO_ANSWER, WHEN, "t", "b",
                         deal_id=lead))
    crm.log_message(MessageLog(contact, "outbound", "Sorry", WHEN, BUSINESS, number, deal_id=lead))
    crm.create_task(TaskSpec(contact, "Call back", "b", WHEN + timedelta(minutes=15),
                             deal_id=lead))
    return contact, lead


def test_documented_api_calls_match_the_requests_made(crm: JobberCrm, fake: FakeJobber) -> None:
    tail = [*API_CALLS["log_call"], *API_CALLS["log_message"], *API_CALLS["create_task"]]
    contact, lead = sync_missed_call(crm, CALLER)
    assert fake.routes() == [*API_CALLS["find_or_create_contact:new"],
                             *API_CALLS["set_pipeline_stage:new"], *tail]
    assert len(fake.routes()) == api_calls_per_missed_call("new") == 6

    fake.add_client("(415) 555-0188")
    fake.clear_calls()
    sync_missed_call(crm, "+14155550188")
    assert len(fake.routes()) == api_calls_per_missed_call("in_crm") == 5

    fake.clear_calls()
    sync_missed_call(crm, CALLER, contact=contact, lead=lead)
    assert fake.routes() == [*API_CALLS["set_pipeline_stage:open"], *tail]
    assert len(fake.routes()) == api_calls_per_missed_call("linked") == 4
    with pytest.raises(ValueError):
        api_calls_per_missed_call("returning")


def test_declared_attributes() -> None:
    assert JobberCrm.name == "jobber" and JobberCrm.default_api_base_url == "https://api.getjobber.com"
    assert "task_queues" not in JobberCrm.capabilities and "pipeline" in JobberCrm.capabilities
    assert set(JobberCrm.required_scopes) >= {"read_clients", "write_clients", "write_requests",
                                              "write_scheduled_items", "read_users"}


def test_a_task_marked_complete_in_jobber_is_reported(crm: JobberCrm, fake: FakeJobber) -> None:
    contact, _ = contact_and_request(crm)
    task = crm.create_task(TaskSpec(contact, "Call back", "b", WHEN, owner_id=OWNER))
    assert crm.task_completed(task) is False
    fake.tasks[task]["isComplete"] = True  # a rep ticks it off in Jobber
    assert crm.task_completed(task) is True


def test_setup_calls_without_an_installation_say_to_connect() -> None:
    crm = JobberCrm({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    with pytest.raises(CredentialsRejectedError, match="not connected yet"):
        crm.check_connection()
    with pytest.raises(CredentialsRejectedError, match="not connected yet"):
        crm.list_choices()


def test_a_connection_check_names_the_scopes_the_installation_lacks() -> None:
    with FakeJobber(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        check = make_crm(fake).check_connection()
    assert check.scopes == ("read_clients", "write_clients")
    assert {p.action for p in check.allowed} == {"find and create clients, add notes"}
    assert "create requests" in {p.action for p in check.refused}
