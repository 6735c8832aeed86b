"""Twilio's account and IncomingPhoneNumber resources: the setup calls.

- Credentials: ``GET /2010-04-01/Accounts/{AccountSid}.json``
  (https://www.twilio.com/docs/iam/api/account).
- Numbers: ``GET .../IncomingPhoneNumbers.json``, paged by ``next_page_uri``, and
  ``POST .../IncomingPhoneNumbers/{Sid}.json`` to change ``VoiceUrl``, ``SmsUrl``,
  ``StatusCallback`` and their methods
  (https://www.twilio.com/docs/phone-numbers/api/incomingphonenumber-resource).

Quirks, from the resource's field descriptions:

- A number with a ``voice_application_sid`` (a TwiML App) or a ``trunk_sid`` (Elastic SIP
  Trunking) ignores its own voice URLs. To let textback answer its calls the TwiML App is
  detached (``VoiceApplicationSid`` set empty, shown as a change); a trunk is never detached,
  since that would cut the business's phones off: such a number is refused with the reason.
  Keeping the business's own call flow (``calls="watch"``) sets only the status callback, which
  a TwiML App overrides too, so that combination is refused as well.
- Likewise an ``sms_application_sid`` overrides ``SmsUrl``: it is detached.
- A number in a Messaging Service whose incoming messages go to the service's own webhook
  (``use_inbound_webhook_on_number`` false) still ignores ``SmsUrl``. When the account names
  its Messaging Service, the service (``GET https://messaging.twilio.com/v1/Services/{sid}``) and
  the number's membership (``.../PhoneNumbers/{PhoneNumberSid}``, 404 when not in it) are read
  first, and such a number is refused with the setting to change
  (https://www.twilio.com/docs/messaging/api/service-resource).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

from carrier_adapters.provisioning import CallHandling, OwnedNumber, WebhookChange, WebhookUrls
from connector.kernel.errors import PermanentProviderError
from connector.kernel.phone import mask, to_e164

from .api import TwilioRestClient
from .webhooks import CARRIER

#: Numbers per page (Twilio allows up to 1000) and the most pages read: 2,000 numbers.
PAGE_SIZE = 200
MAX_PAGES = 10


def check_credentials(client: TwilioRestClient) -> None:
    """Fetch the account: a 401 (error 20003) means the SID, token or API key is wrong."""
    client.call_json("GET", f"{client.account_url}.json")


def _capabilities(resource: Mapping[str, Any]) -> frozenset[str]:
    flags = resource.get("capabilities")
    if not isinstance(flags, dict):
        return frozenset()
    # Twilio spells them ``voice``/``sms``/``mms`` in JSON (``SMS``/``MMS`` in XML).
    return frozenset(k.lower() for k in ("voice", "sms", "mms") if flags.get(k) is True)


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def to_owned_number(resource: Mapping[str, Any]) -> OwnedNumber | None:
    """An :class:`OwnedNumber` from an IncomingPhoneNumber resource; None without a number."""
    e164 = to_e164(str(resource.get("phone_number") or ""))
    if e164 is None:
        return None
    return OwnedNumber(
        e164=e164,
        friendly_name=str(resource.get("friendly_name") or ""),
        capabilities=_capabilities(resource),
        voice_url=_text(resource.get("voice_url")),
        sms_url=_text(resource.get("sms_url")),
        status_url=_text(resource.get("status_callback")),
        carrier_id=_text(resource.get("sid")),
    )


def _resources(client: TwilioRestClient, **params: str) -> list[dict[str, Any]]:
    url: str | None = f"{client.account_url}/IncomingPhoneNumbers.json"
    query: dict[str, str] | None = {"PageSize": str(PAGE_SIZE), **params}
    found: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if url is None:
            break
        page = client.call_json("GET", url, params=query)
        found += [r for r in page.get("incoming_phone_numbers") or [] if isinstance(r, dict)]
        next_uri = page.get("next_page_uri")
        # next_page_uri is a path on the API host, query string included.
        url = urljoin(client.base_url + "/", next_uri) if isinstance(next_uri, str) else None
        query = None
    return found


def list_numbers(client: TwilioRestClient) -> list[OwnedNumber]:
    """Every number of the account (up to ``PAGE_SIZE * MAX_PAGES``), in Twilio's order."""
    numbers = (to_owned_number(r) for r in _resources(client))
    return [n for n in numbers if n is not None]


def _desired(urls: WebhookUrls, calls: CallHandling) -> dict[str, str]:
    """The number's settings that send its calls and texts to textback."""
    wanted = {"SmsUrl": urls.sms, "SmsMethod": "POST"}
    if calls == "forward":
        wanted |= {"VoiceUrl": urls.voice, "VoiceMethod": "POST"}
    # The number's status callback reports every call's end to the voice URL: the safety net
    # beside <Dial action>, and the only signal when the business keeps its own call flow.
    wanted |= {"StatusCallback": urls.voice, "StatusCallbackMethod": "POST"}
    return wanted


#: Our form field -> the resource's JSON field.
_JSON_FIELD = {
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "VoiceApplicationSid": "voice_application_sid",
    "SmsApplicationSid": "sms_application_sid",
}


def _overriding_service(client: TwilioRestClient, number_sid: str) -> str | None:
    """The name of the account's Messaging Service when the number is in it and the service
    takes the number's incoming messages itself; None otherwise."""
    sid = client.messaging_service_sid
    if not sid:
        return None
    service = client.call_json("GET", f"{client.messaging_url}/v1/Services/{sid}")
    if service.get("use_inbound_webhook_on_number") is True:
        return None
    try:
        client.call_json(
            "GET", f"{client.messaging_url}/v1/Services/{sid}/PhoneNumbers/{number_sid}"
        )
    except PermanentProviderError as exc:
        if exc.status == 404:
            return None
        raise
    return str(service.get("friendly_name") or sid)


def point_webhooks(
    client: TwilioRestClient, number: str, urls: WebhookUrls, calls: CallHandling
) -> list[WebhookChange]:
    """Point ``number`` at ``urls``; one POST with the settings that differ (none when all
    already match). See the module docstring for the numbers that are refused."""
    e164 = to_e164(number)
    matches = [
        r for r in (_resources(client, PhoneNumber=e164) if e164 else [])
        if to_e164(str(r.get("phone_number") or "")) == e164
    ]
    if not matches:
        raise PermanentProviderError(
            f"twilio: the account owns no number {mask(number)}", provider=CARRIER, status=404
        )
    resource = matches[0]
    if _text(resource.get("trunk_sid")):
        raise PermanentProviderError(
            "twilio: the number's calls go to an Elastic SIP trunk, which ignores its voice "
            "webhooks; textback cannot watch them (send the trunk's calls through a TwiML "
            "<Dial> or point the webhooks by hand)",
            provider=CARRIER,
        )
    service = _overriding_service(client, str(resource.get("sid") or ""))
    if service is not None:
        raise PermanentProviderError(
            f"twilio: the number is in the Messaging Service {service}, which sends incoming "
            "messages to the service's own webhook; in the service's Integration settings "
            "choose 'Defer to sender's webhook', then point the number again",
            provider=CARRIER,
        )
    wanted = _desired(urls, calls)
    if _text(resource.get("voice_application_sid")):
        if calls == "watch":
            raise PermanentProviderError(
                "twilio: the number's calls are handled by a TwiML App, which overrides its "
                "status callback; set the App's status callback to the voice URL by hand, or "
                "let textback forward the calls",
                provider=CARRIER,
            )
        wanted["VoiceApplicationSid"] = ""
    if _text(resource.get("sms_application_sid")):
        wanted["SmsApplicationSid"] = ""
    before = {field: _text(resource.get(_JSON_FIELD[field])) for field in wanted}
    update = {f: v for f, v in wanted.items() if before[f] != (v or None)}
    after_resource: Mapping[str, Any] = resource
    if update:
        sid = str(resource.get("sid") or "")
        after_resource = client.call_json(
            "POST", f"{client.account_url}/IncomingPhoneNumbers/{sid}.json", data=update
        )
    return [
        WebhookChange(field, before[field], _text(after_resource.get(_JSON_FIELD[field])))
        for field in wanted
    ]
