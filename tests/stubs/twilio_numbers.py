"""A stateful fake of Twilio's Account and IncomingPhoneNumber resources, served through a
``responses`` mock (the Twilio adapter talks ``requests``)::

    fake = TwilioNumbersFake(ACCOUNT_SID, AUTH_TOKEN, ["+14155550100", "+14155550101"],
                             api_key=(API_KEY_SID, API_KEY_SECRET))   # api_key optional
    fake.install(http, "https://api.twilio.test")
    fake.numbers["+14155550100"]["voice_application_sid"] = "AP..."   # shape the account
    ...
    fake.updates       # every POSTed form, in order

Field names and the error body (``{"code": 20003, "message", "more_info", "status"}``) follow
the 2010-04-01 API: https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource .
Pages follow ``PageSize`` and carry ``next_page_uri``; ``PhoneNumber`` filters.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import responses

API_VERSION = "2010-04-01"
_FIELDS = {
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "VoiceApplicationSid": "voice_application_sid",
    "SmsApplicationSid": "sms_application_sid",
    "FriendlyName": "friendly_name",
}
_METHOD_FIELDS = {"VoiceMethod", "SmsMethod", "StatusCallbackMethod"}


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, str], str]:
    body = {"code": code, "message": message, "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}"}
    return status, {"Content-Type": "application/json"}, json.dumps(body)


class TwilioNumbersFake:
    """One Twilio account owning ``numbers``; see the module docstring."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        numbers: Iterable[str],
        *,
        api_key: tuple[str, str] | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_key = api_key
        self.numbers: dict[str, dict[str, Any]] = {}
        for index, e164 in enumerate(numbers, start=1):
            self.numbers[e164] = {
                "sid": f"PN{index:032x}",
                "account_sid": account_sid,
                "phone_number": e164,
                "friendly_name": f"({e164[2:5]}) {e164[5:8]}-{e164[8:]}",
                "capabilities": {"voice": True, "sms": True, "mms": index == 1, "fax": False},
                "voice_url": "https://demo.twilio.com/welcome/voice/",
                "voice_method": "POST",
                "sms_url": "https://demo.twilio.com/welcome/sms/reply",
                "sms_method": "POST",
                "status_callback": "",
                "status_callback_method": "POST",
                "voice_application_sid": None,
                "sms_application_sid": None,
                "trunk_sid": None,
            }
        self.updates: list[dict[str, str]] = []
        self.base_url = ""
        #: Messaging Services by SID: ``friendly_name``, ``use_inbound_webhook_on_number`` and
        #: ``numbers`` (the PN SIDs in the service).
        self.services: dict[str, dict[str, Any]] = {}

    @property
    def account_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}"

    def install(self, http: responses.RequestsMock, base_url: str) -> None:
        """Serve the account under ``base_url`` on the ``responses`` mock ``http``."""
        self.base_url = base_url
        prefix = re.escape(base_url + self.account_path)
        http.add_callback(responses.GET, re.compile(rf"{prefix}\.json(\?.*)?$"), self._account)
        http.add_callback(
            responses.GET, re.compile(rf"{prefix}/IncomingPhoneNumbers\.json(\?.*)?$"), self._list
        )
        http.add_callback(
            responses.POST, re.compile(rf"{prefix}/IncomingPhoneNumbers/(PN\w+)\.json$"),
            self._update,
        )
        services = re.escape(base_url) + r"/v1/Services/(MG\w+)"
        http.add_callback(responses.GET, re.compile(rf"{services}$"), self._service)
        http.add_callback(responses.GET, re.compile(rf"{services}/PhoneNumbers/(PN\w+)$"),
                          self._service_number)

    def _authorised(self, request: Any) -> bool:
        pairs = [(self.account_sid, self.auth_token)] + ([self.api_key] if self.api_key else [])
        accepted = {"Basic " + base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in pairs}
        return request.headers.get("Authorization") in accepted

    def _account(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        body = {"sid": self.account_sid, "friendly_name": "Acme Plumbing", "status": "active"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _list(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        wanted = query.get("PhoneNumber")
        rows = [r for r in self.numbers.values() if wanted is None or r["phone_number"] == wanted]
        chunk = rows[page * size:(page + 1) * size]
        path = f"{self.account_path}/IncomingPhoneNumbers.json"
        more = (page + 1) * size < len(rows)
        next_query = {**query, "Page": str(page + 1), "PageToken": f"PA{page + 1}"}
        body = {
            "incoming_phone_numbers": [dict(r) for r in chunk],
            "page": page,
            "page_size": size,
            "next_page_uri": f"{path}?{urlencode(next_query)}" if more else None,
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _service(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        sid = urlsplit(request.url).path.rsplit("/", 1)[-1]
        service = self.services.get(sid)
        if service is None:
            return _error(404, 20404, "The requested resource was not found")
        body = {"sid": sid, "friendly_name": service["friendly_name"],
                "use_inbound_webhook_on_number": service["use_inbound_webhook_on_number"],
                "inbound_request_url": "https://service.example.com/in"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _service_number(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        parts = urlsplit(request.url).path.split("/")
        service, number_sid = self.services.get(parts[-3]), parts[-1]
        if service is None or number_sid not in service["numbers"]:
            return _error(404, 20404, "The requested resource was not found")
        body = {"sid": number_sid, "service_sid": parts[-3], "capabilities": ["SMS"]}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _update(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        sid = urlsplit(request.url).path.rsplit("/", 1)[-1].removesuffix(".json")
        row = next((r for r in self.numbers.values() if r["sid"] == sid), None)
        if row is None:
            return _error(404, 20404, "The requested resource was not found")
        form = {k: v[0] if v else "" for k, v in
                parse_qs(request.body or "", keep_blank_values=True).items()}
        for name, value in form.items():
            if name not in _FIELDS:
                return _error(400, 21200, f"Unknown parameter {name}")
            if name in _METHOD_FIELDS and value not in ("GET", "POST"):
                return _error(400, 21200, f"{name} must be GET or POST")
        self.updates.append(form)
        for name, value in form.items():
            row[_FIELDS[name]] = value or None
        return 200, {"Content-Type": "application/json"}, json.dumps(row)
