"""A stateful fake of Telnyx's number, connection, TeXML application and messaging profile
resources, served through a ``responses`` mock (the Telnyx adapter talks ``requests``)::

    fake = TelnyxNumbersFake(API_KEY, ["+14155550100", "+14155550101"])
    fake.install(http, "https://telnyx-api.test")
    fake.use_connection("+14155550101", "call_control_application")   # or "credential_connection"
    fake.share_profile("+14155550100", "+14155550101")                 # one profile for both

Each number starts on a TeXML application and a messaging profile of its own. Shapes follow
Telnyx's v2 API: ``{"data": ..., "meta": {"total_pages", "page_number", ...}}``, errors as
``{"errors": [{"code", "title", "detail"}]}`` (10009: authentication failed). A TeXML update
without ``friendly_name`` or ``voice_url`` is a 422, as the API requires both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

JSON = {"Content-Type": "application/json"}


def _error(status: int, code: str, title: str) -> tuple[int, dict[str, str], str]:
    return status, JSON, json.dumps({"errors": [{"code": code, "title": title, "detail": title}]})


class TelnyxNumbersFake:
    """One Telnyx account; see the module docstring."""

    def __init__(self, api_key: str, numbers: Iterable[str]) -> None:
        self.api_key = api_key
        self.numbers: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.connections: dict[str, dict[str, Any]] = {}
        self.texml: dict[str, dict[str, Any]] = {}
        self.updates: list[tuple[str, dict[str, Any]]] = []
        for index, e164 in enumerate(numbers, start=1):
            profile_id, app_id = f"4001{index:04d}", f"2001{index:04d}"
            self.profiles[profile_id] = {"id": profile_id, "name": f"Profile {index}",
                                         "webhook_url": "https://old.example.com/sms",
                                         "record_type": "messaging_profile"}
            self.connections[app_id] = {"id": app_id, "record_type": "texml_application",
                                        "connection_name": f"App {index}"}
            self.texml[app_id] = {"id": app_id, "friendly_name": f"App {index}",
                                  "voice_url": "https://old.example.com/texml",
                                  "voice_method": "post", "status_callback": None,
                                  "status_callback_method": "post"}
            self.numbers[e164] = {"id": f"1293{index:08d}", "phone_number": e164,
                                  "connection_id": app_id, "messaging_profile_id": profile_id,
                                  "tags": [f"line {index}"], "status": "active",
                                  "record_type": "phone_number"}

    def use_connection(self, e164: str, record_type: str) -> None:
        """Put the number on a new connection of ``record_type`` (not TeXML)."""
        conn_id = f"3001{len(self.connections):04d}"
        self.connections[conn_id] = {"id": conn_id, "record_type": record_type,
                                     "connection_name": "Own app",
                                     "webhook_event_url": "https://own.example.com/events"}
        self.numbers[e164]["connection_id"] = conn_id

    def share_profile(self, first: str, second: str) -> None:
        """Put ``second`` in ``first``'s messaging profile."""
        self.numbers[second]["messaging_profile_id"] = self.numbers[first]["messaging_profile_id"]

    def install(self, http: responses.RequestsMock, base_url: str) -> None:
        """Serve the account under ``base_url`` on the ``responses`` mock ``http``."""
        base = re.escape(base_url)
        routes = (
            (responses.GET, rf"{base}/v2/phone_numbers(\?.*)?$", self._numbers),
            (responses.GET, rf"{base}/v2/messaging_profiles/\w+$", self._profile),
            (responses.PATCH, rf"{base}/v2/messaging_profiles/\w+$", self._profile),
            (responses.GET, rf"{base}/v2/connections/\w+$", self._connection),
            (responses.GET, rf"{base}/v2/texml_applications/\w+$", self._texml),
            (responses.PATCH, rf"{base}/v2/texml_applications/\w+$", self._texml),
        )
        for method, pattern, handler in routes:
            http.add_callback(method, re.compile(pattern), self._guarded(handler))

    def _guarded(self, handler: Any) -> Any:
        def serve(request: Any) -> tuple[int, dict[str, str], str]:
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return _error(401, "10009", "Authentication failed")
            return handler(request)  # type: ignore[no-any-return]

        return serve

    @staticmethod
    def _id(request: Any) -> str:
        return urlsplit(request.url).path.rsplit("/", 1)[-1]

    def _numbers(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        size, page = int(query.get("page[size]", "20")), int(query.get("page[number]", "1"))
        wanted = query.get("filter[phone_number]")
        rows = [n for n in self.numbers.values() if wanted in (None, n["phone_number"])]
        total_pages = max(1, -(-len(rows) // size))
        body = {"data": rows[(page - 1) * size:page * size],
                "meta": {"total_pages": total_pages, "page_number": page, "page_size": size,
                         "total_results": len(rows)}}
        return 200, JSON, json.dumps(body)

    def _found(self, table: dict[str, dict[str, Any]], request: Any) -> dict[str, Any] | None:
        return table.get(self._id(request))

    def _profile(self, request: Any) -> tuple[int, dict[str, str], str]:
        profile = self._found(self.profiles, request)
        if profile is None:
            return _error(404, "10005", "Resource not found")
        if request.method == "PATCH":
            body = json.loads(request.body)
            self.updates.append((f"profile {profile['id']}", body))
            profile.update(body)
        return 200, JSON, json.dumps({"data": profile})

    def _connection(self, request: Any) -> tuple[int, dict[str, str], str]:
        connection = self._found(self.connections, request)
        if connection is None:
            return _error(404, "10005", "Resource not found")
        return 200, JSON, json.dumps({"data": connection})

    def _texml(self, request: Any) -> tuple[int, dict[str, str], str]:
        app = self._found(self.texml, request)
        if app is None:
            return _error(404, "10005", "Resource not found")
        if request.method == "PATCH":
            body = json.loads(request.body)
            if not body.get("friendly_name") or not body.get("voice_url"):
                return _error(422, "10015", "friendly_name and voice_url are required")
            self.updates.append((f"texml {app['id']}", body))
            app.update(body)
        return 200, JSON, json.dumps({"data": app})
