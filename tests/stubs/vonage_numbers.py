"""A fake of Vonage's Numbers API (``GET /account/numbers``) and Application API
(``GET /v2/applications/{id}``), served through a ``responses`` mock::

    fake = VonageNumbersFake(API_KEY, API_SECRET, ["+14155550100", "+14155550101"])
    fake.install(http, "https://vonage-api.test")      # both APIs on one test host

Numbers are ``msisdn`` digits with ``features`` and ``app_id``; each starts on an application of
its own with voice and messages webhooks. The Numbers API takes the key and secret as query
parameters and answers a wrong pair with ``401 {"error-code": "401", ...}``; the Application
API takes them as Basic auth.
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
UNAUTHORISED = (401, JSON, json.dumps({"error-code": "401",
                                       "error-code-label": "authentication failed"}))


def _hook(address: str) -> dict[str, str]:
    return {"address": address, "http_method": "POST"}


class VonageNumbersFake:
    """One Vonage account; see the module docstring."""

    def __init__(self, api_key: str, api_secret: str, numbers: Iterable[str]) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.numbers: list[dict[str, Any]] = []
        self.applications: dict[str, dict[str, Any]] = {}
        for index, e164 in enumerate(numbers, start=1):
            app_id = f"aaaaaaaa-bbbb-cccc-dddd-{index:012d}"
            self.applications[app_id] = {"id": app_id, "name": f"Line {index}", "capabilities": {
                "voice": {"webhooks": {"answer_url": _hook("https://old.example.com/answer"),
                                       "event_url": _hook("https://old.example.com/event")}},
                "messages": {"webhooks": {"inbound_url": _hook("https://old.example.com/in"),
                                          "status_url": _hook("https://old.example.com/st")}},
            }}
            self.numbers.append({"country": "US", "msisdn": e164.lstrip("+"),
                                 "type": "mobile-lvn", "features": ["VOICE", "SMS"],
                                 "app_id": app_id})

    def install(self, http: responses.RequestsMock, base_url: str) -> None:
        """Serve both APIs under ``base_url`` on ``http``."""
        base = re.escape(base_url)
        http.add_callback(responses.GET, re.compile(rf"{base}/account/numbers(\?.*)?$"),
                          self._numbers)
        http.add_callback(responses.GET, re.compile(rf"{base}/v2/applications/[\w-]+$"),
                          self._application)

    def _numbers(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        if (query.get("api_key"), query.get("api_secret")) != (self.api_key, self.api_secret):
            return UNAUTHORISED
        size, index = min(int(query.get("size", "10")), 100), int(query.get("index", "1"))
        page = self.numbers[(index - 1) * size:index * size]
        return 200, JSON, json.dumps({"count": len(self.numbers), "numbers": page})

    def _application(self, request: Any) -> tuple[int, dict[str, str], str]:
        pair = base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {pair}":
            return UNAUTHORISED
        app = self.applications.get(urlsplit(request.url).path.rsplit("/", 1)[-1])
        if app is None:
            return 404, JSON, json.dumps({"title": "Not found"})
        return 200, JSON, json.dumps(app)
