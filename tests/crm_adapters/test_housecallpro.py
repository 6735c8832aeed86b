"""Housecall Pro adapter: the CRM contract suite (API key and OAuth) and Housecall Pro's specifics.

HTTP goes to :class:`FakeHcp`, an in-memory Housecall Pro (customers, leads, pipeline statuses,
employees, the OAuth token endpoint) behind ``responses``. It behaves as the public API documents
(see ``tests/fixtures/housecallpro/README.md``): ``q`` searches names, email, address and the
mobile number only, the ``Lead`` it returns carries no note, and pipeline statuses refuse to move
backwards. It can also stand for a worker killed before or after a chosen request
(:class:`Killed`), and for an answer lost after Housecall Pro did the work.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from connector.kernel.errors import (
    ConfigurationError,
    MalformedWebhookError,
    PermanentProviderError,
    ProviderAuthError,
    RateLimitedError,
    TransientProviderError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.events import CallOutcome
from connector.kernel.http import WebhookRequest
from connector.kernel.phone import to_e164
from crm_adapters import oauth_flow
from crm_adapters.base import (
    CallLog,
    CrmEvent,
    LeadSpec,
    LeadStageChanged,
    MessageLog,
    OAuthTokens,
    TaskSpec,
)
from crm_adapters.catalog import Choice, CrmChoices
from crm_adapters.housecallpro import API_CALLS, HousecallProCrm, webhooks
from crm_adapters.housecallpro.errors import error_text
from tests.contracts.crm_contract import CrmContract
from tests.contracts.crm_setup_contract import CrmSetupContract
from tests.transport_errors import dropped_connection, refused_connection

BASE = "https://hcp.test"
API_KEY = "hcp-key-3c9e1f7a-test-0042"
CLIENT_ID = "hcp-client-id-test-77"
CLIENT_SECRET = "hcp-client-secret-5b8d-test"
SIGNING_SECRET = "hcp-signing-secret-1e4f-test"
ACCESS = "hcp-access-token-7f2a-test"
REFRESH = "hcp-refresh-token-9c1b-test"
WEBHOOK_URL = "https://textback.example.com/webhooks/crm/housecallpro"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "housecallpro"
BUSINESS = "+14155550100"
CALLER = "+14155550134"
EMPLOYEE = "pro_6a7b8c9d"
WHEN = datetime(2026, 9, 1, 15, 4, 5, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value or ""))


class Killed(BaseException):
    """Stands for kill -9 of the worker at a chosen request (:attr:`FakeHcp.crash`)."""


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    headers: Mapping[str, str]

    @property
    def route(self) -> str:
        path = re.sub(r"^/customers/[^/]+", "/customers/{customer_id}", self.path)
        return f"{self.method} {re.sub(r'^/leads/[^/]+', '/leads/{id}', path)}"


class FakeHcp:
    """An in-memory Housecall Pro answering through ``responses``."""

    def __init__(self, mock: responses.RequestsMock, *, authorization: str = f"Token {API_KEY}",
                 statuses: str = "pipeline_statuses_lead.json") -> None:
        self.authorization = authorization
        self.customers: dict[str, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, str] = {}  # lead note: written at create, never returned
        self.statuses: list[dict[str, Any]] = fixture(statuses)["statuses"]
        self.employees: list[dict[str, Any]] = fixture("employees.json")["employees"]
        #: None: the endpoint answers 404, as for a company whose API lacks it.
        self.lead_sources: list[dict[str, Any]] | None = [
            {"id": "ls_1", "name": "Google"}, {"id": "ls_2", "name": "Missed call"},
        ]
        self.q_phone_fields: tuple[str, ...] = ("mobile_number",)  # as documented
        self.lead_filters_ignored = False  # True: GET /leads answers every lead of the company
        self.page_cap = 100  # the largest page_size the fake honours
        self.requests: list[Seen] = []
        #: Failures to answer with: (status, body, headers, the route it waits for or None).
        self.failures: list[tuple[int, Any, dict[str, str], str | None]] = []
        #: Routes done, then answered with a read timeout (once each): an answer lost.
        self.lost_answers: list[str] = []
        #: ("before" or "after", route): the worker dies before sending that request, or once
        #: Housecall Pro has done it (:class:`Killed`, once).
        self.crash: tuple[str, str] | None = None
        self.backward_moves = 0
        self.refresh_token = REFRESH
        self._ids = itertools.count(1)
        pattern = re.compile(re.escape(BASE) + r"/.*")
        for method in (responses.GET, responses.POST, responses.PUT):
            mock.add_callback(method, pattern, callback=self._handle)

    # -- test helpers ----------------------------------------------------------------------

    def add_customer(self, **fields: Any) -> str:
        n = next(self._ids)
        cid = fields.pop("id", f"cus_{n:016x}")
        stamp = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)).isoformat()
        record = {"id": cid, "first_name": None, "last_name": None, "email": None,
                  "mobile_number": None, "home_number": None, "work_number": None,
                  "notes": None, "tags": [], "addresses": [], "created_at": stamp,
                  "updated_at": stamp, **fields}
        self.customers[cid] = record
        return cid

    def add_lead(self, customer_id: str, *, tags: Sequence[str] = ("textback",),
                 status: str = "open") -> str:
        """A lead made outside the adapter (by a rep, or by an earlier attempt)."""
        lid = f"lea_{next(self._ids):016x}"
        self.leads[lid] = {
            "id": lid, "number": 1000 + len(self.leads), "status": status,
            "customer": {"id": customer_id}, "tags": list(tags), "lead_source": None,
            "assigned_employee": None,
            "pipeline_status": self.statuses[0]["name"] if self.statuses else None,
        }
        return lid

    def load_customers(self, name: str) -> list[str]:
        return [self.add_customer(**c) for c in fixture(name)["customers"]]

    def with_phone(self, e164: str) -> list[str]:
        fields = ("mobile_number", "home_number", "work_number")
        return [c["id"] for c in self.customers.values()
                if any(to_e164(str(c.get(f) or "")) == e164 for f in fields)]

    def fail_next(self, status: int, message: str | None = None,
                  retry_after: str | None = None, *, route: str | None = None) -> None:
        """Fail the next request (the next one to ``route`` when given) with ``status``."""
        text = message or f"failure {status}"
        body: Any = {
            401: {"message": "Unauthorized"},
            400: {"message": text, "attr": ["mobile_number"]},
            404: {"error": {"message": text}},
            422: {"errors": {"base": [text]}},
        }.get(status, {"error": {"message": text}} if status < 500 else f"<h1>{text}</h1>")
        headers = {"Retry-After": retry_after} if retry_after else {}
        self.failures.append((status, body, headers, route))

    def routes(self) -> list[str]:
        return [r.route for r in self.requests]

    def bodies(self, route: str) -> list[Any]:
        return [r.json for r in self.requests if r.route == route]

    # -- the API ---------------------------------------------------------------------------

    def _handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url)
        body = json.loads(request.body) if request.body else None
        seen = Seen(request.method, url.path, parse_qs(url.query), body, dict(request.headers))
        if self.crash == ("before", seen.route):
            self.crash = None
            raise Killed
        self.requests.append(seen)
        failure = next((f for f in self.failures if f[3] in (None, seen.route)), None)
        if failure is not None:
            self.failures.remove(failure)
            status, payload, headers, _ = failure
            text = payload if isinstance(payload, str) else json.dumps(payload)
            return status, headers, text
        if url.path == "/oauth/token":
            return self._token(body or {})
        if request.headers.get("Authorization") != self.authorization:
            return 401, {}, json.dumps(fixture("error_401.json"))
        status, answer = self._route(seen)
        if self.crash == ("after", seen.route):
            self.crash = None
            raise Killed
        if seen.route in self.lost_answers:  # done; the answer never reaches us
            self.lost_answers.remove(seen.route)
            raise requests.ReadTimeout("read timed out")
        return status, {"Content-Type": "application/json"}, json.dumps(answer)

    def _page(self, key: str, items: list[dict[str, Any]], seen: Seen) -> dict[str, Any]:
        page = int(seen.query.get("page", ["1"])[0])
        size = min(int(seen.query.get("page_size", ["10"])[0]), self.page_cap)
        total = (len(items) + size - 1) // size
        return {"page": page, "page_size": size, "total_pages": total,
                "total_items": len(items), key: items[(page - 1) * size: page * size]}

    def _route(self, seen: Seen) -> tuple[int, Any]:
        path, method = seen.path, seen.method
        if path == "/customers":
            return (200, self._search(seen)) if method == "GET" else self._create_customer(seen)
        if m := re.fullmatch(r"/customers/([^/]+)", path):
            customer = self.customers.get(m.group(1))
            if customer is None:
                return 404, fixture("error_404_object.json")
            if method == "PUT":
                customer.update(seen.json or {})
            return 200, customer
        if path == "/leads":
            return self._create_lead(seen) if method == "POST" else (200, self._leads(seen))
        if m := re.fullmatch(r"/leads/([^/]+)", path):
            lead = self.leads.get(m.group(1))
            return (200, lead) if lead else (404, {"error": {"message": "Lead not found"}})
        if path == "/pipeline/statuses":
            return self._move(seen) if method == "PUT" else (200, self._page(
                "statuses", self.statuses, seen))
        if path == "/employees":
            return 200, self._page("employees", self.employees, seen)
        if path == "/company":
            return 200, {"id": "cmp_1b2c3d4e", "name": "Acme Plumbing", "phone_number": None}
        if path == "/lead_sources" and self.lead_sources is not None:
            return 200, self._page("lead_sources", self.lead_sources, seen)
        return 404, {"error": {"message": "Not found"}}

    def _search(self, seen: Seen) -> dict[str, Any]:
        q = seen.query.get("q", [""])[0]

        def hit(c: dict[str, Any]) -> bool:
            if digits(q) and any(digits(q) in digits(c.get(f)) for f in self.q_phone_fields):
                return True
            text = " ".join(str(c.get(k) or "") for k in ("first_name", "last_name", "email"))
            text += " ".join(str(a.get("street")) for a in c.get("addresses") or [])
            return bool(q) and q.lower() in text.lower()

        if "q" not in seen.query:  # no search term: the company's customers, newest first
            return self._page("customers", sorted(self.customers.values(),
                                                  key=lambda c: c["created_at"])[::-1], seen)

        found = sorted((c for c in self.customers.values() if hit(c)),
                       key=lambda c: c["created_at"])
        if seen.query.get("sort_direction", ["desc"])[0] == "desc":
            found.reverse()
        return self._page("customers", found, seen)

    def _create_customer(self, seen: Seen) -> tuple[int, Any]:
        body = dict(seen.json or {})
        keys = ("first_name", "last_name", "email", "mobile_number", "home_number", "work_number")
        if not any(body.get(k) for k in keys):
            return 400, fixture("error_400_attr.json")
        return 201, self.customers[self.add_customer(**body)]

    def _create_lead(self, seen: Seen) -> tuple[int, Any]:
        body = seen.json or {}
        customer = self.customers.get(body.get("customer_id", ""))
        employee = next((e for e in self.employees if e["id"] == body.get(
            "assigned_employee_id")), None)
        if customer is None or (body.get("assigned_employee_id") and employee is None):
            return 422, fixture("error_422_fields.json")
        lid = f"lea_{next(self._ids):016x}"
        keep = ("id", "first_name", "last_name", "mobile_number", "home_number", "work_number")
        self.leads[lid] = {
            "id": lid, "number": 1000 + len(self.leads), "status": "open",
            "customer": {k: customer.get(k) for k in keep}, "tags": body.get("tags", []),
            "lead_source": body.get("lead_source"), "assigned_employee": employee,
            "pipeline_status": self.statuses[0]["name"] if self.statuses else None,
        }
        self.notes[lid] = body.get("note", "")
        return 201, self.leads[lid]

    def _leads(self, seen: Seen) -> dict[str, Any]:
        found = [lead for lead in self.leads.values() if self.lead_filters_ignored or (
                 lead["customer"]["id"] == seen.query.get("customer_id", [None])[0]
                 and lead["status"] == seen.query.get("status", [lead["status"]])[0])]
        if seen.query.get("sort_direction", ["asc"])[0] == "desc":  # made last, listed first
            found.reverse()
        return self._page("leads", found, seen)

    def _move(self, seen: Seen) -> tuple[int, Any]:
        body = seen.json or {}
        order = [s["id"] for s in self.statuses]
        lead = self.leads.get(body.get("resource_id", ""))
        if lead is None or body.get("status_id") not in order:
            return 404, fixture("error_404_string.json")
        names = [s["name"] for s in self.statuses]
        if names.index(lead["pipeline_status"]) > order.index(body["status_id"]):
            self.backward_moves += 1
            return 422, {"error": "Pipeline status can only move forward"}
        target = self.statuses[order.index(body["status_id"])]
        lead["pipeline_status"] = target["name"]
        return 200, {"status_id": target["id"], "resource_id": lead["id"],
                     "resource_type": "lead", "name": target["name"]}

    def _token(self, body: Mapping[str, Any]) -> tuple[int, dict[str, str], str]:
        good = body.get("client_id") == CLIENT_ID and body.get("client_secret") == CLIENT_SECRET
        if good and body.get("grant_type") == "refresh_token" and \
                body.get("refresh_token") == self.refresh_token:
            n = next(self._ids)
            self.refresh_token = f"{REFRESH}-{n}"
            self.authorization = f"Bearer {ACCESS}-{n}"
            answer = {"access_token": f"{ACCESS}-{n}", "token_type": "Bearer",
                      "expires_in": 2592000, "refresh_token": self.refresh_token}
            return 200, {}, json.dumps(answer)
        bad = {"error": "invalid_grant", "error_description": f"grant {REFRESH} is invalid"}
        return 400, {}, json.dumps(bad)


class MemoryTokenStore:
    """The connector's token store, in memory."""

    def __init__(self, tokens: OAuthTokens) -> None:
        self.tokens = tokens
        self.saved: list[OAuthTokens] = []
        self.disconnected: str | None = None
        self._lock = threading.Lock()

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def load(self) -> OAuthTokens:
        return self.tokens

    def save(self, tokens: OAuthTokens) -> None:
        self.tokens = tokens
        self.saved.append(tokens)

    def mark_disconnected(self, reason: str) -> None:
        self.disconnected = reason


def fresh_tokens(expires_in: timedelta = timedelta(days=20)) -> OAuthTokens:
    return OAuthTokens(ACCESS, REFRESH, datetime.now(UTC) + expires_in)


def sign(body: bytes, *, secret: str = SIGNING_SECRET, age_seconds: float = 0.0,
         millis: bool = False) -> WebhookRequest:
    """A webhook signed as Housecall Pro signs: hex HMAC-SHA256 of "{timestamp}.{body}"."""
    moment = time.time() - age_seconds
    stamp = str(int(moment * 1000)) if millis else str(int(moment))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"Api-Timestamp": stamp, "Api-Signature": mac, "Content-Type": "application/json"}
    return WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=body)


# -- the contract, with an API key and with OAuth ----------------------------------------------


class TestHousecallProContract(CrmContract, CrmSetupContract):
    adapter_class = HousecallProCrm
    expected_account = "Housecall Pro company Acme Plumbing"

    def seed_choices(self, backend: FakeHcp) -> CrmChoices:
        return CrmChoices(
            owners=tuple(
                Choice(e["id"], f"{e['first_name']} {e['last_name']} ({e['email']})")
                for e in backend.employees
            ),
            lead_sources=(Choice("Google", "Google"), Choice("Missed call", "Missed call")),
            pipeline_statuses=tuple(Choice(s["id"], s["name"]) for s in backend.statuses),
        )
    secret_credentials = frozenset({"api_key", "client_secret", "webhook_signing_secret"})
    lead_pipeline = "lead"
    lead_stage = "Contacted"
    webhook_url = WEBHOOK_URL

    @pytest.fixture
    def backend(self) -> Iterator[FakeHcp]:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            yield FakeHcp(mock)

    def credentials(self) -> Mapping[str, Any]:
        return {"api_key": API_KEY, "webhook_signing_secret": SIGNING_SECRET}

    def make_adapter(self, backend: FakeHcp) -> HousecallProCrm:
        return HousecallProCrm(self.credentials(), api_base_url=BASE, lead_source="Missed call")

    def fail_next(self, backend: FakeHcp, status: int, *, message: str | None = None,
                  retry_after: str | None = None) -> None:
        backend.fail_next(status, message, retry_after)

    def contacts_with_phone(self, backend: FakeHcp, e164: str) -> Sequence[str]:
        return backend.with_phone(e164)

    def add_contact(self, backend: FakeHcp, phone: str, first_name: str | None = None,
                    last_name: str | None = None) -> str:
        return backend.add_customer(mobile_number=phone, first_name=first_name,
                                    last_name=last_name)

    def task_text(self, backend: FakeHcp, task_id: str) -> str:
        customer = backend.leads[task_id]["customer"]["id"]
        return f"{backend.notes[task_id]}\n{backend.customers[customer]['notes'] or ''}"

    def close_lead(self, backend: FakeHcp, lead_id: str) -> None:
        backend.leads[lead_id]["status"] = "lost"

    def signed_webhook(self, body: bytes, *, url: str, age_seconds: float = 0.0,
                       wrong_secret: bool = False) -> WebhookRequest | None:
        secret = "hcp-another-signing-secret" if wrong_secret else SIGNING_SECRET
        return sign(body, secret=secret, age_seconds=age_seconds)

    def signature_headers(self) -> tuple[str, ...]:
        return ("Api-Signature", "Api-Timestamp")

    def requests_made(self, backend: FakeHcp) -> int:
        return len(backend.requests)

    def webhook_samples(self) -> Sequence[tuple[bytes, Sequence[CrmEvent]]]:
        converted = {"event": "lead.converted", "company_id": "cmp_1",
                     "lead": {"id": "lea_9", "updated_at": "2026-09-01T15:10:02Z"}}
        return [
            (json.dumps(converted).encode(), [LeadStageChanged(
                event_id="housecallpro:lead.converted:lea_9:2026-09-01T15:10:02Z",
                lead_id="lea_9", stage="converted")]),
            *[(json.dumps(fixture(name)).encode(), []) for name in (
                "webhook_lead_created.json", "webhook_customer_updated.json",
                "webhook_job_created.json")],
        ]


class TestHousecallProOAuthContract(TestHousecallProContract):
    @pytest.fixture
    def backend(self) -> Iterator[FakeHcp]:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            yield FakeHcp(mock, authorization=f"Bearer {ACCESS}")

    def credentials(self) -> Mapping[str, Any]:
        return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "webhook_signing_secret": SIGNING_SECRET}

    def make_adapter(self, backend: FakeHcp) -> HousecallProCrm:
        return HousecallProCrm(self.credentials(), api_base_url=BASE,
                               token_store=MemoryTokenStore(fresh_tokens()))


# -- fixtures for the specifics ----------------------------------------------------------------


@pytest.fixture
def hcp() -> Iterator[FakeHcp]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeHcp(mock)


def make_crm(**kwargs: Any) -> HousecallProCrm:
    creds = kwargs.pop("credentials", {"api_key": API_KEY, "webhook_signing_secret": SIGNING_SECRET})
    return HousecallProCrm(creds, api_base_url=kwargs.pop("api_base_url", BASE), **kwargs)


@pytest.fixture
def crm() -> HousecallProCrm:
    return make_crm(lead_source="Missed call", notifications_enabled=False)


def lead_spec(contact: str, stage: str | None = "Contacted") -> LeadSpec:
    return LeadSpec(contact, f"Missed call {CALLER}", "lead", stage, owner_id=EMPLOYEE)


def call_log(contact: str, lead: str | None = None) -> CallLog:
    return CallLog(contact, CALLER, BUSINESS, CallOutcome.NO_ANSWER, WHEN,
                   "Missed call (rang out with no answer)", "Texted back at once.", deal_id=lead)


# -- find or create by phone -------------------------------------------------------------------


def test_mobile_match_is_found_with_one_search(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    (ana,) = hcp.load_customers("customers_mobile_match.json")
    contact = crm.find_or_create_contact(CALLER)
    assert (contact.id, contact.created, contact.first_name, contact.last_name) == (
        ana, False, "Ana", "Ruiz")
    assert hcp.routes() == ["GET /customers"]
    query = hcp.requests[0].query
    assert query["q"] == ["4155550134"]
    assert (query["sort_by"], query["sort_direction"], query["page"]) == (
        ["created_at"], ["asc"], ["1"])


def test_home_number_match_is_found_by_comparing(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    # If q also searches home numbers (Housecall Pro documents mobile only), what comes back is
    # compared field by field: the older hit carries the digits in its email and is refused.
    hcp.q_phone_fields = ("mobile_number", "home_number", "work_number")
    email_hit, home = hcp.load_customers("customers_home_match.json")
    contact = crm.find_or_create_contact(CALLER)
    assert (contact.id, contact.created) == (home, False)
    assert contact.id != email_hit
    assert hcp.routes() == ["GET /customers"]


def test_no_match_creates_the_customer_with_the_account_settings(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    hcp.load_customers("customers_home_match.json")  # only the email hit comes back for q
    contact = crm.find_or_create_contact("(415) 555-0134", name="Jane van Dyke")
    assert contact.created is True and contact.phone == CALLER
    assert hcp.routes() == ["GET /customers", "POST /customers"]
    assert hcp.bodies("POST /customers") == [{
        "mobile_number": "4155550134", "first_name": "Jane", "last_name": "van Dyke",
        "notifications_enabled": False, "lead_source": "Missed call",
    }]
    assert crm.find_or_create_contact(CALLER).id == contact.id  # found by mobile next time


def test_documented_payloads_served_verbatim() -> None:
    # No fake logic: the fixture files exactly as the API would send them.
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, f"{BASE}/customers", json=fixture("customers_empty.json"))
        mock.add(responses.POST, f"{BASE}/customers", json=fixture("customer_created.json"),
                 status=201)
        mock.add(responses.GET, f"{BASE}/pipeline/statuses",
                 json=fixture("pipeline_statuses_lead.json"))
        mock.add(responses.GET, f"{BASE}/leads", json={**fixture("customers_empty.json"),
                                                       "leads": []})
        mock.add(responses.POST, f"{BASE}/leads", json=fixture("lead.json"), status=201)
        mock.add(responses.PUT, f"{BASE}/pipeline/statuses", json={
            "status_id": "kcs_02contacted000000", "resource_id": "lea_2e3f4a5b6c7d8e9f",
            "resource_type": "lead", "name": "Contacted"})
        crm = make_crm(lead_source="Missed call")
        contact = crm.find_or_create_contact(CALLER, name="Jane Doe")
        assert (contact.id, contact.created) == ("cus_4d5e6f7a8b9c0d1e", True)
        lead = crm.set_pipeline_stage(lead_spec(contact.id))
        assert lead == "lea_2e3f4a5b6c7d8e9f"
        assert crm.pipeline_decision(lead).status == "moved"  # type: ignore[union-attr]


def test_home_only_customer_is_not_returned_by_a_mobile_only_search(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    # The documented limitation: q does not search home numbers, so a new customer is made.
    hcp.add_customer(first_name="Sam", home_number="415.555.0134", mobile_number="6505550111")
    assert crm.find_or_create_contact(CALLER).created is True


def test_unset_settings_leave_housecall_pros_defaults(hcp: FakeHcp) -> None:
    make_crm().find_or_create_contact(CALLER)
    assert hcp.bodies("POST /customers") == [{"mobile_number": "4155550134"}]


def test_search_pages_until_the_first_match(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    for n in range(60):  # older customers whose email holds the digits: q hits, numbers differ
        hcp.add_customer(email=f"4155550134.{n}@example.com", mobile_number="2125550100")
    late = hcp.add_customer(mobile_number="415 555 0134")
    assert crm.find_or_create_contact(CALLER).id == late
    assert [r.query["page"] for r in hcp.requests] == [["1"], ["2"]]


def test_simultaneous_calls_in_one_worker_make_one_customer(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    found: list[Any] = []
    threads = [threading.Thread(target=lambda: found.append(crm.find_or_create_contact(CALLER)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({c.id for c in found}) == 1 and hcp.with_phone(CALLER) == [found[0].id]
    assert sorted(c.created for c in found) == [False, False, False, True]


def test_a_capped_page_size_still_pages(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    hcp.page_cap = 20
    for n in range(30):
        hcp.add_customer(email=f"4155550134.{n}@example.com", mobile_number="2125550100")
    late = hcp.add_customer(mobile_number="4155550134")
    assert crm.find_or_create_contact(CALLER).id == late
    assert len(hcp.requests) == 2


def test_foreign_number_keeps_its_country_code(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    hcp.add_customer(mobile_number="+1 207-555-0134")
    london = crm.find_or_create_contact("+442075550134")
    assert london.created is True
    assert hcp.requests[0].query["q"] == ["2075550134"]
    assert hcp.bodies("POST /customers")[0]["mobile_number"] == "+442075550134"


# -- follow-up lead and forward-only pipeline ----------------------------------------------------


def test_one_lead_serves_the_pipeline_and_the_follow_up(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    lead = crm.set_pipeline_stage(lead_spec(contact))
    (body,) = hcp.bodies("POST /leads")
    assert body == {"customer_id": contact, "assigned_employee_id": EMPLOYEE,
                    "lead_source": "Missed call", "tags": ["textback"],
                    "note": body["note"]} and body["note"].startswith(f"Missed call {CALLER}")
    assert hcp.bodies("PUT /pipeline/statuses") == [
        {"resource_type": "lead", "resource_id": lead, "status_id": "kcs_02contacted000000"}]
    task = crm.create_task(TaskSpec(contact, "Call back", "Missed at 9:02", WHEN, EMPLOYEE,
                                    deal_id=lead))
    assert task == lead and len(hcp.leads) == 1
    crm.append_to_task(task, "Customer replied: tomorrow is fine")
    notes = hcp.customers[contact]["notes"]
    assert f"Follow-up (lead {lead}, due 2026-09-01 15:04 UTC): Call back" in notes
    assert notes.index("Missed at 9:02") < notes.index("Customer replied: tomorrow is fine")
    assert crm.pipeline_decision(lead) is not None
    assert crm.pipeline_decision(lead).status == "moved"  # type: ignore[union-attr]


def test_statuses_only_move_forward(
    crm: HousecallProCrm, hcp: FakeHcp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    contact = crm.find_or_create_contact(CALLER).id
    lead = crm.set_pipeline_stage(lead_spec(contact))
    hcp.leads[lead]["pipeline_status"] = "Estimate scheduled"  # a rep moved it on
    hcp.requests.clear()
    assert crm.set_pipeline_stage(lead_spec(contact), existing_id=lead) == lead
    assert hcp.routes() == ["GET /leads/{id}"]  # no PUT: never tried backwards
    assert hcp.backward_moves == 0 and hcp.leads[lead]["pipeline_status"] == "Estimate scheduled"
    decision = crm.pipeline_decision(lead)
    assert decision is not None and (decision.lead, decision.status) == ("reused", "not_moved_back")
    assert "only move forward" in decision.reason and "Estimate scheduled" in decision.reason
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not moved back from status order 2 to 1" in logged
    assert "4155550134" not in logged and CALLER not in logged
    # Forward is fine: a later mapping moves it on, by id or by name.
    crm.set_pipeline_stage(lead_spec(contact, "kcs_04won000000000000"), existing_id=lead)
    assert hcp.leads[lead]["pipeline_status"] == "Won"


def test_lost_link_finds_our_open_lead(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    lead = crm.set_pipeline_stage(lead_spec(contact))
    hcp.requests.clear()  # a crash lost our link: no existing_id this time
    assert crm.set_pipeline_stage(lead_spec(contact)) == lead
    assert hcp.routes() == ["GET /leads"] and len(hcp.leads) == 1
    assert hcp.requests[0].query["customer_id"] == [contact]


def test_unknown_stage_is_a_configuration_error_before_any_write(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    with pytest.raises(ConfigurationError) as info:
        crm.set_pipeline_stage(lead_spec(contact, "Qualified"))
    assert info.value.field == "crm.mapping.stage" and "Contacted" in str(info.value)
    assert hcp.leads == {}


def test_company_without_a_pipeline_still_gets_the_lead() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        hcp = FakeHcp(mock, statuses="pipeline_statuses_none.json")
        crm = make_crm()
        contact = crm.find_or_create_contact(CALLER).id
        lead = crm.set_pipeline_stage(lead_spec(contact))
        assert lead in hcp.leads and "PUT /pipeline/statuses" not in hcp.routes()
        assert crm.pipeline_decision(lead).status == "no_pipeline"  # type: ignore[union-attr]


def test_setup_listings(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    employees = crm.list_employees()
    assert [(e.id, e.name, e.role) for e in employees] == [
        (EMPLOYEE, "Rosa Diaz", "office staff"), ("pro_1f2e3d4c", "Tom Berg", "field tech")]
    statuses = crm.list_lead_statuses()
    assert [(s.name, s.order) for s in statuses][:2] == [("New", 0), ("Contacted", 1)]
    assert hcp.requests[-1].query["resource_type"] == ["lead"]


# -- the activity log in the customer's notes ----------------------------------------------------


def test_call_and_texts_are_appended_once(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    contact = hcp.add_customer(mobile_number="4155550134", notes="Gate code on file.")
    first = crm.log_call(call_log(contact))
    hcp.requests.clear()
    assert crm.log_call(call_log(contact)) == first  # a repeat after a crash adds nothing
    assert hcp.routes() == ["GET /customers/{customer_id}"]
    text = MessageLog(contact, "outbound", "Sorry we missed you!\nReply here.", WHEN, BUSINESS,
                      CALLER)
    crm.log_message(text)
    notes = hcp.customers[contact]["notes"]
    assert notes.startswith("Gate code on file.\n[textback call-")
    assert notes.count("[textback ") == 2 and notes.count("Missed call (rang out") == 1
    assert f"Text sent at 2026-09-01 15:04 UTC, from {BUSINESS} to {CALLER}:\n" in notes
    assert notes.endswith("  Sorry we missed you!\n  Reply here.")
    assert first.startswith(f"customer:{contact}#call-")


def test_append_to_a_lead_that_is_gone_is_permanent(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    with pytest.raises(PermanentProviderError) as info:
        crm.append_to_task("lea_missing", "Customer replied")
    assert info.value.status == 404


# -- a retry finds what an earlier attempt wrote -------------------------------------------------


def text_log(contact: str, body: str = "Sorry we missed you!", direction: str = "outbound",
             when: datetime = WHEN) -> MessageLog:
    sender, recipient = (BUSINESS, CALLER) if direction == "outbound" else (CALLER, BUSINESS)
    return MessageLog(contact, direction, body, when, sender, recipient)


def test_find_call_log_links_the_entry_an_earlier_attempt_wrote(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134", notes="Gate code on file.")
    assert crm.find_call_log(call_log(contact)) is None  # nothing logged yet
    logged = crm.log_call(call_log(contact))  # the worker died before linking this
    notes = hcp.customers[contact]["notes"]
    hcp.requests.clear()
    assert crm.find_call_log(call_log(contact)) == logged
    assert hcp.routes() == list(API_CALLS["find_call_log"])  # a read: no PUT
    assert hcp.customers[contact]["notes"] == notes


def test_find_call_log_ignores_other_entries_and_customers(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    other = hcp.add_customer(mobile_number="4155550177")
    assert crm.find_call_log(call_log(contact)) is None  # notes still empty (null)
    crm.log_call(call_log(contact))  # an earlier call from the same caller
    crm.log_message(text_log(contact))
    later = replace(call_log(contact), occurred_at=WHEN + timedelta(hours=2))
    voicemail = replace(call_log(contact), outcome=CallOutcome.VOICEMAIL)
    on_lead = call_log(contact, "lea_0000000000000001")
    assert [crm.find_call_log(c) for c in (later, voicemail, on_lead)] == [None, None, None]
    # The same call for another customer: that customer's notes are read, and hold nothing.
    hcp.requests.clear()
    assert crm.find_call_log(call_log(other)) is None
    assert [r.path for r in hcp.requests] == [f"/customers/{other}"]


def test_find_message_log_links_the_entry_an_earlier_attempt_wrote(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134", notes="Gate code on file.")
    assert crm.find_message_log(text_log(contact)) is None
    logged = crm.log_message(text_log(contact))
    hcp.requests.clear()
    assert crm.find_message_log(text_log(contact)) == logged
    assert hcp.routes() == list(API_CALLS["find_message_log"])
    assert logged.startswith(f"customer:{contact}#sms-")


def test_find_message_log_ignores_other_texts_and_customers(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    other = hcp.add_customer(mobile_number="4155550177")
    crm.log_call(call_log(contact))
    crm.log_message(text_log(contact))
    hcp.requests.clear()
    near_misses = [
        text_log(contact, "Sorry we missed you! Call us back?"),  # a second text that minute
        text_log(contact, direction="inbound"),  # the same words, the other way
        text_log(contact, when=WHEN + timedelta(seconds=1)),
        text_log(other),
    ]
    assert [crm.find_message_log(m) for m in near_misses] == [None, None, None, None]
    assert set(hcp.routes()) == {"GET /customers/{customer_id}"}  # the finds wrote nothing


def test_find_lead_returns_the_lead_an_earlier_attempt_made(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    assert crm.find_lead(lead_spec(contact)) is None  # no lead yet: make one
    lead = crm.set_pipeline_stage(lead_spec(contact))  # the worker died before linking it
    hcp.requests.clear()
    assert crm.find_lead(lead_spec(contact)) == lead
    assert hcp.routes() == list(API_CALLS["find_lead"])  # no POST, no status move
    (query,) = (r.query for r in hcp.requests)
    assert (query["customer_id"], query["status"]) == ([contact], ["open"])
    assert len(hcp.leads) == 1


def test_find_lead_ignores_a_reps_lead_a_closed_one_and_another_customers(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    other = hcp.add_customer(mobile_number="4155550177")
    hcp.add_lead(contact, tags=["vip"])  # a rep's lead: not tagged as ours
    hcp.add_lead(contact, status="lost")  # ours, closed: the next call makes a new one
    hcp.add_lead(other)  # ours, open, another customer's
    assert crm.find_lead(lead_spec(contact)) is None
    hcp.lead_filters_ignored = True  # should the listing ever answer every lead of the company
    assert crm.find_lead(lead_spec(contact)) is None
    ours = hcp.add_lead(contact)
    assert crm.find_lead(lead_spec(contact)) == ours


def test_find_lead_names_the_lead_set_pipeline_stage_reuses(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    first = crm.set_pipeline_stage(lead_spec(contact))
    second = hcp.add_lead(contact)  # a second open lead of ours (two workers raced)
    found = crm.find_lead(lead_spec(contact))
    assert found == first != second  # the oldest, as set_pipeline_stage picks
    assert crm.set_pipeline_stage(lead_spec(contact)) == found and len(hcp.leads) == 2


def test_without_a_lead_tag_no_lead_is_recognised(hcp: FakeHcp) -> None:
    crm = make_crm(lead_tag=None)
    contact = crm.find_or_create_contact(CALLER).id
    lead = crm.set_pipeline_stage(lead_spec(contact))
    assert hcp.leads[lead]["tags"] == []
    hcp.requests.clear()
    assert crm.find_lead(lead_spec(contact)) is None  # documented: nothing tells ours apart
    assert hcp.requests == []


@pytest.mark.parametrize("find", ["call", "message", "lead"])
def test_a_failed_find_is_not_ambiguous(find: str, crm: HousecallProCrm, hcp: FakeHcp) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    run: dict[str, Callable[[], object]] = {
        "call": lambda: crm.find_call_log(call_log(contact)),
        "message": lambda: crm.find_message_log(text_log(contact)),
        "lead": lambda: crm.find_lead(lead_spec(contact)),
    }
    hcp.fail_next(502)
    with pytest.raises(TransientProviderError) as info:
        run[find]()
    assert info.value.ambiguous is False and info.value.status == 502  # a read changed nothing


# -- a follow-up made as a new lead, and found again by a retry ----------------------------------

#: The call ids of the follow-ups below (``textback call <id>`` in their bodies).
CALL_ID = "0c0ffee1"
OTHER_CALL = "7e57ca11"


def follow_up(contact: str, call_id: str = CALL_ID, *, lead: str | None = None,
              text_line: str = 'Texted at 9:03 AM: "Sorry we missed you!"') -> TaskSpec:
    """A follow-up as the connector writes it: its body ends with the call's marker line."""
    body = (f"Missed call at 9:02 AM.\nWhat happened: the caller hung up.\n{text_line}\n"
            f"textback call {call_id}")
    return TaskSpec(contact, "Call back the missed caller", body, WHEN + timedelta(minutes=15),
                    EMPLOYEE, deal_id=lead)


@contextmanager
def killed(hcp: FakeHcp, when: str, route: str) -> Iterator[None]:
    """The worker dies ``when`` (``before``/``after``) Housecall Pro gets ``route``."""
    hcp.crash = (when, route)
    with pytest.raises(Killed):
        yield
    assert hcp.crash is None  # it died there, not somewhere else


def notes_of(hcp: FakeHcp, customer_id: str) -> str:
    return str(hcp.customers[customer_id]["notes"] or "")


def writes(hcp: FakeHcp) -> list[str]:
    return [route for route in hcp.routes() if not route.startswith("GET ")]


def test_a_new_follow_up_lead_is_made_between_a_pending_entry_and_the_entry_naming_it(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134", notes="Gate code on file.")
    task = follow_up(contact)
    lead = crm.create_task(task)
    assert list(hcp.leads) == [lead]
    assert hcp.routes() == list(API_CALLS["create_task:new_lead"])
    pending, named = (body["notes"] for body in hcp.bodies("PUT /customers/{customer_id}"))
    assert re.fullmatch(r"Gate code on file\.\n\[textback pending-[0-9a-f]{12}\] Making a "
                        r"follow-up lead for a missed call\n  textback call 0c0ffee1", pending)
    assert hcp.bodies("POST /leads") == [{
        "customer_id": contact, "note": f"{task.subject}\n{task.body}",
        "assigned_employee_id": EMPLOYEE, "lead_source": "Missed call", "tags": ["textback"]}]
    assert named.startswith(f"{pending}\n[textback task-")
    assert named.endswith(
        f"] Follow-up (lead {lead}, due 2026-09-01 15:19 UTC): Call back the missed caller\n"
        "  Missed call at 9:02 AM.\n  What happened: the caller hung up.\n"
        '  Texted at 9:03 AM: "Sorry we missed you!"\n  textback call 0c0ffee1')
    hcp.requests.clear()
    assert crm.find_task(task, CALL_ID) == lead
    assert hcp.routes() == list(API_CALLS["find_task"])


def test_a_follow_up_without_its_call_line_is_a_lead_alone(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    lead = crm.create_task(TaskSpec(contact, "Call back", "No call line here.", WHEN, EMPLOYEE))
    assert list(hcp.leads) == [lead]
    assert hcp.routes() == list(API_CALLS["create_task:new_lead:unmarked"])
    assert hcp.customers[contact]["notes"] is None


def test_a_follow_up_on_a_lead_is_filed_under_it_and_found_by_its_call(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    deal = crm.set_pipeline_stage(lead_spec(contact))
    # The call's own entry holds the call line too (its body is the follow-up's): not a follow-up.
    crm.log_call(replace(call_log(contact, deal), body=follow_up(contact).body))
    # A line added to the lead that quotes the call line (a customer's reply) is no follow-up.
    crm.append_to_task(deal, "Customer replied: it says textback call 0c0ffee1 here")
    hcp.requests.clear()
    assert crm.find_task(follow_up(contact, lead=deal), CALL_ID) is None  # not filed yet
    assert hcp.routes() == list(API_CALLS["find_task"])
    hcp.requests.clear()
    assert crm.create_task(follow_up(contact, lead=deal)) == deal
    assert hcp.routes() == list(API_CALLS["create_task:on_lead"])
    (written,) = hcp.bodies("PUT /customers/{customer_id}")
    assert "[textback pending-" not in written["notes"]
    assert f"] Follow-up (lead {deal}, due 2026-09-01 15:19 UTC): Call back" in written["notes"]
    # A retry's body may differ (the text's fate changed meanwhile): the call line still holds.
    retry = follow_up(contact, lead=deal, text_line="The text-back failed (30007).")
    assert crm.find_task(retry, CALL_ID) == deal
    # Another call's follow-up on the same lead is not filed yet, whatever this one's is.
    assert crm.find_task(follow_up(contact, OTHER_CALL, lead=deal), OTHER_CALL) is None
    assert list(hcp.leads) == [deal]


def test_killed_before_the_lead_create_nothing_is_found_and_the_retry_makes_one_lead(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    with killed(hcp, "before", "POST /leads"):
        crm.create_task(follow_up(contact))
    assert hcp.leads == {} and "  textback call 0c0ffee1" in notes_of(hcp, contact)
    hcp.requests.clear()
    assert crm.find_task(follow_up(contact), CALL_ID) is None  # Housecall Pro made none
    assert hcp.routes() == list(API_CALLS["find_task:pending"])  # it looked, and wrote nothing
    hcp.requests.clear()
    lead = crm.create_task(follow_up(contact))  # the retry
    assert hcp.routes() == ["GET /leads", "GET /customers/{customer_id}",  # no second pending
                            "POST /leads",
                            "GET /customers/{customer_id}", "PUT /customers/{customer_id}"]
    assert list(hcp.leads) == [lead]
    notes = notes_of(hcp, contact)
    assert notes.count("[textback pending-") == 1 and notes.count("[textback task-") == 1
    assert crm.find_task(follow_up(contact), CALL_ID) == lead


def test_killed_after_the_lead_create_that_lead_is_found_and_no_other(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    other = hcp.add_customer(mobile_number="4155550177")
    earlier = crm.create_task(follow_up(contact, "5ca1ab1e"))  # an earlier call's, named
    with killed(hcp, "after", "POST /leads"):
        crm.create_task(follow_up(contact))
    (made,) = set(hcp.leads) - {earlier}
    # Leads made since, each newer than the earlier attempt's, none of them its to link:
    crm.create_task(follow_up(contact, OTHER_CALL))  # named by its follow-up entry
    replied = hcp.add_lead(contact)  # named by a line added to it
    crm.append_to_task(replied, "Customer replied: tomorrow is fine")
    hcp.add_lead(contact, status="lost")  # ours, closed
    hcp.add_lead(contact, tags=["vip"])  # a rep's
    hcp.add_lead(other)  # ours, open, another customer's
    hcp.requests.clear()
    assert crm.find_task(follow_up(contact), CALL_ID) == made
    assert hcp.routes() == list(API_CALLS["find_task:pending"])
    query = hcp.requests[1].query
    assert (query["customer_id"], query["status"], query["sort_direction"]) == (
        [contact], ["open"], ["desc"])
    hcp.lead_filters_ignored = True  # should the listing ever answer every lead of the company
    assert crm.find_task(follow_up(contact), CALL_ID) == made
    assert writes(hcp) == []


def test_a_lead_of_ours_open_before_the_follow_up_is_never_taken_for_it(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    older = hcp.add_lead(contact)  # ours, open, named nowhere (made before leads were named)
    with killed(hcp, "before", "POST /leads"):
        crm.create_task(follow_up(contact))
    assert notes_of(hcp, contact).endswith(
        f"  textback call 0c0ffee1\n  Open leads already there: {older}")
    assert crm.find_task(follow_up(contact), CALL_ID) is None  # Housecall Pro made none
    with killed(hcp, "after", "POST /leads"):  # the retry, killed once its lead is made
        crm.create_task(follow_up(contact))
    (made,) = set(hcp.leads) - {older}
    assert crm.find_task(follow_up(contact), CALL_ID) == made


def test_the_newest_unnamed_lead_made_since_the_pending_entry_is_the_earlier_attempts(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    older = hcp.add_lead(contact)
    with killed(hcp, "after", "POST /leads"):
        crm.create_task(follow_up(contact))
    (made,) = set(hcp.leads) - {older}
    assert crm.find_task(follow_up(contact), CALL_ID) == made


def test_a_lost_answer_to_the_lead_create_is_found(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    hcp.lost_answers.append("POST /leads")
    with pytest.raises(TransientProviderError) as info:
        crm.create_task(follow_up(contact))
    assert info.value.ambiguous is True  # the connector asks before trying again
    (made,) = hcp.leads
    hcp.requests.clear()
    assert crm.find_task(follow_up(contact), CALL_ID) == made
    assert hcp.routes() == list(API_CALLS["find_task:pending"])


def test_a_call_id_that_only_starts_the_same_is_another_call(
    crm: HousecallProCrm, hcp: FakeHcp
) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    longer = f"{CALL_ID}7"
    made = crm.create_task(follow_up(contact, longer))
    assert crm.find_task(follow_up(contact), CALL_ID) is None
    assert crm.find_task(follow_up(contact, longer), longer) == made
    with killed(hcp, "after", "POST /leads"):  # and with only its pending entry there
        crm.create_task(follow_up(contact, f"{CALL_ID}8"))
    assert crm.find_task(follow_up(contact), CALL_ID) is None
    assert crm.find_task(follow_up(contact, "ffee1"), "ffee1") is None


def test_without_a_lead_tag_only_a_named_follow_up_lead_is_found(hcp: FakeHcp) -> None:
    crm = make_crm(lead_tag=None)
    contact = hcp.add_customer(mobile_number="4155550134")
    made = crm.create_task(follow_up(contact, OTHER_CALL))
    assert hcp.leads[made]["tags"] == []
    assert crm.find_task(follow_up(contact, OTHER_CALL), OTHER_CALL) == made
    with killed(hcp, "after", "POST /leads"):
        crm.create_task(follow_up(contact))
    hcp.requests.clear()
    assert crm.find_task(follow_up(contact), CALL_ID) is None  # documented: ours is not told apart
    assert hcp.routes() == list(API_CALLS["find_task"])  # no listing to look through
    crm.create_task(follow_up(contact))  # so the retry makes it again
    assert len(hcp.leads) == 3


def test_a_failed_task_find_is_not_ambiguous(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    contact = hcp.add_customer(mobile_number="4155550134")
    hcp.fail_next(502)
    with pytest.raises(TransientProviderError) as info:
        crm.find_task(follow_up(contact), CALL_ID)  # the notes read fails
    assert info.value.ambiguous is False and info.value.status == 502
    with killed(hcp, "after", "POST /leads"):
        crm.create_task(follow_up(contact))
    hcp.fail_next(502, route="GET /leads")
    with pytest.raises(TransientProviderError) as info:
        crm.find_task(follow_up(contact), CALL_ID)  # the lead listing fails
    assert info.value.ambiguous is False and info.value.status == 502
    assert hcp.routes()[-2:] == list(API_CALLS["find_task:pending"])


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("error_401.json", "Unauthorized"),
        ("error_404_object.json", "Customer not found"),
        ("error_404_string.json", "Pipeline status not found"),
        ("error_422_fields.json", "assigned_employee_id is invalid; customer_id is missing"),
        ("error_400_attr.json", "is required (first_name, mobile_number)"),
    ],
)
def test_the_five_error_shapes_are_read(name: str, text: str) -> None:
    assert text in error_text(json.dumps(fixture(name)).encode())


def test_422_keeps_housecall_pros_message(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    with pytest.raises(PermanentProviderError) as info:
        crm.set_pipeline_stage(LeadSpec(contact, "Missed call", None, None, owner_id="pro_nobody"))
    assert "assigned_employee_id is invalid" in str(info.value)
    assert (info.value.status, info.value.provider) == (422, "housecallpro")


def test_wrong_scheme_401_says_which_scheme_and_what_to_check(hcp: FakeHcp) -> None:
    hcp.authorization = f"Bearer {ACCESS}"  # the account pasted a key; HCP wanted OAuth
    with pytest.raises(ProviderAuthError) as info:
        make_crm().find_or_create_contact(CALLER)
    text = str(info.value)
    assert "API key" in text and "'Authorization: Token ...'" in text and "MAX" in text
    assert "API Key Management" in text and API_KEY not in text

    hcp.authorization = f"Token {API_KEY}"  # and the other way round
    oauth_crm = make_crm(credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                         token_store=MemoryTokenStore(fresh_tokens()))
    with pytest.raises(ProviderAuthError) as info:
        oauth_crm.find_or_create_contact(CALLER)
    text = str(info.value)
    assert "OAuth access token" in text and "'Authorization: Bearer ...'" in text
    assert "expired or been revoked" in text and "/oauth/housecallpro/install" in text
    assert ACCESS not in text and CLIENT_SECRET not in text


def test_403_needs_an_admin(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    hcp.fail_next(403, "Forbidden")
    with pytest.raises(ProviderAuthError, match="read-only"):
        crm.find_or_create_contact(CALLER)


def test_429_without_retry_after_waits_the_default(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    hcp.fail_next(429)
    with pytest.raises(RateLimitedError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.retry_after == 10.0 and len(hcp.requests) == 1


def test_5xx_on_a_search_is_not_ambiguous(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    hcp.fail_next(502)
    with pytest.raises(TransientProviderError) as info:
        crm.find_or_create_contact(CALLER)
    assert info.value.ambiguous is False and info.value.status == 502


@pytest.mark.parametrize(
    ("exc", "ambiguous"), [(refused_connection, False), (dropped_connection, True),
                           (lambda: requests.ReadTimeout("boom"), True)]
)
def test_transport_failures(exc: Callable[[], Exception], ambiguous: bool) -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, re.compile(BASE + "/customers/.*"), body=exc())
        with pytest.raises(TransientProviderError) as info:
            make_crm().log_call(call_log("cus_1"))
        assert info.value.ambiguous is ambiguous
        mock.add(responses.GET, re.compile(BASE + "/customers.*"), body=requests.ReadTimeout("t"))
        with pytest.raises(TransientProviderError) as info:
            make_crm().find_or_create_contact(CALLER)  # a search that timed out changed nothing
        assert info.value.ambiguous is False


def test_headers_and_base_url() -> None:
    assert HousecallProCrm.default_api_base_url == "https://api.housecallpro.com"
    assert make_crm(api_base_url=None).api_base_url == "https://api.housecallpro.com"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        hcp = FakeHcp(mock)
        make_crm(company_id="cmp_location_2").find_or_create_contact(CALLER)
        headers = hcp.requests[0].headers
        assert headers["Authorization"] == f"Token {API_KEY}"
        assert headers["X-Company-Id"] == "cmp_location_2"
        assert headers["Accept"] == "application/json"


def test_nothing_sensitive_is_logged(
    crm: HousecallProCrm, hcp: FakeHcp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    contact = crm.find_or_create_contact(CALLER).id
    crm.set_pipeline_stage(lead_spec(contact))
    crm.log_message(MessageLog(contact, "inbound", "my gate code 4321", WHEN, CALLER, BUSINESS))
    hcp.fail_next(400, f"bad phone {CALLER}")
    with pytest.raises(PermanentProviderError) as info:
        crm.find_or_create_contact(CALLER)
    logged = "\n".join(r.getMessage() for r in caplog.records) + str(info.value)
    assert logged
    for secret in (API_KEY, CALLER, "4155550134", "gate code"):
        assert secret not in logged


# -- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        ({"api_key": API_KEY, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
         "crm.credentials.api_key"),
        ({}, "crm.credentials.api_key"),
        ({"webhook_signing_secret": SIGNING_SECRET}, "crm.credentials.api_key"),
        ({"client_id": CLIENT_ID}, "crm.credentials.client_secret"),
        ({"client_secret": CLIENT_SECRET}, "crm.credentials.client_id"),
    ],
)
def test_exactly_one_scheme(credentials: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        HousecallProCrm(credentials)
    assert info.value.field == field
    assert CLIENT_SECRET not in str(info.value) and API_KEY not in str(info.value)


def test_oauth_needs_the_token_store_and_redacted_exports_validate() -> None:
    with pytest.raises(ConfigurationError, match="token store"):
        HousecallProCrm({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    schema = HousecallProCrm.config_schema(partial=("api_key",))
    assert schema.load({}) == {"client_id": None, "client_secret": None,
                               "webhook_signing_secret": None}
    assert make_crm().auth_scheme == "api_key"


def test_options_come_from_the_crm_mapping() -> None:
    mapping = {"owner_id": EMPLOYEE, "lead_source": "Missed call", "notifications_enabled": True,
               "stage": "Contacted"}
    assert HousecallProCrm.options_from_mapping(mapping) == {
        "lead_source": "Missed call", "notifications_enabled": True}


# -- OAuth -------------------------------------------------------------------------------------


def test_authorize_url() -> None:
    url = oauth_flow.authorize_url(HousecallProCrm, CLIENT_ID,
                                   "https://tb.example/oauth/housecallpro/callback", "st8")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://pro.housecallpro.com/oauth/authorize")
    assert parse_qs(parts.query) == {
        "response_type": ["code"], "client_id": [CLIENT_ID], "state": ["st8"],
        "redirect_uri": ["https://tb.example/oauth/housecallpro/callback"]}


def test_authorize_url_follows_an_api_base_url_other_than_the_default() -> None:
    url = oauth_flow.authorize_url(HousecallProCrm, CLIENT_ID, "https://tb/cb", "s",
                                   api_base_url=BASE)
    assert url.startswith(f"{BASE}/oauth/authorize?")
    default = oauth_flow.authorize_url(HousecallProCrm, CLIENT_ID, "https://tb/cb", "s",
                                       api_base_url="https://api.housecallpro.com/")
    assert default.startswith("https://pro.housecallpro.com/oauth/authorize?")


def test_exchange_code_posts_json_and_reads_the_lifetime() -> None:
    token_url = oauth_flow.token_url(HousecallProCrm, None)
    assert token_url == "https://api.housecallpro.com/oauth/token"
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, token_url, json=fixture("oauth_token.json"))
        tokens, account = oauth_flow.install(
            HousecallProCrm, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            "the-code", "https://tb/cb")
        sent = json.loads(mock.calls[0].request.body or b"")
    assert sent == {"grant_type": "authorization_code", "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET, "code": "the-code",
                    "redirect_uri": "https://tb/cb"}
    assert (tokens.access_token, tokens.refresh_token) == (
        "hcp-test-access-token-0001", "hcp-test-refresh-token-0001")
    assert tokens.expires_at == datetime.fromtimestamp(1788274800 + 2592000, UTC)
    assert tokens.extra == {"scope": "public", "token_type": "Bearer", "created_at": 1788274800}
    assert account is None  # Housecall Pro names no account; its webhooks URL carries ours


def test_token_due_is_refreshed_under_the_lock_and_saved(hcp: FakeHcp) -> None:
    hcp.authorization = "Bearer nobody-has-this"
    store = MemoryTokenStore(fresh_tokens(timedelta(minutes=3)))
    crm = make_crm(credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                   token_store=store)
    crm.find_or_create_contact(CALLER)
    assert hcp.routes()[:2] == ["POST /oauth/token", "GET /customers"]
    assert len(store.saved) == 1 and hcp.authorization == f"Bearer {store.tokens.access_token}"
    assert store.tokens.refresh_token == hcp.refresh_token != REFRESH
    crm.find_or_create_contact(CALLER)
    assert hcp.routes().count("POST /oauth/token") == 1


def test_refused_refresh_disconnects_the_installation(hcp: FakeHcp) -> None:
    hcp.refresh_token = "rotated-elsewhere"
    store = MemoryTokenStore(fresh_tokens(timedelta(minutes=-1)))
    crm = make_crm(credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                   token_store=store)
    with pytest.raises(ProviderAuthError) as info:
        crm.find_or_create_contact(CALLER)
    assert store.disconnected and "invalid_grant" in store.disconnected
    assert REFRESH not in str(info.value) and CLIENT_SECRET not in str(info.value)


# -- webhooks ----------------------------------------------------------------------------------


def test_webhook_signature(crm: HousecallProCrm) -> None:
    body = json.dumps(fixture("webhook_lead_created.json")).encode()
    crm.verify_request(sign(body))
    crm.verify_request(sign(body, millis=True))
    crm.verify_request(sign(body, age_seconds=290))
    for bad in (sign(body, age_seconds=310), sign(body, age_seconds=-400),
                sign(body, secret="hcp-other-secret")):
        with pytest.raises(WebhookVerificationError):
            crm.verify_request(bad)
    headers = {**dict(sign(body).headers.items()), "Api-Timestamp": "yesterday"}
    with pytest.raises(WebhookVerificationError):
        crm.verify_request(WebhookRequest.build(url=WEBHOOK_URL, headers=headers, body=body))


def test_without_a_signing_secret_every_webhook_is_refused() -> None:
    crm = make_crm(credentials={"api_key": API_KEY})
    with pytest.raises(WebhookVerificationError, match="webhook_signing_secret"):
        crm.verify_request(sign(b"{}"))


def test_webhook_events_and_dedupe_keys() -> None:
    lead = sign(json.dumps(fixture("webhook_lead_created.json")).encode())
    event = webhooks.read_event(lead)
    assert (event.event, event.resource, event.object_id) == (
        "lead.created", "lead", "lea_2e3f4a5b6c7d8e9f")
    assert event.dedupe_key == (
        f"housecallpro:lead.created:lea_2e3f4a5b6c7d8e9f:{lead.headers['Api-Timestamp']}")
    customer = webhooks.read_event(sign(json.dumps(fixture("webhook_customer_updated.json"))
                                        .encode(), age_seconds=5))
    again = webhooks.read_event(sign(json.dumps(fixture("webhook_customer_updated.json")).encode()))
    assert customer.dedupe_key == again.dedupe_key  # a redelivery, whatever its timestamp
    assert customer.dedupe_key.endswith(":2026-09-01T15:10:02Z")
    with pytest.raises(UnsupportedEventError):
        webhooks.read_event(sign(json.dumps(fixture("webhook_job_created.json")).encode()))
    with pytest.raises(UnsupportedEventError):
        webhooks.read_event(sign(b'{"foo": "bar"}'))
    for broken in (b"not json", b"[1]", b'{"event": "lead.created", "lead": {}}'):
        with pytest.raises(MalformedWebhookError):
            webhooks.read_event(sign(broken))


def test_a_converted_lead_is_the_one_event_acted_on(crm: HousecallProCrm) -> None:
    converted = sign(json.dumps({"event": "lead.converted", "lead": {"id": "lea_9"}}).encode())
    (event,) = crm.parse_webhook(converted)
    assert event == LeadStageChanged(event_id=webhooks.read_event(converted).dedupe_key,
                                     lead_id="lea_9", stage="converted")
    for name in ("webhook_lead_created.json", "webhook_customer_updated.json",
                 "webhook_job_created.json"):
        assert crm.parse_webhook(sign(json.dumps(fixture(name)).encode())) == []
    assert crm.parse_webhook(sign(b'{"foo": "bar"}')) == []
    with pytest.raises(MalformedWebhookError):
        crm.parse_webhook(sign(b'{"event": "lead.converted", "lead": {}}'))


# -- API call budget ---------------------------------------------------------------------------


def test_documented_api_calls_match_the_requests_made(crm: HousecallProCrm, hcp: FakeHcp) -> None:
    contact = crm.find_or_create_contact(CALLER).id
    lead = crm.set_pipeline_stage(lead_spec(contact))
    crm.log_call(call_log(contact, lead))
    crm.log_message(MessageLog(contact, "outbound", "Sorry!", WHEN, BUSINESS, CALLER,
                               deal_id=lead))
    crm.create_task(TaskSpec(contact, "Call back", "b", WHEN, EMPLOYEE, deal_id=lead))
    crm.append_to_task(lead, "Customer replied")
    assert hcp.routes() == [
        *API_CALLS["find_or_create_contact:new"], *API_CALLS["set_pipeline_stage:new:first"],
        *API_CALLS["log_call"], *API_CALLS["log_message"], *API_CALLS["create_task:on_lead"],
        *API_CALLS["append_to_task"],
    ]
    hcp.requests.clear()
    crm.find_or_create_contact(CALLER)
    crm.set_pipeline_stage(lead_spec(contact), existing_id=lead)
    crm.create_task(follow_up(contact))
    crm.find_task(follow_up(contact), CALL_ID)
    crm.create_task(TaskSpec(contact, "Call back", "b", WHEN, EMPLOYEE))
    assert hcp.routes() == [*API_CALLS["find_or_create_contact:returning"],
                            *API_CALLS["set_pipeline_stage:open"],
                            *API_CALLS["create_task:new_lead"], *API_CALLS["find_task"],
                            *API_CALLS["create_task:new_lead:unmarked"]]
    with killed(hcp, "after", "POST /leads"):
        crm.create_task(follow_up(contact, OTHER_CALL))
    hcp.requests.clear()
    crm.find_task(follow_up(contact, OTHER_CALL), OTHER_CALL)
    assert hcp.routes() == list(API_CALLS["find_task:pending"])


def test_a_company_without_the_lead_source_list_offers_none() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeHcp(mock)
        fake.lead_sources = None
        crm = HousecallProCrm({"api_key": API_KEY}, api_base_url=BASE)
        choices = crm.list_choices()
    assert choices.lead_sources == ()
    assert choices.pipeline_statuses and choices.pipeline_statuses[0].label == "New"
    assert choices.pipelines is None and choices.task_queues is None
