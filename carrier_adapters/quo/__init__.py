"""The Quo (formerly OpenPhone) adapter: call and message webhooks in, the messages API out.

How a missed call reaches us: a Quo webhook (current system: ``POST /webhooks`` with a pinned
``Quo-Api-Version``; or a legacy webhook made in the Quo app) subscribed to ``call.missed`` and
``call.voicemail.completed`` (legacy: ``call.completed``) posts to our ``voice`` URL. The same
or another webhook posts ``message.received``, ``message.delivered`` and ``message.failed``;
:meth:`QuoCarrier.route` reads the event type, so the ``voice`` URL may take them all (the
``status`` URL takes delivery reports only: :attr:`QuoCarrier.url_kinds`).

Signatures: Standard Webhooks (``webhook-signature``, key ``whsec_...``) for current webhooks,
``openphone-signature`` for legacy ones; both within 300 s. See :mod:`.webhooks`.

Setup: the API key is checked and the workspace's numbers listed (see :mod:`.numbers`); the
webhook is subscribed by hand, because its signing key must go into the credentials.

Docs: https://www.quo.com/docs/2026-03-30/webhooks-event-payloads,
https://www.quo.com/docs/mdx/beta/webhooks-signature-validation,
https://www.quo.com/docs/webhooks/legacy-signature-validation and
https://www.quo.com/docs/mdx/api-reference/messages/send-a-text-message
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import fields, validate, validates, validates_schema

from carrier_adapters.base import CarrierAdapter, url_kinds_with
from carrier_adapters.provisioning import SetupCalls, WebhookField
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    SendResult,
)
from connector.kernel.http import WebhookRequest

from . import numbers, webhooks
from .api import QuoRestClient


class QuoCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Quo.

    ``api_key`` sends the texts. ``webhook_key`` (``whsec_...``, returned when a current
    webhook is created) and/or ``legacy_signing_key`` (base64, "Reveal signing secret" on a
    legacy webhook) verify the webhooks; at least one is required. ``phone_number_id``
    (``PN...``) lets the connector look a sent text up after an ambiguous send.
    """

    api_key = fields.String(required=True, validate=validate.Length(min=1), metadata={"secret": True})
    webhook_key = fields.String(load_default=None, allow_none=True, metadata={"secret": True})
    legacy_signing_key = fields.String(load_default=None, allow_none=True, metadata={"secret": True})
    phone_number_id = fields.String(
        load_default=None, allow_none=True, validate=validate.Regexp(r"^PN\w+\Z", error="must start with PN")
    )

    @validates("webhook_key")
    def _webhook_key(self, value: str | None, **_: Any) -> None:
        if value is not None:
            self._base64(value)

    @validates("legacy_signing_key")
    def _legacy_key(self, value: str | None, **_: Any) -> None:
        if value is not None:
            self._base64(value)

    @staticmethod
    def _base64(value: str) -> None:
        try:
            webhooks.decode_key(value)
        except ValueError:
            raise marshmallow.ValidationError("must be base64 (optionally after whsec_)") from None

    @validates_schema
    def _one_key(self, data: Mapping[str, Any], **_: Any) -> None:
        if not data.get("webhook_key") and not data.get("legacy_signing_key"):
            raise marshmallow.ValidationError(
                "give webhook_key (whsec_...) or legacy_signing_key", field_name="webhook_key"
            )


class QuoCarrier(CarrierAdapter):
    """Quo: Standard Webhooks and legacy signatures, call and message events, the messages API."""

    name: ClassVar[str] = "quo"
    display_name: ClassVar[str] = "Quo (OpenPhone)"
    docs_url: ClassVar[str] = "https://www.quo.com/docs/2026-03-30/webhooks-event-payloads"
    default_api_base_url: ClassVar[str] = "https://api.openphone.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = QuoCredentials
    #: Call ``status`` of unanswered incoming calls: https://www.quo.com/docs/mdx/guides/webhooks
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: Message ``status``: https://www.quo.com/docs/2026-03-30/webhooks-event-payloads
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: One Quo webhook may subscribe to call and message events alike
    #: (https://www.quo.com/docs/2026-03-30/webhooks-event-payloads); point it at our ``voice``
    #: URL, or a messages-only webhook at our ``sms`` URL. The ``status`` URL takes delivery
    #: reports only.
    url_kinds: ClassVar[Mapping[str, frozenset[str]]] = url_kinds_with(
        voice={"sms", "status"}, sms={"status"}
    )
    can_check_credentials: ClassVar[bool] = True
    can_list_numbers: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = "check the API key (Quo settings > API)"
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField(
            "Webhook subscribed to call.missed and call.voicemail.completed (and message.received, "
            "message.delivered, message.failed), for the business number",
            "voice",
            note="Put the webhook's signing key in the credentials' webhook_key "
            "(legacy_signing_key for a webhook made in the Quo app).",
        ),
    )

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(credentials, api_base_url=api_base_url, session=session)
        webhook_key, legacy_key = self.credentials["webhook_key"], self.credentials["legacy_signing_key"]
        self._webhook_key = webhooks.decode_key(webhook_key) if webhook_key else None
        self._legacy_key = webhooks.decode_key(legacy_key) if legacy_key else None
        self._api = QuoRestClient(
            session=self.session, base_url=self.api_base_url, api_key=self.credentials["api_key"]
        )

    def setup_client(self) -> Any:
        """The REST client :mod:`.numbers` runs with."""
        return self._api

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Check ``webhook-signature`` or ``openphone-signature`` and the 300 s window."""
        webhooks.verify(request, self._webhook_key, self._legacy_key)

    route = webhooks.route
    parse_call_event = webhooks.parse_call_event
    parse_answered_call = webhooks.parse_answered_call

    parse_inbound_message = webhooks.parse_inbound_message
    parse_status = webhooks.parse_status

    # reply: the base class's empty 200 (Quo retries anything else).

    # -- sending -------------------------------------------------------------------------

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Send one text from ``from_`` (E.164 or ``PN...``); reports come by webhook, so
        ``status_callback_url`` is unused."""
        return self._api.send_message(to=to, from_=from_, body=body)

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """Our text in the conversation with ``to``; needs ``phone_number_id``.

        Quo's message list is scoped by phone number id and participant, so without
        ``phone_number_id`` in the credentials this raises ``NotImplementedError`` and the
        connector waits for the delivery webhook instead.
        """
        phone_number_id = self.credentials["phone_number_id"]
        if not phone_number_id:
            raise NotImplementedError("quo: set carrier.credentials.phone_number_id to reconcile sends")
        return self._api.find_message(
            phone_number_id=phone_number_id, to=to, body=body, sent_after=sent_after
        )


__all__ = ["QuoCarrier", "QuoCredentials"]
