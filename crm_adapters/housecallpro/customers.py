"""Find or create the caller's Housecall Pro customer by phone number.

``GET /customers?q=`` searches "name, email, mobile number and address" (the OpenAPI parameter
description); home and work numbers are not listed. So the query is the caller's national
digits, and every customer that comes back is accepted only when one of ``mobile_number``,
``home_number`` or ``work_number`` normalises (``phonenumbers``) to the caller's E.164: a hit on
an address or on the same digits in another country is refused. Pages are read oldest first
(``sort_by=created_at``, ``sort_direction=asc``) until the first match, so repeated lookups pick
the same customer.

Limitation: a customer whose number is stored *only* as a home or work number is found only if
``q`` also searches those fields, which Housecall Pro does not document *(unverified)*; otherwise
a new customer is created with the number as its mobile number.

A miss is created with ``POST /customers``: ``mobile_number``, the names when known, the
account's ``notifications_enabled`` choice (whether Housecall Pro itself texts and emails the
customer; omitted when the account leaves it unset, so Housecall Pro's default applies) and its
``lead_source``. There is no upsert or idempotency key; an in-process lock per number keeps two
simultaneous calls of one worker from creating two customers.

https://docs.housecallpro.com/ (Customers: Get Customers, Create Customer)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.kernel.errors import TransientProviderError
from connector.kernel.phone import national_digits, region_of, to_e164
from crm_adapters.base import CrmContact
from crm_adapters.housecallpro.client import HcpClient, StripedLocks
from crm_adapters.housecallpro.errors import PROVIDER

#: The customer fields holding phone numbers, all compared after normalisation.
PHONE_FIELDS = ("mobile_number", "home_number", "work_number")
#: Pages of search results read before giving up (at 50 a page).
SEARCH_MAX_PAGES = 5


def hcp_phone(e164: str) -> str:
    """The number as we write it: 10 national digits for NANP (+1), else E.164.

    Housecall Pro serves the US and Canada and shows numbers as national digits; other numbers
    keep their country code so they stay unambiguous *(inferred: the API accepts both)*.
    """
    return national_digits(e164) if e164.startswith("+1") else e164


def matches(customer: Mapping[str, Any], e164: str) -> bool:
    """True when one of the customer's numbers is the caller's, whatever its format."""
    region = region_of(e164) or "US"
    for field in PHONE_FIELDS:
        value = customer.get(field)
        if isinstance(value, str) and value.strip() and to_e164(value, region) == e164:
            return True
    return False


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """``"Jane van Dyke"`` -> ``("Jane", "van Dyke")``; blanks become None."""
    first, _, last = (name or "").strip().partition(" ")
    return first or None, last.strip() or None


def _contact(customer: Mapping[str, Any], e164: str, *, created: bool) -> CrmContact:
    return CrmContact(
        id=str(customer["id"]),
        phone=e164,
        first_name=customer.get("first_name") or None,
        last_name=customer.get("last_name") or None,
        created=created,
    )


class CustomerFinder:
    """Find-or-create for one adapter, with the account's creation settings."""

    def __init__(
        self,
        client: HcpClient,
        *,
        lead_source: str | None = None,
        notifications_enabled: bool | None = None,
    ) -> None:
        self.client = client
        self.lead_source = lead_source
        self.notifications_enabled = notifications_enabled
        self._locks = StripedLocks()

    def search(self, e164: str) -> CrmContact | None:
        """The oldest customer with the caller's number in any phone field, or None."""
        params = {
            "q": national_digits(e164),
            "sort_by": "created_at",
            "sort_direction": "asc",
        }
        for customer in self.client.paged(
            "/customers",
            "customers",
            operation="customer search",
            params=params,
            max_pages=SEARCH_MAX_PAGES,
        ):
            if customer.get("id") and matches(customer, e164):
                return _contact(customer, e164, created=False)
        return None

    def create(self, e164: str, name: str | None) -> CrmContact:
        """``POST /customers`` with the number as the mobile number."""
        first, last = split_name(name)
        body: dict[str, Any] = {"mobile_number": hcp_phone(e164)}
        if first:
            body["first_name"] = first
        if last:
            body["last_name"] = last
        if self.notifications_enabled is not None:
            body["notifications_enabled"] = self.notifications_enabled
        if self.lead_source:
            body["lead_source"] = self.lead_source
        created = self.client.request(
            "POST", "/customers", operation="customer create", ambiguous=True, json=body
        )
        if not created.get("id"):
            raise TransientProviderError(
                "Housecall Pro answered the customer create without an id",
                provider=PROVIDER,
                ambiguous=True,
            )
        return _contact({**body, **created}, e164, created=True)

    def find_or_create(self, phone: str, name: str | None = None) -> CrmContact:
        """See :meth:`crm_adapters.base.CrmAdapter.find_or_create_contact`."""
        e164 = to_e164(phone)
        if e164 is None:
            raise ValueError("find_or_create_contact needs a valid phone number")
        with self._locks.lock_for(e164):
            found = self.search(e164)
            if found is not None:
                return found
            return self.create(e164, name)
