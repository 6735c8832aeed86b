"""A local HTTP stub of the HubSpot CRM endpoints the ``hubspot`` adapter calls.

hubspot-api-client talks urllib3, which ``responses`` cannot intercept, so tests and benchmarks
point the adapter at this real server on 127.0.0.1 (ephemeral port)::

    with HubSpotStub(access_token="pat-test") as stub:          # or stub = HubSpotStub().start()
        crm = HubSpotCrm({"access_token": "pat-test"}, api_base_url=stub.url)
        stub.latency = 0.3                                       # seconds before each answer
        stub.fail_next(429)                                      # next request: HubSpot's 429
        stub.fail_next(500, count=2, path="/crm/v3/objects/calls")
        stub.outage(10.0)                                        # 503 to all, for 10 s
        stub.outage(3.0, hang=16.0)                              # held past the read timeout
        ...
        stub.requests        # every request, failures included: RecordedRequest(method, path,
        stub.routes()        # query, json, headers, received_at); routes() as "POST /crm/v3/..."

What it keeps: contacts (with HubSpot's calculated phone properties), calls, communications,
tasks, deals (``hs_is_closed`` derived from the stage), and custom contact properties. Search
honours OR'ed filter groups of AND'ed filters and an optional ``search_lag`` (seconds before a new
record becomes searchable, as HubSpot's index lags behind writes); filters on an association
(``associations.contact``) match the record's associations, range operators on a date compare
instants (a filter's value in milliseconds, as search wants), and a ``DESCENDING`` sort on the
create date puts the newest first. Creates validate the enums,
required ``hs_timestamp`` and association type ids the way HubSpot answers (400).

An outage (:meth:`HubSpotStub.outage`) answers every request arriving during it with an error and
stores nothing; with ``hang`` each such request is held that long first, so a client whose read
timeout is shorter sees a timeout.

The marketplace app (:meth:`HubSpotStub.enable_oauth`) makes it many portals: each OAuth access
token belongs to one portal (``hub_id``), whose records and properties are its own. It serves the
2026-03 token endpoint (form body only), token introspection, the account details and the app
uninstall, as HubSpot documents them::

    stub.enable_oauth("client-id", "client-secret", access_ttl=1800)
    callback = stub.approve(authorize_url, hub_id=62515, user="owner@acme.example")
    stub.uninstall(62515)          # as if the portal's admin removed the app in HubSpot
    stub.records("calls", hub_id=62515)
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import phonenumbers

OBJECT_TYPES = ("contacts", "calls", "communications", "tasks", "deals")
_ID_NAMES = {
    "contacts": "contactId",
    "calls": "callId",
    "communications": "communicationId",
    "tasks": "taskId",
    "deals": "dealId",
}

#: HUBSPOT_DEFINED association type id -> (from type, to type); anything else is refused.
ASSOCIATION_TYPES: Mapping[int, tuple[str, str]] = {
    194: ("calls", "contacts"),
    206: ("calls", "deals"),
    81: ("communications", "contacts"),
    85: ("communications", "deals"),
    204: ("tasks", "contacts"),
    216: ("tasks", "deals"),
    3: ("deals", "contacts"),
    4: ("contacts", "deals"),
}

#: Writable properties per object type (custom contact properties are added when created).
KNOWN_PROPERTIES: Mapping[str, frozenset[str]] = {
    "contacts": frozenset(
        {
            "phone",
            "mobilephone",
            "firstname",
            "lastname",
            "email",
            "hs_language",
            "hubspot_owner_id",
        }
    ),
    "calls": frozenset(
        {
            "hs_timestamp",
            "hs_call_title",
            "hs_call_body",
            "hs_call_direction",
            "hs_call_status",
            "hs_call_from_number",
            "hs_call_to_number",
            "hs_call_duration",
            "hs_call_disposition",
            "hubspot_owner_id",
        }
    ),
    "communications": frozenset(
        {
            "hs_communication_channel_type",
            "hs_communication_logged_from",
            "hs_communication_body",
            "hs_timestamp",
            "hubspot_owner_id",
        }
    ),
    "tasks": frozenset(
        {
            "hs_timestamp",
            "hs_task_subject",
            "hs_task_body",
            "hs_task_status",
            "hs_task_priority",
            "hs_task_type",
            "hubspot_owner_id",
            "hs_queue_membership_ids",
            "hs_task_reminders",
        }
    ),
    "deals": frozenset(
        {"dealname", "pipeline", "dealstage", "hubspot_owner_id", "amount", "closedate"}
    ),
}

ENUMS: Mapping[str, Mapping[str, frozenset[str]]] = {
    "calls": {
        "hs_call_direction": frozenset({"INBOUND", "OUTBOUND"}),
        "hs_call_status": frozenset(
            {
                "BUSY",
                "CALLING_CRM_USER",
                "CANCELED",
                "COMPLETED",
                "CONNECTING",
                "FAILED",
                "IN_PROGRESS",
                "NO_ANSWER",
                "QUEUED",
                "RINGING",
            }
        ),
    },
    "communications": {
        "hs_communication_channel_type": frozenset({"SMS", "WHATS_APP", "LINKEDIN_MESSAGE"}),
        "hs_communication_logged_from": frozenset({"CRM"}),
    },
    "tasks": {
        "hs_task_status": frozenset(
            {"NOT_STARTED", "COMPLETED", "IN_PROGRESS", "WAITING", "DEFERRED"}
        ),
        "hs_task_priority": frozenset({"LOW", "MEDIUM", "HIGH"}),
        "hs_task_type": frozenset({"EMAIL", "CALL", "TODO"}),
    },
}
_ENGAGEMENTS = frozenset({"calls", "communications", "tasks"})
_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
    423: "LOCKED",
    429: "RATE_LIMITS",
}
_OBJECT_PATH = re.compile(r"^/crm/v3/objects/(\w+)(?:/(\w[\w.+%-]*))?$")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stub received it; ``json`` is the parsed body (None when empty)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    json: Any
    headers: Mapping[str, str]
    received_at: float

    @property
    def route(self) -> str:
        """``"GET /crm/v3/objects/tasks/{taskId}"``: method and path with record ids templated."""
        match = _OBJECT_PATH.match(self.path)
        if match and match.group(2) and match.group(2) not in ("search", "batch"):
            kind = match.group(1)
            return f"{self.method} /crm/v3/objects/{kind}/{{{_ID_NAMES.get(kind, 'id')}}}"
        return f"{self.method} {self.path}"


@dataclass
class _Failure:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]
    remaining: int
    path: str | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path.startswith(self.path)
        )


@dataclass
class _Portal:
    """One HubSpot account's data: its records by type and its custom contact properties."""

    objects: dict[str, dict[str, _Record]]
    contact_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    domain: str = "portal.example"
    time_zone: str = "US/Eastern"


@dataclass
class _Grant:
    """What one approval, code or token stands for."""

    hub_id: int
    user: str
    scopes: tuple[str, ...]
    redirect_uri: str = ""


@dataclass
class _Record:
    id: str
    properties: dict[str, str]
    created: float
    updated: float
    associations: list[tuple[str, str, int]] = field(default_factory=list)


def error_body(status: int, message: str | None = None, **extra: Any) -> dict[str, Any]:
    """A HubSpot-shaped error body (``429`` carries ``policyName`` and ``errorType``)."""
    body: dict[str, Any] = {"status": "error", "correlationId": str(uuid.uuid4())}
    if status == 429:
        body.update(
            message=message or "You have reached your ten_secondly_rolling limit.",
            errorType="RATE_LIMIT",
            policyName="TEN_SECONDLY_ROLLING",
            requestId=str(uuid.uuid4()),
        )
    else:
        body.update(
            message=message or f"HTTP {status}",
            category=_CATEGORIES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"),
        )
    if status == 403 and message is None:
        body["message"] = "This app hasn't been granted all required scopes to make this call."
        body["errors"] = [
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": ["crm.objects.deals.write"]},
            }
        ]
    body.update(extra)
    return body


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def _phone_companions(props: dict[str, str]) -> None:
    """HubSpot's calculated phone properties (national digits are what search matches)."""
    for source, searchable in (
        ("phone", "hs_searchable_calculated_phone_number"),
        ("mobilephone", "hs_searchable_calculated_mobile_number"),
    ):
        value = props.get(source)
        try:
            parsed = phonenumbers.parse(value, "US") if value else None
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None:
            props.pop(searchable, None)
            continue
        props[searchable] = phonenumbers.national_significant_number(parsed)
        if source == "phone" or "hs_calculated_phone_number" not in props:
            props["hs_calculated_phone_number"] = phonenumbers.format_number(
                parsed, phonenumbers.PhoneNumberFormat.E164
            )


class _ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, error_body(status, message, **extra)


class HubSpotStub:
    """The stub server and its in-memory CRM. Thread-safe; see the module docstring."""

    def __init__(
        self, *, latency: float = 0.0, search_lag: float = 0.0, access_token: str | None = None,
        rate_limit: tuple[int, float] | None = None,
        search_rate_limit: tuple[int, float] | None = None,
    ) -> None:
        self.latency = latency
        #: ``(requests, seconds)`` enforced as HubSpot does, on a rolling window of arrivals:
        #: beyond it a 429 ``TEN_SECONDLY_ROLLING``; answers carry ``X-HubSpot-RateLimit-*``.
        #: Search has its own limit and no headers. ``throttled`` counts the 429s sent.
        self.rate_limit = rate_limit
        self.search_rate_limit = search_rate_limit
        self.throttled = 0
        self._arrivals: dict[bool, collections.deque[float]] = {
            False: collections.deque(), True: collections.deque()}
        self.search_lag = search_lag
        self.access_token = access_token
        self.requests: list[RecordedRequest] = []
        self._portals: dict[int | None, _Portal] = {None: _new_portal()}
        self._current = threading.local()
        # The marketplace app (enable_oauth): its credentials, and who each code/token is for.
        self.client_id: str | None = None
        self.client_secret: str | None = None
        self.access_ttl = 1800
        self.token_requests: list[dict[str, str]] = []
        self._codes: dict[str, _Grant] = {}
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._browser_approval: tuple[int, str, str | None] | None = None
        self._failures: list[_Failure] = []
        self._outage: tuple[float, int, float] | None = None  # (until, status, hang)
        self._ids = itertools.count(10_001)
        # App events and workflow-action callbacks (see the automation section below).
        self.app_event_types: dict[str, dict[str, Any]] = {}
        self.app_events: list[dict[str, Any]] = []
        self.callbacks: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> HubSpotStub:
        """Listen on 127.0.0.1 on a free port, serving from a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubSpotStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to pass as the adapter's ``api_base_url``."""
        assert self._server is not None, "start() the stub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- control ---------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        body: Mapping[str, Any] | str | bytes | None = None,
        *,
        count: int = 1,
        path: str | None = None,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status``.

        ``body`` defaults to HubSpot's error body for the status (``message`` replaces its text);
        a str or bytes body is sent as is (``text/html`` when it starts with ``<``). ``path`` is
        a prefix of the request path, ``method`` an upper-case verb; rules apply in order.
        """
        if body is None:
            body = error_body(status, message)
        if isinstance(body, Mapping):
            raw, ctype = json.dumps(body).encode(), "application/json;charset=utf-8"
        else:
            raw = body.encode() if isinstance(body, str) else body
            ctype = "text/html" if raw.lstrip().startswith(b"<") else "text/plain"
        with self._lock:
            self._failures.append(
                _Failure(status, raw, ctype, dict(headers or {}), count, path, method)
            )

    def outage(self, seconds: float, *, status: int = 503, hang: float = 0.0) -> None:
        """Answer every request arriving in the next ``seconds`` with ``status``, storing nothing.

        With ``hang`` each of those requests is held ``hang`` seconds before the answer (a client
        with a shorter read timeout has given up by then). A new outage replaces the current one;
        ``seconds=0`` ends it.
        """
        with self._lock:
            self._outage = (time.monotonic() + seconds, status, hang) if seconds > 0 else None

    def _in_outage(self) -> tuple[int, float] | None:
        with self._lock:
            if self._outage is None or time.monotonic() >= self._outage[0]:
                return None
            return self._outage[1], self._outage[2]

    def clear_requests(self) -> None:
        """Forget the request log (records stay)."""
        with self._lock:
            self.requests.clear()

    def routes(self) -> list[str]:
        """The request log as ``"METHOD /templated/path"`` strings, in arrival order."""
        with self._lock:
            return [r.route for r in self.requests]

    # -- portals and the marketplace app ----------------------------------------------------
    @property
    def _portal(self) -> _Portal:
        hub_id = getattr(self._current, "hub_id", None)
        with self._lock:
            return self._portals.setdefault(hub_id, _new_portal())

    @property
    def _objects(self) -> dict[str, dict[str, _Record]]:
        return self._portal.objects

    @property
    def contact_properties(self) -> dict[str, dict[str, Any]]:
        """The custom contact properties of the portal in use (the only one without OAuth)."""
        return self._portal.contact_properties

    @contextmanager
    def portal(self, hub_id: int | None) -> Iterator[None]:
        """Read or write portal ``hub_id``'s data in this block (None: the private-app one)."""
        before = getattr(self._current, "hub_id", None)
        self._current.hub_id = hub_id
        try:
            yield
        finally:
            self._current.hub_id = before

    def enable_oauth(self, client_id: str, client_secret: str, *, access_ttl: int = 1800
                     ) -> None:
        """Be the marketplace app's HubSpot: every access token names one portal."""
        self.client_id, self.client_secret, self.access_ttl = client_id, client_secret, access_ttl

    def set_portal(self, hub_id: int, *, domain: str, time_zone: str = "US/Eastern") -> None:
        """What the account details and introspection say about portal ``hub_id``."""
        with self._lock:
            portal = self._portals.setdefault(hub_id, _new_portal())
            portal.domain, portal.time_zone = domain, time_zone

    def approve(self, authorize_url: str, *, hub_id: int, user: str) -> str:
        """``user`` approves the app for portal ``hub_id`` on HubSpot's authorize page: the
        callback URL HubSpot's redirect would open (``redirect_uri?code=&state=``)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        if query.get("client_id") != self.client_id:
            raise AssertionError(f"authorize URL for another app: {query.get('client_id')}")
        code = "code-" + uuid.uuid4().hex
        with self._lock:
            self._codes[code] = _Grant(hub_id, user, tuple(query.get("scope", "").split()),
                                       query["redirect_uri"])
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    def approve_in_browser(self, *, hub_id: int, user: str, reach: str | None = None) -> None:
        """From now on ``GET /oauth/authorize`` (a browser on HubSpot's approval page) approves
        at once as ``user`` for portal ``hub_id`` and redirects to the app's callback; ``reach``
        replaces the callback's scheme and host (a test server standing in for the public URL).
        """
        self._browser_approval = (hub_id, user, reach)

    def uninstall(self, hub_id: int) -> None:
        """The portal's admin uninstalled the app: its tokens stop working."""
        with self._lock:
            for tokens in (self._access, self._refresh):
                for token in [t for t, g in tokens.items() if g.hub_id == hub_id]:
                    del tokens[token]

    def expire_access_tokens(self) -> None:
        """Every access token stops working (the refresh tokens still do)."""
        with self._lock:
            self._access.clear()

    def installed(self, hub_id: int) -> bool:
        """True while the app holds a working refresh token for portal ``hub_id``."""
        with self._lock:
            return any(g.hub_id == hub_id for g in self._refresh.values())

    def _mint(self, grant: _Grant, refresh_token: str | None = None) -> dict[str, Any]:
        access = "at-" + uuid.uuid4().hex
        refresh = refresh_token or "rt-" + uuid.uuid4().hex
        self._access[access] = grant
        self._refresh[refresh] = grant
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.access_ttl,
                "token_type": "bearer", "token_use": "access_token", "hub_id": grant.hub_id,
                "user_id": 4242, "scopes": list(grant.scopes)}

    def _oauth_route(self, method: str, path: str, query: Mapping[str, list[str]], raw: bytes,
                     headers: Mapping[str, str]) -> tuple[int, Any] | None:
        """The marketplace app's endpoints, or None when ``path`` is not one of them."""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        bad = {"status": "BAD_REQUEST", "message": "parameters go in the form body"}
        if method == "POST" and path == "/oauth/2026-03/token":
            self.token_requests.append(form)
            if query:
                return 400, bad
            if (form.get("client_id"), form.get("client_secret")) != (
                    self.client_id, self.client_secret):
                return 400, {"status": "BAD_CLIENT_ID", "message": "invalid client"}
            if form.get("grant_type") == "authorization_code":
                grant = self._codes.pop(form.get("code", ""), None)
                if grant is None or grant.redirect_uri != form.get("redirect_uri"):
                    return 400, {"status": "BAD_AUTH_CODE", "message": "invalid code"}
                return 200, self._mint(grant)
            if form.get("grant_type") == "refresh_token":
                token = form.get("refresh_token", "")
                grant = self._refresh.get(token)
                if grant is None:
                    return 400, {"status": "BAD_REFRESH_TOKEN",
                                 "message": "missing or invalid refresh token"}
                return 200, self._mint(grant, refresh_token=token)
            return 400, {"status": "BAD_GRANT_TYPE", "message": "unsupported grant type"}
        if method == "POST" and path == "/oauth/2026-03/token/introspect":
            if query:
                return 400, bad
            grant = self._access.get(form.get("token", ""))
            if grant is None or form.get("client_secret") != self.client_secret:
                return 200, {"active": False}
            portal = self._portals.setdefault(grant.hub_id, _new_portal())
            return 200, {"active": True, "hub_id": grant.hub_id, "hub_domain": portal.domain,
                         "user": grant.user, "user_id": 4242, "client_id": self.client_id,
                         "scopes": list(grant.scopes), "token_type": "access",
                         "token_use": "access_token", "expires_in": self.access_ttl}
        if method == "GET" and path == "/oauth/authorize" and self._browser_approval:
            hub_id, user, reach = self._browser_approval
            target = f"{path}?{urlencode({k: v[0] for k, v in query.items()})}"
            callback = urlsplit(self.approve(target, hub_id=hub_id, user=user))
            if reach:
                callback = urlsplit(f"{reach}{callback.path}?{callback.query}")
            return 302, {"location": callback.geturl()}
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        grant = self._access.get(bearer)
        if method == "GET" and path == "/account-info/2026-03/details":
            if grant is None:
                raise _ApiError(401, "Authentication credentials not found.")
            portal = self._portals.setdefault(grant.hub_id, _new_portal())
            return 200, {"portalId": grant.hub_id, "timeZone": portal.time_zone,
                         "uiDomain": "app.hubspot.com", "accountType": "STANDARD",
                         "companyCurrency": "USD", "utcOffset": "-05:00"}
        if method == "DELETE" and path == "/appinstalls/v3/external-install":
            if grant is None:
                raise _ApiError(401, "Authentication credentials not found.")
            self.uninstall(grant.hub_id)
            return 204, None
        return None

    # -- data ------------------------------------------------------------------------------
    def add_contact(self, hub_id: int | None = None, **properties: str) -> str:
        """Put a contact in the CRM as a user would have typed it; returns its id."""
        with self.portal(hub_id), self._lock:
            record = self._new("contacts", dict(properties))
            record.created -= self.search_lag  # already indexed
            return record.id

    def contacts_with_phone(self, e164: str) -> list[str]:
        """Ids of contacts whose phone or mobile phone parses to ``e164``, oldest first."""
        with self._lock:
            return [
                r.id
                for r in self._objects["contacts"].values()
                if e164
                in (
                    r.properties.get("hs_calculated_phone_number"),
                    _e164(r.properties.get("mobilephone")),
                )
            ]

    def record(self, object_type: str, record_id: str, hub_id: int | None = None
               ) -> dict[str, Any] | None:
        """A stored record as ``{"id", "properties", "associations"}`` or None."""
        with self.portal(hub_id), self._lock:
            rec = self._objects[object_type].get(record_id)
            if rec is None:
                return None
            return {
                "id": rec.id,
                "properties": dict(rec.properties),
                "associations": list(rec.associations),
            }

    def records(self, object_type: str, hub_id: int | None = None) -> list[dict[str, Any]]:
        """Every stored record of a type (in portal ``hub_id``), oldest first."""
        with self.portal(hub_id), self._lock:
            ids = list(self._objects[object_type])
        return [r for r in (self.record(object_type, i, hub_id) for i in ids) if r is not None]

    def property_names(self, hub_id: int | None = None) -> set[str]:
        """The custom contact properties created in portal ``hub_id``."""
        with self.portal(hub_id), self._lock:
            return set(self.contact_properties)

    def close_deal(self, deal_id: str, *, won: bool = True) -> None:
        """Move a deal to closed won (or lost), as a rep would."""
        with self._lock:
            rec = self._objects["deals"][deal_id]
            rec.properties["dealstage"] = "closedwon" if won else "closedlost"
            rec.properties["hs_is_closed"] = "true"

    # -- request handling --------------------------------------------------------------------
    def handle(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, bytes, str, Mapping[str, str]]:
        """Record, wait, then answer one request: ``(status, body, content type, headers)``."""
        parts = urlsplit(target)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method, parts.path, parse_qs(parts.query), payload, dict(headers), time.time()
                )
            )
        outage = self._in_outage()
        admitted, limit_headers = self._admit(parts.path)
        if self.latency > 0:
            time.sleep(self.latency)
        if not admitted:
            body = error_body(429, "You have reached your ten_secondly_rolling limit.")
            return 429, json.dumps(body).encode(), "application/json;charset=utf-8", limit_headers
        if outage is not None:
            status, hang = outage
            if hang > 0:
                time.sleep(hang)
            return status, json.dumps(error_body(status)).encode(), "application/json;charset=utf-8", {}
        with self._lock:
            for failure in self._failures:
                if failure.remaining > 0 and failure.matches(method, parts.path):
                    failure.remaining -= 1
                    self._failures = [f for f in self._failures if f.remaining > 0]
                    return failure.status, failure.body, failure.content_type, failure.headers
        try:
            if self.client_id is not None:
                with self._lock:
                    answer = self._oauth_route(method, parts.path, parse_qs(parts.query), raw,
                                               headers)
                if answer is not None and answer[0] == 302:
                    return 302, b"", "text/plain", {"Location": answer[1]["location"]}
                if answer is not None:
                    body_bytes = b"" if answer[1] is None else json.dumps(answer[1]).encode()
                    return answer[0], body_bytes, "application/json;charset=utf-8", {}
            hub_id = self._authorize(headers.get("authorization", ""))
            with self.portal(hub_id), self._lock:
                status, body = self._route(method, parts.path, parse_qs(parts.query), payload)
        except _ApiError as exc:
            status, body = exc.status, exc.body
        data = b"" if status == 204 else json.dumps(body).encode()
        return status, data, "application/json;charset=utf-8", limit_headers

    def _admit(self, path: str) -> tuple[bool, dict[str, str]]:
        """Whether the rate limit lets a request arriving now through, and the headers to send."""
        search = path.endswith("/search")
        limit = self.search_rate_limit if search else self.rate_limit
        if limit is None:
            return True, {}
        most, window = limit
        with self._lock:
            now = time.monotonic()
            arrivals = self._arrivals[search]
            while arrivals and arrivals[0] <= now - window:
                arrivals.popleft()
            admitted = len(arrivals) < most
            if admitted:
                arrivals.append(now)
            else:
                self.throttled += 1
            remaining = most - len(arrivals)
        if search:
            return admitted, {}
        return admitted, {"X-HubSpot-RateLimit-Max": str(most),
                          "X-HubSpot-RateLimit-Remaining": str(remaining),
                          "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000))}

    def _authorize(self, authorization: str) -> int | None:
        """The portal an ``Authorization`` header opens (None: the private-app one), else 401."""
        bearer = authorization.removeprefix("Bearer ")
        with self._lock:
            grant = self._access.get(bearer) if self.client_id is not None else None
        if grant is not None:
            return grant.hub_id
        if self.access_token is None and self.client_id is None:
            return None
        if self.access_token is not None and authorization == f"Bearer {self.access_token}":
            return None
        raise _ApiError(
            401, "Authentication credentials not found. This API supports OAuth 2.0 "
            "authentication.")

    def _route(
        self, method: str, path: str, query: Mapping[str, list[str]], payload: Any
    ) -> tuple[int, Any]:
        if path.startswith(("/integrators/timeline/", "/automation/")):
            return self._automation_route(method, path, payload)
        if method == "POST" and path == "/crm/v3/properties/contacts":
            return self._create_property(payload)
        if method == "POST" and path == "/crm/v3/objects/contacts/batch/upsert":
            return 200, self._upsert(payload)
        if method == "POST" and path == "/crm/v3/objects/contacts/batch/read":
            return self._batch_read(payload)
        match = _OBJECT_PATH.match(path)
        if match is None or match.group(1) not in OBJECT_TYPES:
            raise _ApiError(404, f"no route {method} {path}")
        kind, rest = match.group(1), match.group(2)
        wanted = [p for v in query.get("properties", []) for p in v.split(",") if p]
        if method == "POST" and rest is None:
            return 201, self._public(self._create(kind, payload), None)
        if method == "POST" and rest == "search":
            return 200, self._search(kind, payload)
        if rest is not None and method in ("GET", "PATCH"):
            rec = self._objects[kind].get(rest)
            if rec is None:
                raise _ApiError(404, "resource not found")
            if method == "PATCH":
                self._write(kind, rec, dict((payload or {}).get("properties") or {}))
            return 200, self._public(rec, wanted or None)
        raise _ApiError(404, f"no route {method} {path}")

    def _automation_route(self, method: str, path: str, payload: Any) -> tuple[int, Any]:
        if method == "POST" and path == "/integrators/timeline/v4/events":
            return _app_event(self, payload)
        match = _CALLBACK_PATH.match(path)
        if method == "POST" and match is not None:
            return _complete_callback(self, match.group(1), payload)
        raise _ApiError(404, f"no route {method} {path}")

    # -- CRM behaviour ----------------------------------------------------------------------
    def _new(self, kind: str, props: dict[str, str]) -> _Record:
        now = time.time()
        rec = _Record(str(next(self._ids)), {}, now, now)
        rec.properties["hs_object_id"] = rec.id
        self._write(kind, rec, props)
        self._objects[kind][rec.id] = rec
        return rec

    def _write(self, kind: str, rec: _Record, props: dict[str, Any]) -> None:
        allowed = KNOWN_PROPERTIES[kind] | (
            frozenset(self.contact_properties) if kind == "contacts" else frozenset()
        )
        for name, value in props.items():
            if name not in allowed:
                raise _ApiError(
                    400,
                    f'Property "{name}" does not exist',
                    errors=[{"code": "PROPERTY_DOESNT_EXIST", "name": name}],
                )
            if not isinstance(value, str):
                raise _ApiError(400, f"Property {name} must be sent as a string")
            enum = ENUMS.get(kind, {}).get(name)
            if enum is not None and value not in enum:
                raise _ApiError(
                    400,
                    f"{value!r} is not a valid option for {name}",
                    errors=[{"code": "INVALID_OPTION", "name": name}],
                )
        rec.properties.update(props)
        rec.updated = time.time()
        if kind == "contacts":
            _phone_companions(rec.properties)
        if kind == "deals":
            rec.properties["hs_is_closed"] = str(
                rec.properties.get("dealstage") in ("closedwon", "closedlost")
            ).lower()

    def _create(self, kind: str, payload: Any) -> _Record:
        props = dict((payload or {}).get("properties") or {})
        if kind in _ENGAGEMENTS and not props.get("hs_timestamp"):
            raise _ApiError(
                400,
                "hs_timestamp is required",
                errors=[{"code": "REQUIRED_PROPERTY", "name": "hs_timestamp"}],
            )
        links = []
        for assoc in (payload or {}).get("associations") or []:
            to_id = str((assoc.get("to") or {}).get("id"))
            for spec in assoc.get("types") or []:
                pair = ASSOCIATION_TYPES.get(spec.get("associationTypeId"))
                if (
                    spec.get("associationCategory") != "HUBSPOT_DEFINED"
                    or pair is None
                    or (pair[0] != kind)
                ):
                    raise _ApiError(400, f"invalid association type for {kind}: {spec}")
                if to_id not in self._objects[pair[1]]:
                    raise _ApiError(400, f"association target {pair[1]} {to_id} not found")
                links.append((pair[1], to_id, spec["associationTypeId"]))
        rec = self._new(kind, props)
        rec.associations.extend(links)
        return rec

    def _create_property(self, payload: Any) -> tuple[int, Any]:
        name = (payload or {}).get("name")
        if not name or not payload.get("type") or not payload.get("groupName"):
            raise _ApiError(400, "name, type and groupName are required")
        if name in self.contact_properties or name in KNOWN_PROPERTIES["contacts"]:
            raise _ApiError(
                409, f"A property named '{name}' already exists.", category="OBJECT_ALREADY_EXISTS"
            )
        now = _iso(time.time())
        prop = {
            "name": name,
            "label": payload.get("label", name),
            "type": payload["type"],
            "fieldType": payload.get("fieldType", "text"),
            "groupName": payload["groupName"],
            "description": payload.get("description", ""),
            "options": [],
            "hasUniqueValue": bool(payload.get("hasUniqueValue")),
            "createdAt": now,
            "updatedAt": now,
        }
        self.contact_properties[name] = prop
        return 201, prop

    def _visible(self, rec: _Record) -> bool:
        return rec.created <= time.time() - self.search_lag

    def _search(self, kind: str, payload: Any) -> Any:
        groups = (payload or {}).get("filterGroups") or []
        if len(groups) > 5:
            raise _ApiError(400, "too many filterGroups (max 5)")
        hits = [
            r
            for r in self._objects[kind].values()
            if self._visible(r) and (not groups or any(_group_matches(g, r) for g in groups))
        ]
        for sort in reversed((payload or {}).get("sorts") or []):
            if sort.get("propertyName") in ("hs_createdate", "createdate"):
                hits.sort(key=lambda r: r.created, reverse=sort.get("direction") == "DESCENDING")
        limit = int((payload or {}).get("limit") or 10)
        wanted = (payload or {}).get("properties") or None
        return {"total": len(hits), "results": [self._public(r, wanted) for r in hits[:limit]]}

    def _upsert(self, payload: Any) -> Any:
        results = []
        for item in (payload or {}).get("inputs") or []:
            id_prop, value = item.get("idProperty"), str(item.get("id"))
            spec = self.contact_properties.get(id_prop or "")
            if spec is None or not spec["hasUniqueValue"]:
                raise _ApiError(400, f"{id_prop} is not a unique identifier property")
            props = dict(item.get("properties") or {})
            props[id_prop] = value
            existing = next(
                (
                    r
                    for r in self._objects["contacts"].values()
                    if r.properties.get(id_prop) == value
                ),
                None,
            )
            if existing is None:
                rec, new = self._new("contacts", props), True
            else:
                self._write("contacts", existing, props)
                rec, new = existing, False
            results.append({**self._public(rec, None), "new": new})
        now = _iso(time.time())
        return {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}

    def _batch_read(self, payload: Any) -> tuple[int, Any]:
        id_prop = (payload or {}).get("idProperty")
        wanted = (payload or {}).get("properties") or None
        found = []
        for item in (payload or {}).get("inputs") or []:
            value = str(item.get("id"))
            for rec in self._objects["contacts"].values():
                if (rec.properties.get(id_prop) if id_prop else rec.id) == value:
                    found.append(self._public(rec, wanted))
        now = _iso(time.time())
        return 200, {"status": "COMPLETE", "results": found, "startedAt": now, "completedAt": now}

    def _public(self, rec: _Record, wanted: list[str] | None) -> dict[str, Any]:
        base = {"hs_object_id", "createdate", "lastmodifieddate"}
        props = {
            k: v for k, v in rec.properties.items() if wanted is None or k in wanted or k in base
        }
        props.setdefault("createdate", _iso(rec.created))
        props["lastmodifieddate"] = _iso(rec.updated)
        return {
            "id": rec.id,
            "properties": props,
            "createdAt": _iso(rec.created),
            "updatedAt": _iso(rec.updated),
            "archived": False,
        }


# -- automation: app events and workflow-action callbacks -------------------------------------
# The app's event types are "deployed" from its developer project's app-event components
# (``deploy_app_events``); an occurrence must name one and match its properties, as HubSpot
# checks it. https://developers.hubspot.com/docs/apps/developer-platform/add-features/app-events

_CALLBACK_PATH = re.compile(r"^/automation/v4/actions/callbacks/([^/]+)/complete$")


def deploy_app_events(stub: HubSpotStub, components: list[Mapping[str, Any]]) -> None:
    """Make the app-event components (``*-hsmeta.json`` documents) known to ``stub``."""
    with stub._lock:
        for component in components:
            stub.app_event_types[str(component["uid"])] = dict(component["config"])


def _app_event(stub: HubSpotStub, payload: Any) -> tuple[int, Any]:
    if not isinstance(payload, dict):
        raise _ApiError(400, "Invalid input JSON")
    for name in ("eventTypeName", "objectId", "id", "properties"):
        if not payload.get(name) and payload.get(name) != {}:
            raise _ApiError(400, f"{name} is required")
    kind = stub.app_event_types.get(str(payload["eventTypeName"]))
    if kind is None:
        raise _ApiError(404, f"event type {payload['eventTypeName']} not found")
    if kind.get("objectType") == "CONTACT" and str(payload["objectId"]) not in \
            stub._objects["contacts"]:
        raise _ApiError(404, f"contact {payload['objectId']} not found")
    declared = {p["name"]: p for p in kind.get("properties", [])}
    properties = payload["properties"]
    if not isinstance(properties, dict):
        raise _ApiError(400, "properties must be an object")
    for name, value in properties.items():
        prop = declared.get(name)
        if prop is None:
            raise _ApiError(400, f"property {name} is not defined for this event type")
        if not isinstance(value, str | int | float):
            raise _ApiError(400, f"property {name} has an invalid value")
        allowed = {o["value"] for o in prop.get("options", [])}
        if prop.get("type") == "enumeration" and str(value) not in allowed:
            raise _ApiError(400, f"{value} is not an option of {name}")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            raise _ApiError(400, "timestamp is not ISO 8601") from None
    key = (payload["eventTypeName"], str(payload["id"]))
    if any((e["eventTypeName"], str(e["id"])) == key for e in stub.app_events):
        raise _ApiError(409, f"An event with id {payload['id']} already exists")
    stub.app_events.append(dict(payload))
    return 204, None


def _complete_callback(stub: HubSpotStub, callback_id: str, payload: Any) -> tuple[int, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("outputFields"), dict):
        raise _ApiError(400, "outputFields is required")
    if callback_id in stub.callbacks:
        raise _ApiError(400, f"callback {callback_id} is already complete")
    stub.callbacks[callback_id] = dict(payload)
    return 204, None


def _new_portal() -> _Portal:
    return _Portal({t: {} for t in OBJECT_TYPES})


def _e164(value: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(value, "US") if value else None
    except phonenumbers.NumberParseException:
        return None
    return (
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if parsed else None
    )


#: ``associations.<name>`` filters: the name's object type.
_ASSOCIATION_FILTERS = {"contact": "contacts", "deal": "deals", "company": "companies"}
_RANGES: dict[str, Callable[[float, float], bool]] = {
    "GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b,
    "LT": lambda a, b: a < b, "LTE": lambda a, b: a <= b,
}


def _instant(value: str | None) -> float | None:
    """A date property's value or a filter's (milliseconds, or ISO 8601) in milliseconds."""
    if value is None:
        return None
    if value.isdigit():
        return float(value)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def _association_matches(flt: Mapping[str, Any], rec: _Record) -> bool:
    kind = _ASSOCIATION_FILTERS.get(str(flt["propertyName"]).split(".", 1)[1])
    linked = {to_id for to_kind, to_id, _type in rec.associations if to_kind == kind}
    op = flt.get("operator")
    if op == "EQ":
        return str(flt.get("value")) in linked
    if op == "IN":
        return bool(linked & {str(v) for v in flt.get("values") or []})
    if op == "HAS_PROPERTY":
        return bool(linked)
    if op == "NOT_HAS_PROPERTY":
        return not linked
    raise _ApiError(400, f"operator {op} is not supported on associations")


def _group_matches(group: Mapping[str, Any], rec: _Record) -> bool:
    for flt in group.get("filters") or []:
        if str(flt.get("propertyName")).startswith("associations."):
            if not _association_matches(flt, rec):
                return False
            continue
        value = rec.properties.get(flt.get("propertyName"))
        op = flt.get("operator")
        if op in _RANGES:
            have, bound = _instant(value), _instant(str(flt.get("value")))
            if have is None or bound is None or not _RANGES[op](have, bound):
                return False
        if op == "EQ" and (value is None or value.lower() != str(flt.get("value")).lower()):
            return False
        if op == "NEQ" and value is not None and value.lower() == str(flt.get("value")).lower():
            return False
        if op == "IN" and value not in [str(v) for v in flt.get("values") or []]:
            return False
        if op == "CONTAINS_TOKEN" and str(flt.get("value")).lower() not in \
                re.split(r"[^0-9a-z]+", (value or "").lower()):
            return False
        if op == "HAS_PROPERTY" and not value:
            return False
        if op == "NOT_HAS_PROPERTY" and value:
            return False
    return True


def _handler_for(stub: HubSpotStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, ctype, extra = stub.handle(self.command, self.path, headers, raw)
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout test)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep test output quiet

    return Handler
