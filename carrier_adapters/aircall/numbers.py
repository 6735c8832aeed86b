"""Aircall's numbers: the setup calls this adapter can make.

- Credentials: ``GET /v1/ping`` answers ``{"ping": "pong"}`` to a good API ID and token
  (https://developer.aircall.io/api-references/#ping).
- Numbers: ``GET /v1/numbers`` (``per_page`` <= 50, ``page``, ``meta.next_page_link``), each with
  ``id``, ``name`` and ``digits`` in international format
  (https://developer.aircall.io/api-references/#list-all-numbers). Every Aircall number takes
  calls; texting needs the number configured for API messaging, which this list does not show,
  so ``sms`` is not claimed.

Webhooks are not shown or changed: Aircall's webhooks are account-wide, not per number, and each
one carries a token of its own (``POST /v1/webhooks`` answers it) that the account's
``webhook_token`` credential must hold, which an adapter cannot store. The setup page shows the
URL to paste into a webhook made in Aircall's dashboard instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from carrier_adapters.provisioning import OwnedNumber
from connector.kernel.phone import to_e164

from .api import AircallRestClient

PAGE_SIZE = 50
MAX_PAGES = 40


def check_credentials(client: AircallRestClient) -> None:
    """Ping: a 401 means the API ID or token is wrong."""
    client.call_json("GET", "/v1/ping")


def _numbers(client: AircallRestClient) -> Iterator[dict[str, Any]]:
    for page in range(1, MAX_PAGES + 1):
        body = client.call_json("GET", "/v1/numbers", params={"per_page": PAGE_SIZE, "page": page})
        yield from (n for n in body.get("numbers") or [] if isinstance(n, dict))
        meta = body.get("meta")
        if not isinstance(meta, dict) or not meta.get("next_page_link"):
            return


def list_numbers(client: AircallRestClient) -> list[OwnedNumber]:
    """The account's numbers."""
    found = []
    for number in _numbers(client):
        e164 = to_e164(str(number.get("digits") or ""))
        if e164 is not None:
            found.append(OwnedNumber(
                e164=e164, friendly_name=str(number.get("name") or ""),
                capabilities=frozenset({"voice"}), carrier_id=str(number.get("id") or ""),
            ))
    return found
