"""Vonage's Numbers and Application APIs: the setup calls this adapter can make.

- Credentials and numbers: ``GET https://rest.nexmo.com/account/numbers`` (``size`` <= 100,
  ``index`` from 1, ``count``), authenticated with the ``api_key`` and ``api_secret`` query
  parameters (https://developer.vonage.com/en/api/numbers). Each number lists its ``features``
  (``VOICE``, ``SMS``, ``MMS``) and the application that handles it (``app_id``, or the older
  ``voiceCallbackValue``/``messagesCallbackValue`` with type ``app``); a number whose calls go
  straight to a phone or SIP address (``voiceCallbackType`` ``tel``/``sip``) has no voice URL.
- The URLs: ``GET https://api.nexmo.com/v2/applications/{id}`` (Basic auth with the same key and
  secret), ``capabilities.voice.webhooks.answer_url`` / ``event_url`` and
  ``capabilities.messages.webhooks.inbound_url`` / ``status_url``
  (https://developer.vonage.com/en/api/application.v2), read once per application.

Pointing is not offered: the Application API updates an application with ``PUT``, which replaces
the whole application (its name, every capability and their settings), so a partial change
could silently undo the business's other settings. The setup page shows the URLs to paste into
the application in the dashboard instead. All of this needs the API secret: an account that
sends with an application key only is told to add it (:class:`CredentialsRejectedError`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests

from carrier_adapters.errors import request_json
from carrier_adapters.provisioning import OwnedNumber
from connector.kernel.errors import CredentialsRejectedError
from connector.kernel.phone import to_e164

from .api import ERRORS
from .webhooks import CARRIER

REST_BASE_URL = "https://rest.nexmo.com"
PAGE_SIZE = 100
MAX_PAGES = 20


class VonageSetupClient:
    """The Numbers and Application reads, with the API key and secret; nothing in ``repr``."""

    def __init__(
        self, *, session: requests.Session, rest_url: str, api_url: str, api_key: str,
        api_secret: str | None,
    ) -> None:
        self._session = session
        self.rest_url, self.api_url = rest_url, api_url
        self._key, self._secret = api_key, api_secret

    def __repr__(self) -> str:
        return f"<VonageSetupClient {self.rest_url}>"

    def _secret_or_raise(self) -> str:
        if not self._secret:
            raise CredentialsRejectedError(
                "Vonage's Numbers API needs the API secret: add api_secret (API Dashboard, API "
                "settings) so textback can check the credentials and list the numbers",
                provider=CARRIER,
            )
        return self._secret

    def numbers_page(self, index: int, size: int) -> dict[str, Any]:
        params = {"api_key": self._key, "api_secret": self._secret_or_raise(),
                  "size": size, "index": index}
        return request_json(self._session, "GET", f"{self.rest_url}/account/numbers", ERRORS,
                            params=params)

    def application(self, app_id: str) -> dict[str, Any]:
        auth = (self._key, self._secret_or_raise())
        return request_json(self._session, "GET", f"{self.api_url}/v2/applications/{app_id}",
                            ERRORS, auth=auth)


def check_credentials(client: VonageSetupClient) -> None:
    """One number's page: a 401 means the API key or secret is wrong."""
    client.numbers_page(1, 1)


def _numbers(client: VonageSetupClient) -> Iterator[dict[str, Any]]:
    for index in range(1, MAX_PAGES + 1):
        body = client.numbers_page(index, PAGE_SIZE)
        rows = [n for n in body.get("numbers") or [] if isinstance(n, dict)]
        yield from rows
        count = body.get("count")
        if len(rows) < PAGE_SIZE or not isinstance(count, int) or index * PAGE_SIZE >= count:
            return


def _address(webhooks: Any, name: str) -> str | None:
    hook = webhooks.get(name) if isinstance(webhooks, dict) else None
    address = hook.get("address") if isinstance(hook, dict) else None
    return str(address) if address else None


def _app_id(number: Mapping[str, Any]) -> str | None:
    if number.get("app_id"):
        return str(number["app_id"])
    for kind in ("voice", "messages"):
        if number.get(f"{kind}CallbackType") == "app" and number.get(f"{kind}CallbackValue"):
            return str(number[f"{kind}CallbackValue"])
    return None


def list_numbers(client: VonageSetupClient) -> list[OwnedNumber]:
    """Every number with its application's answer, event and inbound URLs."""
    apps: dict[str, Mapping[str, Any]] = {}
    found = []
    for number in _numbers(client):
        e164 = to_e164("+" + str(number.get("msisdn") or "").lstrip("+"))
        if e164 is None:
            continue
        app_id = _app_id(number)
        if app_id and app_id not in apps:
            apps[app_id] = client.application(app_id)
        capabilities = (apps.get(app_id) or {}).get("capabilities") if app_id else None
        capabilities = capabilities if isinstance(capabilities, dict) else {}
        voice = (capabilities.get("voice") or {}).get("webhooks")
        messages = (capabilities.get("messages") or {}).get("webhooks")
        by_phone = number.get("voiceCallbackType") in ("tel", "sip")
        features = {str(f).lower() for f in number.get("features") or []}
        found.append(OwnedNumber(
            e164=e164,
            friendly_name=str(number.get("type") or ""),
            capabilities=frozenset(features & {"voice", "sms", "mms"}),
            voice_url=None if by_phone else _address(voice, "answer_url"),
            sms_url=_address(messages, "inbound_url") or (
                str(number["moHttpUrl"]) if number.get("moHttpUrl") else None),
            status_url=None if by_phone else _address(voice, "event_url"),
            carrier_id=app_id,
        ))
    return found
