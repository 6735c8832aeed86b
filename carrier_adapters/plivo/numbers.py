"""Plivo's account, number and Application resources: the setup calls.

A Plivo number keeps no webhook of its own: its **Application** holds the Answer URL (calls)
and the Message URL (texts), and serves every number linked to it.

- Credentials: ``GET /v1/Account/{auth_id}/`` (https://www.plivo.com/docs/account/api/account).
- Numbers: ``GET /v1/Account/{auth_id}/Number/`` (``limit`` <= 20, ``offset``, ``meta.next``),
  each with ``voice_enabled``/``sms_enabled``/``mms_enabled`` and ``application``, the URI of
  its Application (https://www.plivo.com/docs/numbers/api/account-phone-number); the
  Applications are read once each (``GET .../Application/{app_id}/``).
- Pointing: ``POST .../Application/{app_id}/`` with ``answer_url``/``answer_method`` and
  ``message_url``/``message_method``
  (https://www.plivo.com/docs/voice/api/application/update-an-application). The change names the
  Application, since every number on it follows.

Plivo reports a missed call to textback only through the ``<Dial action>`` textback answers a
call with (its Hangup URL request carries no dial outcome), so textback must answer the calls:
keeping the business's own call flow (``calls="watch"``) is refused, as is a number linked to no
Application.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from carrier_adapters.provisioning import CallHandling, OwnedNumber, WebhookChange, WebhookUrls
from connector.kernel.errors import PermanentProviderError
from connector.kernel.phone import mask, to_e164

from .api import PlivoRestClient
from .webhooks import CARRIER

PAGE_SIZE = 20
MAX_PAGES = 100


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def _app_id(number: Mapping[str, Any]) -> str | None:
    """The Application id at the end of the number's ``application`` URI."""
    uri = _text(number.get("application"))
    parts = [p for p in (uri or "").split("/") if p]
    return parts[-1] if parts and len(parts) >= 2 and parts[-2] == "Application" else None


def check_credentials(client: PlivoRestClient) -> None:
    """Fetch the account: a 401 means the Auth ID or Auth Token is wrong."""
    client.call_json("GET", "")


def _numbers(client: PlivoRestClient) -> Iterator[dict[str, Any]]:
    for page in range(MAX_PAGES):
        body = client.call_json(
            "GET", "Number/", params={"limit": PAGE_SIZE, "offset": page * PAGE_SIZE}
        )
        yield from (n for n in body.get("objects") or [] if isinstance(n, dict))
        meta = body.get("meta")
        if not isinstance(meta, dict) or not meta.get("next"):
            return


class _Applications:
    def __init__(self, client: PlivoRestClient) -> None:
        self.client = client
        self._seen: dict[str, Mapping[str, Any]] = {}

    def get(self, app_id: str) -> Mapping[str, Any]:
        if app_id not in self._seen:
            self._seen[app_id] = self.client.call_json("GET", f"Application/{app_id}/")
        return self._seen[app_id]


def _owned(number: Mapping[str, Any], apps: _Applications) -> OwnedNumber | None:
    e164 = to_e164("+" + str(number.get("number") or "").lstrip("+"))
    if e164 is None:
        return None
    app_id = _app_id(number)
    app = apps.get(app_id) if app_id else {}
    capabilities = {
        name for name in ("voice", "sms", "mms") if number.get(f"{name}_enabled") is True
    }
    return OwnedNumber(
        e164=e164,
        friendly_name=str(number.get("alias") or ""),
        capabilities=frozenset(capabilities),
        voice_url=_text(app.get("answer_url")),
        sms_url=_text(app.get("message_url")),
        status_url=_text(app.get("hangup_url")),
        carrier_id=e164.lstrip("+"),
    )


def list_numbers(client: PlivoRestClient) -> list[OwnedNumber]:
    """Every number of the account with its Application's URLs."""
    apps = _Applications(client)
    found = (_owned(n, apps) for n in _numbers(client))
    return [n for n in found if n is not None]


def point_webhooks(
    client: PlivoRestClient, number: str, urls: WebhookUrls, calls: CallHandling
) -> list[WebhookChange]:
    """Set the number's Application's Answer and Message URLs (see the module docstring)."""
    e164 = to_e164(number)
    record = next((n for n in _numbers(client)
                   if e164 and to_e164("+" + str(n.get("number") or "").lstrip("+")) == e164),
                  None)
    if record is None:
        raise PermanentProviderError(
            f"plivo: the account owns no number {mask(number)}", provider=CARRIER, status=404
        )
    if calls == "watch":
        raise PermanentProviderError(
            "plivo: textback learns of a missed call only from the <Dial> it answers the call "
            "with, so it must answer the number's calls", provider=CARRIER,
        )
    app_id = _app_id(record)
    if app_id is None:
        raise PermanentProviderError(
            "plivo: the number is linked to no Application; link one in the Plivo console "
            "(Phone Numbers > the number > Application Type: XML Application)", provider=CARRIER,
        )
    app = client.call_json("GET", f"Application/{app_id}/")
    label = f"Application {app.get('app_name') or app_id}"
    wanted = {"answer_url": urls.voice, "answer_method": "POST",
              "message_url": urls.sms, "message_method": "POST"}
    changes = [WebhookChange(f"{label}: {k}", _text(app.get(k)), v) for k, v in wanted.items()]
    if any(c.changed for c in changes):
        client.call_json("POST", f"Application/{app_id}/", json=wanted)
    return changes
