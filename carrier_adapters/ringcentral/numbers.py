"""RingCentral's phone numbers: the setup calls this adapter can make.

- Credentials: the JWT grant itself (``POST /restapi/oauth/token``) proves the app's client id
  and secret and the user's JWT; a refusal (``OAU-*``) is reported as refused credentials.
- Numbers: ``GET /restapi/v1.0/account/{accountId}/phone-number`` (``perPage``, ``page``,
  ``navigation.nextPage``), each with ``phoneNumber``, ``usageType``, ``type`` (``VoiceFax``,
  ``VoiceOnly``, ``FaxOnly``) and ``features`` (``SmsSender``, ``MmsSender`` ...)
  (https://developers.ringcentral.com/api-reference/Phone-Numbers/listAccountPhoneNumbers).

Webhooks are not per number: RingCentral posts to subscriptions (``POST /restapi/v1.0/
subscription``) that expire and must be renewed, which the connector does not manage yet. The
setup page shows the URL and the event filters to subscribe instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from carrier_adapters.provisioning import OwnedNumber
from connector.kernel.phone import to_e164

from .api import RingCentralRestClient

PAGE_SIZE = 100
MAX_PAGES = 20


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


def list_numbers(client: RingCentralRestClient) -> list[OwnedNumber]:
    """The account's numbers that take calls or send texts (fax-only numbers are left out)."""
    found = []
    for record in _records(client):
        e164 = to_e164(str(record.get("phoneNumber") or ""))
        capabilities = _capabilities(record)
        if e164 is not None and capabilities:
            label = str(record.get("label") or record.get("usageType") or "")
            found.append(OwnedNumber(e164=e164, friendly_name=label, capabilities=capabilities,
                                     carrier_id=str(record.get("id") or "")))
    return found
