"""Find or create the caller as a Jobber client.

Jobber has no phone filter we could verify in the pinned schema, only ``clients(searchTerm:)``,
a fuzzy search over names, emails, phones and addresses (newer versions add ``searchFields``,
not used here). So one search with the caller's national digits, then a client-side check: a hit
counts only when one of its ``phones`` normalises to the caller's E.164. A miss creates the
client with the number as a primary mobile that accepts texts.

Jobber has no upsert and no unique phone key: two workers creating the same new caller at the
same moment can make two clients. The connector serialises calls per caller and remembers the
client id (``crm_links``), which keeps this to a narrow race.
https://developer.getjobber.com/docs (Client type), ``ClientCreateInput`` in the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import phonenumbers

from connector.kernel.errors import PermanentProviderError
from connector.kernel.phone import national_digits, region_of, to_e164
from crm_adapters.base import CrmContact
from crm_adapters.jobber.client import JobberApi
from crm_adapters.jobber.documents import CLIENT_CREATE, CLIENTS_BY_PHONE
from crm_adapters.jobber.errors import PROVIDER

#: How many search hits to compare. The search is fuzzy; a dozen covers shared last digits.
SEARCH_LIMIT = 15
#: First name given to a client created without a name; its last name is the number as
#: dialled nationally, so the rep can tell such clients apart. We assume Jobber wants a name on
#: every client (its UI does; the API's rule is not documented) and never hand this placeholder
#: back as the caller's name (templates greet by first name).
PLACEHOLDER_FIRST_NAME = "Caller"


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """``"Jane van Dyke"`` -> ``("Jane", "van Dyke")``; blanks become None."""
    first, _, last = (name or "").strip().partition(" ")
    return first or None, last.strip() or None


def placeholder_last_name(e164: str) -> str:
    """The number as written nationally, e.g. ``(415) 555-0134``."""
    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def matches(client: Mapping[str, Any], e164: str) -> bool:
    """True when one of the client's phones, normalised, is the caller's number."""
    region = region_of(e164) or "US"
    for phone in client.get("phones") or []:
        number = phone.get("number") if isinstance(phone, Mapping) else None
        if number and to_e164(str(number), region) == e164:
            return True
    return False


def contact_from(client: Mapping[str, Any], e164: str, *, created: bool) -> CrmContact:
    """A :class:`CrmContact` from a client node, without our placeholder name."""
    first = client.get("firstName") or None
    last = client.get("lastName") or None
    if first == PLACEHOLDER_FIRST_NAME:
        first = None
        if last == placeholder_last_name(e164):
            last = None
    return CrmContact(id=str(client["id"]), phone=e164, first_name=first, last_name=last,
                      created=created)


def client_input(e164: str, name: str | None) -> dict[str, Any]:
    """``ClientCreateInput`` for a new caller.

    ``PhoneNumberCreateAttributes``: ``description: MOBILE`` (enum ``PhoneNumberDescription``),
    ``primary``, ``smsAllowed`` ("can the phone number receive text messages?").
    """
    first, last = split_name(name)
    if first is None and last is None:
        first, last = PLACEHOLDER_FIRST_NAME, placeholder_last_name(e164)
    attributes: dict[str, Any] = {
        "phones": [{"number": e164, "description": "MOBILE", "primary": True, "smsAllowed": True}]
    }
    if first:
        attributes["firstName"] = first
    if last:
        attributes["lastName"] = last
    return attributes


def search(api: JobberApi, e164: str) -> CrmContact | None:
    """The oldest client whose phone is ``e164``, or None."""
    data = api.execute(
        CLIENTS_BY_PHONE, {"searchTerm": national_digits(e164), "first": SEARCH_LIMIT}
    )
    nodes = ((data.get("clients") or {}).get("nodes")) or []
    hits = [n for n in nodes if isinstance(n, Mapping) and n.get("id") and matches(n, e164)]
    if not hits:
        return None
    oldest = min(hits, key=lambda n: (_created(n), str(n["id"])))
    return contact_from(oldest, e164, created=False)


def _created(client: Mapping[str, Any]) -> datetime:
    # Oldest first, so repeated lookups pick the same client; unknown times sort last.
    try:
        when = datetime.fromisoformat(str(client.get("createdAt") or "").replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def create(api: JobberApi, e164: str, name: str | None) -> CrmContact:
    """``clientCreate`` with the caller's number."""
    payload = api.mutate(CLIENT_CREATE, {"input": client_input(e164, name)}, "clientCreate")
    client = payload.get("client")
    if not isinstance(client, Mapping) or not client.get("id"):
        raise PermanentProviderError("Jobber clientCreate returned no client", provider=PROVIDER)
    return contact_from(client, e164, created=True)


def find_or_create(api: JobberApi, phone: str, name: str | None = None) -> CrmContact:
    """See :meth:`crm_adapters.base.CrmAdapter.find_or_create_contact`."""
    e164 = to_e164(phone)
    if e164 is None:
        raise ValueError("find_or_create_contact needs a valid phone number")
    found = search(api, e164)
    if found is not None:
        return found
    return create(api, e164, name)
