"""Fuzz every webhook route with Hypothesis: every carrier in ``CARRIERS`` on its ``voice``,
``sms`` and ``status`` URLs, the CRM webhooks (Jobber, Housecall Pro, HubSpot) and
``/demo/simulate-call``.

Bodies: JSON of random shape (lists where objects are expected, deep nesting), form-encoded,
binary, and the carriers' own fixtures with a random part replaced. Headers: random, some named
like signature headers. Each request goes unsigned, *validly signed* (with the signing helpers of
the carrier tests, so authentic-but-odd payloads reach the parsers) or signed and then spoiled.

Two properties: no answer is a 500; and an unsigned or wrongly signed request changes no stored
row. The demo route takes no signature by design (it simulates a call), so only the first
property holds there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from carrier_adapters import CARRIERS
from carrier_adapters.base import WEBHOOK_KINDS
from connector.kernel import clock
from connector.kernel.http import WebhookRequest
from connector.runtime import Runtime
from connector.storage.models import Base
from tests.connector.test_webhook_forgeries import contract_for

PUBLIC = "https://hooks.example.test"
NUMBERS = ("+14155550100", "+12025550100")
JOBBER_SECRET = "jobber-client-secret-fuzz-0042"
JOBBER_ACCOUNT = "Z2lkOi8vSm9iYmVyL0FjY291bnQvNDMwMTE0"  # the fixtures' account
HCP_SECRET = "hcp-signing-secret-fuzz-42"
HUBSPOT_SECRET = "hubspot-app-secret-fuzz-1"
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = ["application/json", FORM, "application/jwt", "text/plain", "",
                 "application/json; charset=utf-8", "multipart/form-data; boundary=x"]
#: Headers some adapter reads, with random values: none of them can make a request authentic.
HEADER_NAMES = ["Content-Type", "Authorization", "X-Twilio-Signature", "X-Plivo-Signature-V2",
                "X-Plivo-Signature-V2-Nonce", "X-Plivo-Signature-V3", "telnyx-timestamp",
                "telnyx-signature-ed25519", "webhook-id", "webhook-timestamp",
                "webhook-signature", "openphone-signature", "Verification-Token",
                "Validation-Token", "Signature", "X-Textback-Signature", "X-Jobber-Hmac-SHA256",
                "Api-Signature", "Api-Timestamp", "X-HubSpot-Signature-v3",
                "X-HubSpot-Request-Timestamp", "X-Random"]


def account_id(carrier: str) -> str:
    return f"fz-{carrier}"


# -- the world the requests land in -------------------------------------------------------------


@pytest.fixture
def runtime(settings: Any) -> Iterator[Runtime]:
    """A migrated runtime whose jobs are queued, never run: nothing may reach a provider."""
    from connector.storage.db import upgrade

    upgrade(settings.database_url)
    rt = Runtime(settings, immediate_queue=False)
    yield rt
    rt.close()


@pytest.fixture
def world(runtime: Runtime) -> Runtime:
    """The demo account, one account per carrier (on the credentials its tests sign with) and
    one per webhook-taking CRM, with a Jobber installation."""
    from connector.cli import ensure_demo_account
    from connector.storage.accounts import import_account
    from connector.storage.installations import save_installation
    from crm_adapters.base import OAuthTokens

    assert ensure_demo_account(runtime)
    crm = {"kind": "sandbox", "credentials": {"webhook_secret": "crm-secret-0123456789"}}
    docs: list[dict[str, Any]] = []
    for name in sorted(CARRIERS):
        contract = contract_for(name)
        carrier: dict[str, Any] = {"kind": name, "credentials": dict(contract.credentials()),
                                   "numbers": list(NUMBERS), "forward_to": ["+14155550199"]}
        if not contract.adapter_class.sends_sms:
            carrier["sms"] = {"kind": "sandbox", "credentials": {"webhook_secret": "s" * 20}}
        docs.append({"id": account_id(name), "name": "Acme", "timezone": "America/Chicago",
                     "carrier": carrier, "crm": crm})
    sandbox = docs[[d["id"] for d in docs].index(account_id("sandbox"))]["carrier"]
    docs += [
        {"id": "fz-jobber", "name": "Pipes", "carrier": sandbox,
         "crm": {"kind": "jobber", "api_base_url": "https://api.getjobber.com",
                 "credentials": {"client_id": "jobber-client-id-fuzz",
                                 "client_secret": JOBBER_SECRET},
                 "mapping": {"owner_id": "owner-1"}}},
        {"id": "fz-hcp", "name": "Drains", "carrier": sandbox,
         "crm": {"kind": "housecallpro", "credentials": {
             "api_key": "hcp-api-key-0123456789", "webhook_signing_secret": HCP_SECRET}}},
        {"id": "fz-hubspot", "name": "Taps", "carrier": sandbox,
         "crm": {"kind": "hubspot", "credentials": {
             "access_token": "pat-fuzz-0123456789", "client_secret": HUBSPOT_SECRET}}},
    ]
    with runtime.db.session() as s:
        for doc in docs:
            import_account(s, runtime.box, doc)
    save_installation(runtime.db, runtime.box, "fz-jobber", "jobber",
                      OAuthTokens(access_token="at-fuzz", refresh_token="rt-fuzz"),
                      external_id=JOBBER_ACCOUNT)
    return runtime


def snapshot(runtime: Runtime) -> dict[str, list[str]]:
    """Every stored row of every table."""
    with runtime.db.session() as s:
        return {name: sorted(repr(tuple(row)) for row in s.execute(select(table)))
                for name, table in Base.metadata.tables.items()}


# -- bodies -------------------------------------------------------------------------------------


@functools.cache
def fixture_bodies(carrier: str) -> tuple[tuple[bytes, str], ...]:
    """Every scenario payload of the carrier's contract (before signing)."""
    contract = contract_for(carrier)
    bodies = []
    for kind, table in (("voice", contract.call_scenarios), ("sms", contract.inbound_scenarios),
                        ("status", contract.status_scenarios)):
        for scenario in table:
            try:
                bodies.append(contract.scenario_body(kind, scenario))
            except pytest.skip.Exception:
                continue
    return tuple(bodies)


@functools.cache
def fixture_keys() -> tuple[str, ...]:
    """Field names the fixtures use: random objects built from them reach deeper."""
    keys: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            keys.update(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for carrier in CARRIERS:
        for body, _ in fixture_bodies(carrier):
            try:
                walk(json.loads(body))
            except ValueError:
                keys.update(k for k, _ in parse_qsl(body.decode("utf-8", "replace")))
    return tuple(sorted(keys))


text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20)
keys = st.one_of(st.sampled_from(fixture_keys()), text)
leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                   st.floats(allow_nan=False, allow_infinity=False), text,
                   st.sampled_from(["+14155550100", "+12025550143", "STOP", "message.received",
                                    "call.ended", "delivered", "inbound", "outbound",
                                    "message-received", "2026-06-15T12:00:00Z", ""]))
json_values = st.recursive(
    leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                    st.dictionaries(keys, inner, max_size=5)),
    max_leaves=15)


@st.composite
def deep_json(draw: Any) -> bytes:
    depth = draw(st.integers(min_value=60, max_value=3000))
    if draw(st.booleans()):
        inner = "[" * depth + "]" * depth
    else:
        inner = '{"data":' * depth + "1" + "}" * depth
    return (f'{{"token": "x", "data": {inner}}}' if draw(st.booleans()) else inner).encode()


@st.composite
def mutated_fixture(draw: Any, carrier: str) -> tuple[bytes, str]:
    """One of the carrier's fixtures with one part replaced by a random value (or, for a form,
    a field changed, dropped or added); now and then left as it is."""
    body, content_type = draw(st.sampled_from(fixture_bodies(carrier)))
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        return body, content_type
    try:
        document = json.loads(body)
    except ValueError:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        if pairs:
            index = draw(st.integers(min_value=0, max_value=len(pairs) - 1))
            action = draw(st.sampled_from(["change", "drop", "add"]))
            if action == "change":
                pairs[index] = (pairs[index][0], draw(text))
            elif action == "drop":
                del pairs[index]
            else:
                pairs.append((draw(keys), draw(text)))
        return urlencode(pairs).encode(), content_type or FORM
    paths: list[list[Any]] = []

    def walk(value: Any, path: list[Any]) -> None:
        paths.append(path)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, [*path, key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, [*path, index])

    walk(document, [])
    path = draw(st.sampled_from(paths))
    replacement = draw(json_values)
    if not path:
        document = replacement
    else:
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = replacement
    return json.dumps(document).encode(), content_type


def bodies(carrier: str | None = None) -> st.SearchStrategy[tuple[bytes, str]]:
    """Random bodies with a content type; the carrier's mutated fixtures when one is named."""
    options = [
        st.tuples(json_values.map(lambda v: json.dumps(v).encode()),
                  st.sampled_from(["application/json", "application/jwt", ""])),
        st.tuples(deep_json(), st.just("application/json")),
        st.tuples(st.dictionaries(keys, text, max_size=6).map(lambda d: urlencode(d).encode()),
                  st.just(FORM)),
        st.tuples(st.binary(max_size=300), st.sampled_from(CONTENT_TYPES)),
    ]
    if carrier is not None and fixture_bodies(carrier):
        options += [mutated_fixture(carrier)] * 3
    return st.one_of(options)


ascii_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
extra_headers = st.dictionaries(st.sampled_from(HEADER_NAMES), ascii_values, max_size=3)


def spoil(value: str) -> str:
    """A signature value that no longer matches (an appended character breaks every scheme)."""
    return value + "x"


def spoiled(carrier: str, signed: WebhookRequest, unsigned_headers: dict[str, str]) -> WebhookRequest:
    """``signed`` with every credential it carries altered: headers the signing added, Aircall's
    token in the body, Dialpad's JWT (the body)."""
    headers = {k: (v if k in unsigned_headers else spoil(v)) for k, v in signed.headers.items()}
    body = signed.body
    if carrier == "dialpad":
        body = body + b"x"
    elif carrier == "aircall":
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict) and isinstance(document.get("token"), str):
            document["token"] = spoil(document["token"])
            body = json.dumps(document).encode()
    return WebhookRequest.build(url=signed.url, headers=headers, body=body)


def post(client: Any, request: WebhookRequest) -> Any:
    parts = urlsplit(request.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return client.post(target, data=request.body, headers=dict(request.headers.items()))


# -- carrier webhooks ---------------------------------------------------------------------------


@st.composite
def carrier_requests(draw: Any) -> tuple[str, str, WebhookRequest]:
    """``(carrier, mode, request)``: mode ``unsigned``, ``signed`` or ``spoiled``."""
    carrier = draw(st.sampled_from(sorted(CARRIERS)))
    kind = draw(st.sampled_from(WEBHOOK_KINDS))
    account = draw(st.sampled_from([account_id(carrier)] * 6
                                   + ["fz-nobody", account_id("sandbox"), "fz-jobber"]))
    body, content_type = draw(bodies(carrier))
    extra = draw(extra_headers)
    mode = draw(st.sampled_from(["signed", "signed", "signed", "spoiled", "unsigned"]))
    url = f"{PUBLIC}/webhooks/{carrier}/{account}/{kind}"
    base_headers = {"Content-Type": content_type}
    if mode == "unsigned":
        request = WebhookRequest.build(url=url, headers={**base_headers, **extra}, body=body)
        return carrier, mode, request
    signed = contract_for(carrier).sign_body(url, body, content_type)
    if mode == "spoiled":
        signed = spoiled(carrier, signed, base_headers)
    headers = {**dict(signed.headers.items()), **(extra if mode == "signed" else {})}
    return carrier, mode, WebhookRequest.build(url=signed.url, headers=headers, body=signed.body)


@settings(max_examples=450, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_carrier_webhooks_never_answer_500_and_refused_requests_change_nothing(
    app: Any, world: Runtime, data: Any
) -> None:
    carrier, mode, request = data.draw(carrier_requests())
    before = snapshot(world) if mode != "signed" else None
    answer = post(app.test_client(), request)
    event(f"{mode}: {answer.status_code}")  # shown by --hypothesis-show-statistics
    assert answer.status_code != 500, (carrier, mode, request)
    if before is not None:
        assert answer.status_code in (200, 400, 403, 404, 405), (carrier, mode, answer.status_code)
        assert snapshot(world) == before, (carrier, mode, request)


# -- CRM webhooks and the demo ------------------------------------------------------------------


@functools.cache
def crm_fixture_bodies(route: str) -> tuple[tuple[bytes, str], ...]:
    """The webhook fixtures of a CRM route (HubSpot's is a task completed)."""
    from pathlib import Path

    if route == "hubspot":
        return ((json.dumps([{"eventId": 7, "objectId": 9001, "propertyName": "hs_task_status",
                              "propertyValue": "COMPLETED"}]).encode(), "application/json"),)
    folder = Path(__file__).resolve().parents[1] / "fixtures" / route
    return tuple((path.read_bytes(), "application/json")
                 for path in sorted(folder.glob("webhook_*.json")))


@st.composite
def crm_bodies(draw: Any, route: str) -> tuple[bytes, str]:
    if route == "demo" or draw(st.integers(min_value=0, max_value=2)) == 0:
        return draw(bodies())
    body, content_type = draw(st.sampled_from(crm_fixture_bodies(route)))
    document = json.loads(body)
    if isinstance(document, dict) and document and draw(st.booleans()):
        document[draw(st.sampled_from(sorted(document)))] = draw(json_values)
    elif isinstance(document, list) and document and draw(st.booleans()):
        document[0] = draw(json_values)
    return json.dumps(document).encode(), content_type


def crm_signed(route: str, url: str, body: bytes) -> dict[str, str]:
    """The headers that sign ``body`` for a CRM webhook route."""
    from crm_adapters.housecallpro.webhooks import signature as hcp_signature
    from crm_adapters.hubspot.webhooks import signature_v3
    from crm_adapters.jobber.webhooks import signature as jobber_signature

    if route == "jobber":
        return {"X-Jobber-Hmac-SHA256": jobber_signature(JOBBER_SECRET, body)}
    if route == "housecallpro":
        stamp = str(int(clock.timestamp()))
        return {"Api-Timestamp": stamp, "Api-Signature": hcp_signature(HCP_SECRET, stamp, body)}
    stamp = str(int(clock.timestamp() * 1000))
    return {"X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": signature_v3(HUBSPOT_SECRET, "POST", url, body, stamp)}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_crm_webhooks_and_the_demo_never_answer_500(app: Any, world: Runtime, data: Any) -> None:
    route = data.draw(st.sampled_from(["jobber", "housecallpro", "hubspot", "demo"]))
    body, content_type = data.draw(crm_bodies(route))
    extra = data.draw(extra_headers)
    client = app.test_client()
    if route == "demo":
        answer = client.post("/demo/simulate-call", data=body,
                             headers={"Content-Type": content_type, **extra})
        assert answer.status_code != 500
        return
    path = {"jobber": "/webhooks/crm/jobber", "housecallpro": "/webhooks/crm/housecallpro/fz-hcp",
            "hubspot": "/webhooks/crm/hubspot/fz-hubspot"}[route]
    mode = data.draw(st.sampled_from(["signed", "signed", "spoiled", "unsigned"]))
    headers = {"Content-Type": content_type}
    if mode == "unsigned":
        headers.update(extra)
    else:
        signed = crm_signed(route, PUBLIC + path, body)
        headers.update({k: spoil(v) for k, v in signed.items()} if mode == "spoiled" else signed)
    before = snapshot(world) if mode != "signed" else None
    answer = client.post(path, data=body, headers=headers)
    event(f"{route} {mode}: {answer.status_code}")
    assert answer.status_code != 500, (route, mode, body[:200])
    if before is not None:
        assert snapshot(world) == before, (route, mode, body[:200])


# -- deep JSON, signed, on every route ------------------------------------------------------------


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
def test_signed_deep_json_on_every_carrier_url_is_refused_not_a_500(app: Any, world: Runtime,
                                                                    carrier: str) -> None:
    client = app.test_client()
    deep = b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for kind in WEBHOOK_KINDS:
        url = f"{PUBLIC}/webhooks/{carrier}/{account_id(carrier)}/{kind}"
        before = snapshot(world)
        answer = post(client, contract_for(carrier).sign_body(url, deep, "application/json"))
        # 400, or 403 where the credential sits in the unreadable body; a URL whose events the
        # carrier never sends (CallRail texts, RingCentral reports) is acknowledged unread.
        assert answer.status_code in (200, 400, 403), (kind, answer.status_code)
        assert {k: v for k, v in snapshot(world).items() if k != "used_nonces"} == \
            {k: v for k, v in before.items() if k != "used_nonces"}
