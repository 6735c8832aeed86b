"""The Dialpad adapter: JWT-signed call and SMS events in, Dialpad's SMS API out.

How a missed call reaches us: a Dialpad webhook (``POST /api/v2/webhooks`` with our ``voice``
URL as ``hook_url`` and a ``secret``) and a call event subscription on it
(``POST /api/v2/subscriptions/call`` with ``call_states`` such as ``["missed", "voicemail",
"connected"]`` and a company, office, department or user target). An SMS event subscription
(``direction: "all"``, ``status: true``) on the same webhook brings the customer's replies and
delivery updates; :meth:`DialpadCarrier.route` sorts them.

Every event body is a compact JWT signed HS256 with the webhook's secret (see
:mod:`.webhooks`). Dialpad retries call events three times on a 5xx (2, 4, 8 s), SMS events ten
times, and never on a 4xx (https://developers.dialpad.com/docs/webhook-delivery-failures).

Setup: the API key is checked (see :mod:`.numbers`). There is no number to point: events come
from company-wide subscriptions, which the setup page describes for the admin to make.

Docs: https://developers.dialpad.com/docs/event-subscriptions,
https://developers.dialpad.com/docs/call-events, https://developers.dialpad.com/docs/sms-events
and https://developers.dialpad.com/reference/smssend
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import fields, validate, validates_schema

from carrier_adapters.base import CarrierAdapter, url_kinds_with
from carrier_adapters.provisioning import SetupCalls, WebhookField
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    SendResult,
)
from connector.kernel.http import WebhookRequest

from . import numbers, webhooks
from .api import DialpadRestClient


class DialpadCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Dialpad.

    ``api_key`` (a company API key) sends the texts; ``webhook_secret`` is the ``secret`` of the
    webhook the subscriptions post to. Texts are sent on behalf of ``user_id``, or of a
    ``sender_group_id`` of ``sender_group_type`` (``office``, ``department``, ``callcenter``)
    when the business number belongs to a group.
    """

    api_key = fields.String(required=True, validate=validate.Length(min=1), metadata={"secret": True})
    webhook_secret = fields.String(
        required=True, validate=validate.Length(min=16), metadata={"secret": True}
    )
    user_id = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^\d+\Z"))
    sender_group_id = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^\d+\Z"))
    sender_group_type = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(["office", "department", "callcenter"])
    )

    @validates_schema
    def _one_sender(self, data: Mapping[str, Any], **_: Any) -> None:
        if bool(data.get("sender_group_id")) != bool(data.get("sender_group_type")):
            raise marshmallow.ValidationError(
                "sender_group_id and sender_group_type go together", field_name="sender_group_type"
            )
        if not data.get("user_id") and not data.get("sender_group_id"):
            raise marshmallow.ValidationError(
                "give user_id, or sender_group_id and sender_group_type", field_name="user_id"
            )


class DialpadCarrier(CarrierAdapter):
    """Dialpad: HS256 JWT events, ``missed``/``voicemail`` call states, the SMS API."""

    name: ClassVar[str] = "dialpad"
    display_name: ClassVar[str] = "Dialpad"
    docs_url: ClassVar[str] = "https://developers.dialpad.com/docs/call-events"
    default_api_base_url: ClassVar[str] = "https://dialpad.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = DialpadCredentials
    #: Call ``state``: https://developers.dialpad.com/docs/call-events
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: SMS ``message_status``: https://developers.dialpad.com/docs/sms-events
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: Call and SMS event subscriptions may share one webhook, our ``voice`` URL
    #: (https://developers.dialpad.com/docs/event-subscriptions); an SMS-only webhook may use our
    #: ``sms`` URL. The ``status`` URL takes delivery updates only.
    url_kinds: ClassVar[Mapping[str, frozenset[str]]] = url_kinds_with(
        voice={"sms", "status"}, sms={"status"}
    )
    #: The API key only: events come from company-wide subscriptions (see :mod:`.numbers`).
    can_check_credentials: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = (
        "check the API key (Dialpad Admin Settings > My Company > Authentication > API Keys)"
    )
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField(
            "Webhook (POST /api/v2/webhooks) hook_url, with a call subscription (call_states "
            "missed, voicemail, connected) and an SMS subscription (direction all, status true)",
            "voice",
            note="Give the webhook the credentials' webhook_secret as its secret.",
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
        self._api = DialpadRestClient(
            session=self.session, base_url=self.api_base_url, api_key=self.credentials["api_key"]
        )

    def setup_client(self) -> Any:
        """The REST client :mod:`.numbers` runs with."""
        return self._api

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Check the body's HS256 JWT signature and its ``iat`` and ``exp`` (both required)."""
        webhooks.claims_of(self, request)

    route = webhooks.route
    parse_call_event = webhooks.parse_call_event
    parse_answered_call = webhooks.parse_answered_call

    parse_inbound_message = webhooks.parse_inbound_message
    parse_status = webhooks.parse_status

    # reply: the base class's empty 200, within Dialpad's 5 s timeout.

    # -- sending -------------------------------------------------------------------------

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Send one SMS from ``from_`` on behalf of the configured user or group.

        Delivery updates come through the SMS event subscription, so ``status_callback_url`` is
        unused. ``infer_country_code`` is off: the numbers are already E.164.
        """
        payload: dict[str, Any] = {
            "to_numbers": [to],
            "text": body,
            "from_number": from_,
            "infer_country_code": False,
        }
        if self.credentials["user_id"]:
            payload["user_id"] = self.credentials["user_id"]
        else:
            payload["sender_group_id"] = self.credentials["sender_group_id"]
            payload["sender_group_type"] = self.credentials["sender_group_type"]
        return self._api.send_sms(payload)

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """Not available: ``NotImplementedError``.

        Dialpad offers no SMS list to search (texts are exported through stats reports), so an
        ambiguous send waits for the SMS delivery event.
        """
        raise NotImplementedError("dialpad: no SMS list to reconcile sends")


__all__ = ["DialpadCarrier", "DialpadCredentials"]
