"""Find or create the caller's HubSpot contact by phone number.

One search with OR'ed filter groups covers the ways a number can be stored; a hit is accepted only
when one of its phone properties normalises to the caller's E.164, because HubSpot's phone search
is loose. A miss is created through ``batch/upsert`` keyed on an app-owned unique property, so two
near-simultaneous calls from one new number converge on one contact even though search lags
behind creates by seconds.

https://developers.hubspot.com/docs/api/crm/search
https://developers.hubspot.com/docs/api/crm/contacts
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.properties import PropertyCreate

from connector.kernel.errors import PermanentProviderError, TransientProviderError
from connector.kernel.phone import national_digits, region_of, to_e164
from crm_adapters.base import CrmContact
from crm_adapters.hubspot.client import PROVIDER, HubSpotApi, HubSpotConflictError
from crm_adapters.hubspot.models import sdk_model

#: The app-owned contact property holding the caller's E.164, created with ``hasUniqueValue`` so
#: ``batch/upsert`` can key on it (``phone`` itself is not unique and cannot be an idProperty).
#: https://developers.hubspot.com/changelog/updating-objects-by-custom-field-and-adding-owner-properties-via-the-api
UNIQUE_PHONE_PROPERTY = "textback_phone_e164"

#: Properties read back from a search hit.
SEARCH_PROPERTIES = (
    "phone",
    "mobilephone",
    "hs_calculated_phone_number",
    "firstname",
    "lastname",
    "hs_language",
)
#: The properties whose value must normalise to the caller's number for a hit to count.
PHONE_PROPERTIES = ("phone", "mobilephone", "hs_calculated_phone_number")
SEARCH_LIMIT = 20


def search_request(e164: str) -> PublicObjectSearchRequest:
    """The one search that finds a contact by phone, however the number was typed in.

    ``hs_searchable_calculated_*`` hold the national digits HubSpot derives from ``phone`` and
    ``mobilephone``; the raw properties only match the identical string, hence both kinds.
    Filter groups are OR'ed (at most five or six per request).
    https://developers.hubspot.com/docs/api/crm/search#filter-search-results
    """
    national = national_digits(e164)
    pairs = (
        ("hs_searchable_calculated_phone_number", national),
        ("hs_searchable_calculated_mobile_number", national),
        ("phone", e164),
        ("mobilephone", e164),
    )
    groups = [
        sdk_model(FilterGroup, filters=[
            sdk_model(Filter, property_name=name, operator="EQ", value=value)])
        for name, value in pairs
    ]
    return sdk_model(PublicObjectSearchRequest, filter_groups=groups,
                     properties=list(SEARCH_PROPERTIES), limit=SEARCH_LIMIT)


def matches(properties: Mapping[str, Any], e164: str) -> bool:
    """True when one of the contact's phone properties is the caller's number."""
    region = region_of(e164) or "US"
    for name in PHONE_PROPERTIES:
        value = properties.get(name)
        if value and to_e164(str(value), region) == e164:
            return True
    return False


def _contact(record: Any, e164: str, *, created: bool) -> CrmContact:
    props: Mapping[str, Any] = getattr(record, "properties", None) or {}
    return CrmContact(
        id=str(record.id),
        phone=e164,
        first_name=props.get("firstname") or None,
        last_name=props.get("lastname") or None,
        language=props.get("hs_language") or None,
        created=created,
    )


def _sort_key(record: Any) -> tuple[int, str]:
    # Oldest contact first (HubSpot ids grow), so repeated lookups pick the same one.
    rid = str(record.id)
    return (int(rid), rid) if rid.isdigit() else (1 << 62, rid)


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """``"Jane van Dyke"`` -> ``("Jane", "van Dyke")``; blanks become None."""
    first, _, last = (name or "").strip().partition(" ")
    return first or None, last.strip() or None


class ContactFinder:
    """Find-or-create for one adapter; remembers that the unique property exists."""

    def __init__(self, api: HubSpotApi) -> None:
        self.api = api
        self._property_ready = False
        self._lock = threading.Lock()

    def search(self, e164: str) -> CrmContact | None:
        """The oldest contact whose phone is ``e164``, or None."""
        with self.api.translating("contact search", ambiguous=False):
            page = self.api.contacts_search.do_search(
                public_object_search_request=search_request(e164),
                _request_timeout=self.api.timeout,
            )
        hits = [r for r in (page.results or []) if matches(r.properties or {}, e164)]
        if not hits:
            return None
        return _contact(min(hits, key=_sort_key), e164, created=False)

    def ensure_unique_property(self) -> None:
        """Create :data:`UNIQUE_PHONE_PROPERTY` once per adapter; 409 means it exists already.

        Needs the ``crm.schemas.contacts.write`` scope.
        https://developers.hubspot.com/docs/api/crm/properties
        """
        if self._property_ready:
            return
        with self._lock:
            if self._property_ready:
                return
            spec = sdk_model(
                PropertyCreate,
                name=UNIQUE_PHONE_PROPERTY,
                label="Phone (E.164, textback)",
                description="Caller number in E.164, written by textback to find this contact.",
                group_name="contactinformation",
                type="string",
                field_type="text",
                has_unique_value=True,
            )
            try:
                with self.api.translating("contact property create", ambiguous=False):
                    self.api.properties.create(
                        object_type="contacts",
                        property_create=spec,
                        _request_timeout=self.api.timeout,
                    )
            except HubSpotConflictError:
                pass  # created earlier, by us or by another process
            self._property_ready = True

    def upsert(self, e164: str, name: str | None) -> CrmContact:
        """Create the contact, or return the one a concurrent call just made for this number."""
        self.ensure_unique_property()
        first, last = split_name(name)
        props = {"phone": e164, UNIQUE_PHONE_PROPERTY: e164}
        if first:
            props["firstname"] = first
        if last:
            props["lastname"] = last
        body = sdk_model(BatchInputSimplePublicObjectBatchInputUpsert, inputs=[
            sdk_model(SimplePublicObjectBatchInputUpsert,
                      id=e164, id_property=UNIQUE_PHONE_PROPERTY, properties=props)
        ])
        try:
            with self.api.translating("contact upsert", ambiguous=False):
                response = self.api.contacts_batch.upsert(
                    batch_input_simple_public_object_batch_input_upsert=body,
                    _request_timeout=self.api.timeout,
                )
        except HubSpotConflictError as conflict:
            # The record exists (a race HubSpot resolved against us): use the one it names, or
            # read it by the unique property (reads, unlike search, are not eventually consistent).
            if conflict.existing_id:
                return CrmContact(id=conflict.existing_id, phone=e164, created=False)
            return self._read_by_unique_property(e164)
        results = list(getattr(response, "results", None) or [])
        if not results:
            # 207 with the failure per input in ``errors``.
            errors = getattr(response, "errors", None) or []
            category = getattr(errors[0], "category", None) if errors else None
            raise PermanentProviderError(
                f"HubSpot contact upsert returned no record ({category or 'no detail'})",
                provider=PROVIDER,
                code=category,
            )
        record = results[0]
        return _contact(record, e164, created=bool(getattr(record, "new", False)))

    def _read_by_unique_property(self, e164: str) -> CrmContact:
        body = sdk_model(
            BatchReadInputSimplePublicObjectId,
            id_property=UNIQUE_PHONE_PROPERTY,
            inputs=[sdk_model(SimplePublicObjectId, id=e164)],
            properties=list(SEARCH_PROPERTIES),
        )
        with self.api.translating("contact read", ambiguous=False):
            response = self.api.contacts_batch.read(
                batch_read_input_simple_public_object_id=body,
                _request_timeout=self.api.timeout,
            )
        results = list(getattr(response, "results", None) or [])
        if not results:
            raise TransientProviderError(
                "HubSpot reported a conflicting contact but returned none", provider=PROVIDER
            )
        return _contact(results[0], e164, created=False)

    def find_or_create(self, phone: str, name: str | None = None) -> CrmContact:
        """See :meth:`crm_adapters.base.CrmAdapter.find_or_create_contact`."""
        e164 = to_e164(phone)
        if e164 is None:
            raise ValueError("find_or_create_contact needs a valid phone number")
        found = self.search(e164)
        if found is not None:
            return found
        return self.upsert(e164, name)
