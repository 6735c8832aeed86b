"""Telnyx's number, connection and messaging-profile resources: the setup calls.

Telnyx keeps no webhook URL on a number. A number's texts go to its **messaging profile**'s
``webhook_url``, and its calls to its **connection**: a TeXML application (``voice_url``, and
``status_callback`` for call progress) or a Call Control application (``webhook_event_url``);
SIP connections send no webhooks at all. So:

- :func:`list_numbers` reads ``GET /v2/phone_numbers`` (``page[number]``/``page[size]``, with
  ``meta.total_pages``), then each distinct profile (``GET /v2/messaging_profiles/{id}``) and
  connection (``GET /v2/connections/{id}``, its ``record_type``, and for TeXML
  ``GET /v2/texml_applications/{id}``) once. A number takes calls when it has a connection and
  texts when it is in a messaging profile (the number list carries no capability flags).
- :func:`point_webhooks` sets the profile's ``webhook_url`` to our ``sms`` URL (inbound texts and
  delivery reports, as the adapter's ``url_kinds`` declare) and, for a TeXML application, its
  ``voice_url`` (when textback forwards the calls) and ``status_callback`` to our ``voice`` URL.
  **A profile or application serves every number on it**: pointing one number points them all,
  and the changes name the profile and application. A Call Control application belongs to the
  business's own call-handling code, and a SIP connection has no webhook, so such numbers are
  refused with the reason; their URLs are pasted by hand.

References: https://developers.telnyx.com/api-reference/phone-number-configurations/list-phone-numbers ,
https://developers.telnyx.com/api-reference/messaging-profiles/update-a-messaging-profile ,
https://developers.telnyx.com/api-reference/connections/retrieve-a-connection and
https://developers.telnyx.com/api-reference/texml-applications/update-a-texml-application
(``friendly_name`` and ``voice_url`` are required on update, so both are always sent).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from carrier_adapters.provisioning import CallHandling, OwnedNumber, WebhookChange, WebhookUrls
from connector.kernel.errors import PermanentProviderError
from connector.kernel.phone import mask, to_e164

from .api import TelnyxRestClient
from .webhooks import CARRIER

PAGE_SIZE = 250
MAX_PAGES = 20
TEXML = "texml_application"
CALL_CONTROL = "call_control_application"


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def check_credentials(client: TelnyxRestClient) -> None:
    """One page of one number: a 401 (code 10009) means the API key is wrong."""
    client.call_json("GET", "/v2/phone_numbers", params={"page[number]": 1, "page[size]": 1})


def _number_pages(client: TelnyxRestClient, **filters: str) -> Iterator[dict[str, Any]]:
    for page in range(1, MAX_PAGES + 1):
        body = client.call_json(
            "GET", "/v2/phone_numbers",
            params={"page[number]": page, "page[size]": PAGE_SIZE, **filters},
        )
        yield from (n for n in body.get("data") or [] if isinstance(n, dict))
        meta = body.get("meta") or {}
        total = meta.get("total_pages") if isinstance(meta, dict) else None
        if not isinstance(total, int) or page >= total:
            return


@dataclass(frozen=True)
class _Voice:
    """A number's connection as far as webhooks go."""

    kind: str | None
    name: str
    voice_url: str | None = None
    status_url: str | None = None
    resource: Mapping[str, Any] | None = None


class _Reader:
    """Reads each messaging profile and connection once per call."""

    def __init__(self, client: TelnyxRestClient) -> None:
        self.client = client
        self._profiles: dict[str, Mapping[str, Any]] = {}
        self._voices: dict[str, _Voice] = {}

    def profile(self, profile_id: str) -> Mapping[str, Any]:
        if profile_id not in self._profiles:
            body = self.client.call_json("GET", f"/v2/messaging_profiles/{profile_id}")
            self._profiles[profile_id] = body.get("data") or {}
        return self._profiles[profile_id]

    def voice(self, connection_id: str) -> _Voice:
        if connection_id not in self._voices:
            data = self.client.call_json("GET", f"/v2/connections/{connection_id}").get("data")
            data = data if isinstance(data, dict) else {}
            kind = _text(data.get("record_type"))
            name = str(data.get("connection_name") or connection_id)
            if kind == TEXML:
                app = self.client.call_json(
                    "GET", f"/v2/texml_applications/{connection_id}"
                ).get("data") or {}
                voice = _Voice(kind, str(app.get("friendly_name") or name),
                               _text(app.get("voice_url")), _text(app.get("status_callback")),
                               app)
            else:
                voice = _Voice(kind, name, _text(data.get("webhook_event_url")))
            self._voices[connection_id] = voice
        return self._voices[connection_id]

    def owned(self, number: Mapping[str, Any]) -> OwnedNumber | None:
        e164 = to_e164(str(number.get("phone_number") or ""))
        if e164 is None:
            return None
        connection = _text(number.get("connection_id"))
        profile_id = _text(number.get("messaging_profile_id"))
        voice = self.voice(connection) if connection else None
        profile = self.profile(profile_id) if profile_id else {}
        capabilities = {"voice"} if connection else set()
        if profile_id:
            capabilities.add("sms")
        tags = number.get("tags")
        return OwnedNumber(
            e164=e164,
            friendly_name=", ".join(str(t) for t in tags) if isinstance(tags, list) else "",
            capabilities=frozenset(capabilities),
            voice_url=voice.voice_url if voice else None,
            sms_url=_text(profile.get("webhook_url")),
            status_url=voice.status_url if voice else None,
            carrier_id=_text(number.get("id")),
        )


def list_numbers(client: TelnyxRestClient) -> list[OwnedNumber]:
    """Every number of the account, with its profile's and connection's webhook URLs."""
    reader = _Reader(client)
    found = (reader.owned(n) for n in _number_pages(client))
    return [n for n in found if n is not None]


def _refuse(reason: str) -> PermanentProviderError:
    return PermanentProviderError(f"telnyx: {reason}", provider=CARRIER)


def point_webhooks(
    client: TelnyxRestClient, number: str, urls: WebhookUrls, calls: CallHandling
) -> list[WebhookChange]:
    """Point the number's messaging profile and TeXML application at ``urls``; see the module
    docstring for what is shared and what is refused. A refused number changes nothing."""
    e164 = to_e164(number)
    record = next(
        (n for n in (_number_pages(client, **{"filter[phone_number]": e164}) if e164 else [])
         if to_e164(str(n.get("phone_number") or "")) == e164),
        None,
    )
    if record is None:
        raise PermanentProviderError(
            f"telnyx: the account owns no number {mask(number)}", provider=CARRIER, status=404
        )
    profile_id = _text(record.get("messaging_profile_id"))
    if profile_id is None:
        raise _refuse("the number is in no messaging profile; add it to one in Mission Control "
                      "(Messaging) first")
    connection = _text(record.get("connection_id"))
    reader = _Reader(client)
    voice = reader.voice(connection) if connection else None
    if voice is None or voice.kind != TEXML:
        what = "no connection" if voice is None else (
            "a Call Control application, which your own code answers" if voice.kind == CALL_CONTROL
            else "a SIP connection, which sends no webhooks")
        raise _refuse(f"the number's calls go to {what}; assign it to a TeXML application for "
                      "textback to answer or watch its calls, or paste the URLs by hand")
    profile = reader.profile(profile_id)
    profile_name = str(profile.get("name") or profile_id)
    changes = [WebhookChange(f"messaging profile {profile_name}: webhook_url",
                             _text(profile.get("webhook_url")), urls.sms)]
    if changes[0].changed:
        client.call_json("PATCH", f"/v2/messaging_profiles/{profile_id}",
                         json={"webhook_url": urls.sms})
    app = voice.resource or {}
    wanted = {"status_callback": urls.voice, "status_callback_method": "post"}
    if calls == "forward":
        wanted = {"voice_url": urls.voice, "voice_method": "post", **wanted}
    label = f"TeXML application {voice.name}"
    app_changes = [WebhookChange(f"{label}: {k}", _text(app.get(k)), v) for k, v in wanted.items()]
    if any(c.changed for c in app_changes):
        body = {"friendly_name": app.get("friendly_name") or voice.name,
                "voice_url": app.get("voice_url") or urls.voice, **wanted}
        client.call_json("PATCH", f"/v2/texml_applications/{connection}", json=body)
    return changes + app_changes
