"""Marking a HubSpot contact as opted out of texts.

HubSpot has no general-purpose "SMS opt-out" contact property an app may write (its own
communication-preference subscriptions cover marketing SMS), so the app owns a boolean contact
property, created once per portal like the unique phone property:
https://developers.hubspot.com/docs/api/crm/properties
"""

from __future__ import annotations

import threading

from hubspot.crm.contacts import SimplePublicObjectInput
from hubspot.crm.properties import OptionInput, PropertyCreate

from crm_adapters.hubspot.client import HubSpotApi, HubSpotConflictError
from crm_adapters.hubspot.models import sdk_model

OPT_OUT_PROPERTY = "textback_sms_opt_out"


class OptOutMarker:
    """Writes :data:`OPT_OUT_PROPERTY` on contacts; creates the property the first time."""

    def __init__(self, api: HubSpotApi) -> None:
        self.api = api
        self._ready = False
        self._lock = threading.Lock()

    def ensure_property(self) -> None:
        """Create :data:`OPT_OUT_PROPERTY` once per adapter; 409 means it exists already."""
        with self._lock:
            if self._ready:
                return
            spec = sdk_model(
                PropertyCreate,
                name=OPT_OUT_PROPERTY,
                label="Opted out of texts (textback)",
                description="Set by textback when this contact texts STOP; cleared on START.",
                group_name="contactinformation",
                type="bool",
                field_type="booleancheckbox",
                options=[
                    sdk_model(OptionInput, label="Yes", value="true", display_order=0, hidden=False),
                    sdk_model(OptionInput, label="No", value="false", display_order=1, hidden=False),
                ],
            )
            try:
                with self.api.translating("opt-out property create", ambiguous=False):
                    self.api.properties.create(
                        object_type="contacts", property_create=spec,
                        _request_timeout=self.api.timeout,
                    )
            except HubSpotConflictError:
                pass  # made earlier, by us or another process
            self._ready = True

    def mark(self, contact_id: str, opted_out: bool) -> None:
        """Set or clear the contact's opt-out flag (an idempotent PATCH)."""
        self.ensure_property()
        with self.api.translating("contact opt-out update", ambiguous=False):
            self.api.contacts_basic.update(
                contact_id,
                simple_public_object_input=sdk_model(
                    SimplePublicObjectInput,
                    properties={OPT_OUT_PROPERTY: "true" if opted_out else "false"},
                ),
                _request_timeout=self.api.timeout,
            )
