"""RingCentral's phone numbers: the setup calls this adapter can make.

- Credentials: the JWT grant itself (``POST /restapi/oauth/token``) proves the app's client id
  and secret and the user's JWT; a refusal (``OAU-*``) is reported as refused credentials.
- Numbers: ``GET /restapi/v1.0/account/{accountId}/phone-number`` (``perPage``, ``page``,
  ``navigation.nextPage``), each with ``phoneNumber``, ``usageType``, ``type`` (``VoiceFax``,
  ``VoiceOnly``, ``FaxOnly``) and ``features`` (``SmsSender``, ``MmsSender`` ...)
  (https://developers.ringcentral.com/api-reference/Phone-Numbers/listAccountPhoneNumbers).

Webhooks are not per number: RingCentral posts to a subscription of the app
(https://developers.ringcentral.com/guide/notifications/webhooks/creating-webhooks). Pointing
reads the app's subscriptions (``GET /restapi/v1.0/subscription``) and keeps an active one whose
``deliveryMode.address`` is our ``voice`` URL, updating its event filters when they differ
(``PUT .../subscription/{id}``); otherwise it creates one (``POST``) with our verification token
and the longest lifetime a WebHook subscription may have, 315360000 s (ten years; renewing
before then is still the operator's job). RingCentral checks the address while creating it
(the ``Validation-Token`` handshake textback answers), so textback must be reachable at its
public URL. The subscription serves every number of the account; the number given is only
checked to be one of the account's. RingCentral reports calls whatever textback answers, so
``calls`` makes no difference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from carrier_adapters.provisioning import CallHandling, OwnedNumber, WebhookChange, WebhookUrls
from connector.kernel.errors import PermanentProviderError, ProviderError
from connector.kernel.phone import mask, to_e164

from .api import RingCentralRestClient
from .webhooks import CARRIER

PAGE_SIZE = 100
MAX_PAGES = 20
#: The longest lifetime RingCentral allows a WebHook subscription.
WEBHOOK_LIFETIME = 315_360_000


def check_credentials(client: RingCentralRestClient) -> None:
    """One page of one number, which needs a token: the grant is what is checked."""
    client.account_json("/phone-number", params={"perPage": 1, "page": 1})


def _records(client: RingCentralRestClient) -> Iterator[dict[str, Any]]:
    for page in range(1, MAX_PAGES + 1):
        body = client.account_json("/phone-number", params={"perPage": PAGE_SIZE, "page": page})
        yield from (r for r in body.get("records") or [] if isinstance(r, dict))
        navigation = body.get("navigation")
        if not isinstance(navigation, dict) or not navigation.get("nextPage"):
            return


def _capabilities(record: Mapping[str, Any]) -> frozenset[str]:
    features = set(record.get("features") or [])
    found = set()
    if record.get("type") in ("VoiceFax", "VoiceOnly"):
        found.add("voice")
    if "SmsSender" in features:
        found.add("sms")
    if "MmsSender" in features:
        found.add("mms")
    return frozenset(found)


def _subscribed(client: RingCentralRestClient) -> tuple[str | None, str | None]:
    """The addresses the app's active subscriptions deliver calls and texts to, (None, None)
    when the app may not read its subscriptions."""
    try:
        listed = client.call_json("GET", "/subscription").get("records") or []
    except ProviderError as exc:
        if exc.status == 403:
            return None, None
        raise
    voice = sms = None
    for record in listed:
        mode = record.get("deliveryMode") if isinstance(record, dict) else None
        if not isinstance(mode, dict) or record.get("status") != "Active":
            continue
        filters = " ".join(str(f) for f in record.get("eventFilters") or [])
        if "/telephony/sessions" in filters:
            voice = voice or mode.get("address")
        if "/message-store/instant" in filters:
            sms = sms or mode.get("address")
    return voice, sms


def list_numbers(client: RingCentralRestClient) -> list[OwnedNumber]:
    """The account's numbers that take calls or send texts (fax-only numbers are left out),
    with the addresses of the subscriptions that deliver the account's calls and texts."""
    voice_url, sms_url = _subscribed(client)
    found = []
    for record in _records(client):
        e164 = to_e164(str(record.get("phoneNumber") or ""))
        capabilities = _capabilities(record)
        if e164 is not None and capabilities:
            label = str(record.get("label") or record.get("usageType") or "")
            found.append(OwnedNumber(e164=e164, friendly_name=label, capabilities=capabilities,
                                     voice_url=voice_url, sms_url=sms_url,
                                     carrier_id=str(record.get("id") or "")))
    return found


def event_filters(client: RingCentralRestClient) -> list[str]:
    """The account's telephony sessions and the extension's instant SMS."""
    return [
        f"/restapi/v1.0/account/{client.account_id}/telephony/sessions",
        f"/restapi/v1.0/account/{client.account_id}/extension/{client.extension_id}"
        "/message-store/instant?type=SMS",
    ]


def _ours(record: Mapping[str, Any], address: str) -> bool:
    mode = record.get("deliveryMode")
    return (isinstance(mode, dict) and mode.get("address") == address
            and record.get("status") == "Active")


def point_webhooks(
    client: RingCentralRestClient, number: str, urls: WebhookUrls, calls: CallHandling
) -> list[WebhookChange]:
    """Keep, update or create the subscription delivering to our ``voice`` URL (see the module
    docstring); the changes name its address and event filters."""
    e164 = to_e164(number)
    if e164 is None or e164 not in {n.e164 for n in list_numbers(client)}:
        raise PermanentProviderError(
            f"ringcentral: the account owns no number {mask(number)}", provider=CARRIER,
            status=404,
        )
    wanted = event_filters(client)
    listed = client.call_json("GET", "/subscription").get("records") or []
    current = next((r for r in listed if isinstance(r, dict) and _ours(r, urls.voice)), None)
    before_filters = sorted(current.get("eventFilters") or []) if current else None
    if current is None:
        client.call_json("POST", "/subscription", json={
            "eventFilters": wanted,
            "deliveryMode": {"transportType": "WebHook", "address": urls.voice,
                             "verificationToken": client.verification_token},
            "expiresIn": WEBHOOK_LIFETIME,
        })
    elif before_filters != sorted(wanted):
        client.call_json("PUT", f"/subscription/{current['id']}",
                         json={"eventFilters": wanted, "expiresIn": WEBHOOK_LIFETIME})
    return [
        WebhookChange("subscription: address", urls.voice if current else None, urls.voice),
        WebhookChange("subscription: event filters",
                      " ".join(before_filters) if before_filters is not None else None,
                      " ".join(sorted(wanted))),
    ]
