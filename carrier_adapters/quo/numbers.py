"""Quo's phone numbers: the setup calls this adapter can make.

``GET /v1/phone-numbers`` lists the workspace's numbers (``data[{id, number, name, ...}]``;
https://www.quo.com/docs/mdx/api-reference/phone-numbers/list-phone-numbers-in-your-workspace)
and, with the workspace API key, doubles as the credentials check. Every Quo number takes calls
and texts.

Where the webhooks point is not shown and not changed: Quo keeps webhooks made in its app apart
from those made through the API ("you cannot access or modify app webhooks through the API",
https://www.quo.com/docs/mdx/guides/webhooks), so a listing would miss the app's, and each
webhook is signed with a key of its own that the account's credentials must hold
(``webhook_key``, or ``legacy_signing_key`` for an app webhook), which an adapter cannot store.
The setup page shows the URL to subscribe instead.
"""

from __future__ import annotations

from carrier_adapters.provisioning import OwnedNumber
from connector.kernel.phone import to_e164

from .api import QuoRestClient


def check_credentials(client: QuoRestClient) -> None:
    """List the numbers: a 401 means the API key is wrong."""
    client.call_json("GET", "/v1/phone-numbers")


def list_numbers(client: QuoRestClient) -> list[OwnedNumber]:
    """The workspace's numbers, each able to call and text."""
    body = client.call_json("GET", "/v1/phone-numbers")
    found = []
    for item in body.get("data") or []:
        if not isinstance(item, dict):
            continue
        e164 = to_e164(str(item.get("number") or item.get("phoneNumber") or ""))
        if e164 is not None:
            found.append(OwnedNumber(
                e164=e164, friendly_name=str(item.get("name") or ""),
                capabilities=frozenset({"voice", "sms"}), carrier_id=str(item.get("id") or ""),
            ))
    return found
