"""A stateful fake of the RingCentral calls the setup pages make, served through a
``responses`` mock: the JWT grant, the account's phone numbers and the app's subscriptions::

    fake = RingCentralAccountFake(["+14155550100", "+14155550101"])
    fake.install(http, "https://ringcentral-api.test")
    fake.subscriptions        # what was created or updated

A subscription is created ``Active`` (the real API first checks the address with its
``Validation-Token`` handshake); one asking for more than ten years, or with no
``verificationToken``, is refused with 400 as the API documents its limits.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any

import responses

JSON = {"Content-Type": "application/json"}
MAX_WEBHOOK_LIFETIME = 315_360_000


class RingCentralAccountFake:
    """One RingCentral account and app; see the module docstring."""

    def __init__(self, numbers: Iterable[str], *, grant_ok: bool = True) -> None:
        self.grant_ok = grant_ok
        self.numbers = [
            {"id": str(i), "phoneNumber": n, "type": "VoiceFax", "usageType": "DirectNumber",
             "features": ["CallerId", "SmsSender"]}
            for i, n in enumerate(numbers, start=1)
        ]
        self.subscriptions: list[dict[str, Any]] = []

    def install(self, http: responses.RequestsMock, base_url: str) -> None:
        """Serve the account under ``base_url`` on ``http``."""
        base = re.escape(base_url)
        http.add_callback(responses.POST, f"{base_url}/restapi/oauth/token", self._token)
        http.add_callback(responses.GET,
                          re.compile(rf"{base}/restapi/v1.0/account/~/phone-number(\?.*)?$"),
                          self._numbers)
        http.add_callback(responses.GET, f"{base_url}/restapi/v1.0/subscription", self._list)
        http.add_callback(responses.POST, f"{base_url}/restapi/v1.0/subscription", self._create)
        http.add_callback(responses.PUT, re.compile(rf"{base}/restapi/v1.0/subscription/[\w-]+$"),
                          self._update)

    def _token(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self.grant_ok:
            return 400, JSON, json.dumps({"errorCode": "OAU-251", "message": "Invalid client"})
        return 200, JSON, json.dumps({"access_token": "rc-access", "expires_in": 3600})

    def _numbers(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, JSON, json.dumps({"records": self.numbers, "navigation": {}})

    def _list(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, JSON, json.dumps({"records": self.subscriptions})

    def _create(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        mode = body.get("deliveryMode") or {}
        if not mode.get("verificationToken") or body.get("expiresIn", 0) > MAX_WEBHOOK_LIFETIME:
            return 400, JSON, json.dumps({"errorCode": "SUB-406", "message": "Invalid"})
        record = {"id": str(uuid.uuid4()), "status": "Active",
                  "eventFilters": body["eventFilters"], "expiresIn": body["expiresIn"],
                  "deliveryMode": {"transportType": "WebHook", "address": mode["address"]}}
        self.subscriptions.append(record)
        return 200, JSON, json.dumps(record)

    def _update(self, request: Any) -> tuple[int, dict[str, str], str]:
        sub_id = request.url.rsplit("/", 1)[-1]
        record = next((r for r in self.subscriptions if r["id"] == sub_id), None)
        if record is None:
            return 404, JSON, json.dumps({"errorCode": "SUB-522", "message": "Not found"})
        record.update(json.loads(request.body))
        return 200, JSON, json.dumps(record)
