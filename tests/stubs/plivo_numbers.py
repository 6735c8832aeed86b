"""A stateful fake of Plivo's Account, Number and Application resources, served through a
``responses`` mock::

    fake = PlivoNumbersFake(AUTH_ID, AUTH_TOKEN, ["+14155550100", "+14155550101"])
    fake.install(http, "https://plivo-api.test")
    fake.numbers["14155550101"]["application"] = None     # a number linked to no Application

Numbers are listed as Plivo does (digits without ``+``, ``limit`` <= 20 and ``offset``, ``meta``
with ``next``); each starts on an Application of its own. Errors are ``{"api_id", "error"}``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

JSON = {"Content-Type": "application/json"}


class PlivoNumbersFake:
    """One Plivo account; see the module docstring."""

    def __init__(self, auth_id: str, auth_token: str, numbers: Iterable[str]) -> None:
        self.auth_id, self.auth_token = auth_id, auth_token
        self.numbers: dict[str, dict[str, Any]] = {}
        self.applications: dict[str, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        for index, e164 in enumerate(numbers, start=1):
            app_id = f"2956697143417{index:04d}"
            self.applications[app_id] = {
                "app_id": app_id, "app_name": f"Line {index}",
                "answer_url": "https://old.example.com/answer", "answer_method": "POST",
                "hangup_url": None, "message_url": "", "message_method": "POST",
            }
            digits = e164.lstrip("+")
            self.numbers[digits] = {
                "number": digits, "alias": f"Line {index}", "voice_enabled": True,
                "sms_enabled": True, "mms_enabled": False, "number_type": "local",
                "application": f"/v1/Account/{auth_id}/Application/{app_id}/",
            }

    def install(self, http: responses.RequestsMock, base_url: str) -> None:
        """Serve the account under ``base_url`` on ``http``."""
        account = re.escape(f"{base_url}/v1/Account/{self.auth_id}/")
        http.add_callback(responses.GET, re.compile(rf"{account}$"), self._guard(self._account))
        http.add_callback(responses.GET, re.compile(rf"{account}Number/(\?.*)?$"),
                          self._guard(self._list))
        for method in (responses.GET, responses.POST):
            http.add_callback(method, re.compile(rf"{account}Application/\d+/$"),
                              self._guard(self._application))

    def _guard(self, handler: Any) -> Any:
        expected = "Basic " + base64.b64encode(
            f"{self.auth_id}:{self.auth_token}".encode()).decode()

        def serve(request: Any) -> tuple[int, dict[str, str], str]:
            if request.headers.get("Authorization") != expected:
                return 401, JSON, json.dumps({"api_id": "x", "error": "authentication failed"})
            return handler(request)  # type: ignore[no-any-return]

        return serve

    def _account(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, JSON, json.dumps({"auth_id": self.auth_id, "name": "Acme Plumbing"})

    def _list(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        limit, offset = min(int(query.get("limit", "20")), 20), int(query.get("offset", "0"))
        rows = list(self.numbers.values())
        more = offset + limit < len(rows)
        meta = {"limit": limit, "offset": offset, "total_count": len(rows),
                "next": f"/v1/Account/{self.auth_id}/Number/?limit={limit}&offset="
                        f"{offset + limit}" if more else None}
        return 200, JSON, json.dumps({"api_id": "x", "meta": meta,
                                      "objects": rows[offset:offset + limit]})

    def _application(self, request: Any) -> tuple[int, dict[str, str], str]:
        app_id = urlsplit(request.url).path.rstrip("/").rsplit("/", 1)[-1]
        app = self.applications.get(app_id)
        if app is None:
            return 404, JSON, json.dumps({"api_id": "x", "error": "not found"})
        if request.method == "POST":
            body = json.loads(request.body)
            self.updates.append(body)
            app.update(body)
            return 202, JSON, json.dumps({"api_id": "x", "message": "changed"})
        return 200, JSON, json.dumps(app)
