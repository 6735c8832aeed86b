"""The RingCentral adapter: telephony session notifications in, RingCentral's SMS API out.

How a missed call reaches us: a webhook subscription (``POST /restapi/v1.0/subscription``,
``deliveryMode.transportType=WebHook``) with our ``voice`` URL as ``address`` and a
``verificationToken`` of our choosing, on the event filter
``/restapi/v1.0/account/~/telephony/sessions`` (``?missedCall=true`` narrows it to missed calls;
without it answered calls arrive too, which lets an answered call cancel a pending text). Add
``/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS`` for the customer's
replies; both may share one address, as :meth:`RingCentralCarrier.route` reads the filter.

Authenticity: RingCentral signs nothing. Creating the subscription sends one request with a
``Validation-Token`` header we echo back (:data:`carrier_adapters.base.HANDSHAKE`); every
notification then carries our ``Verification-Token``. Delivery reports are not available as
notifications (message-store events carry counts, not ids): texts are reconciled through the
message list instead.

Setup: the app's credentials and JWT are checked, the account's numbers listed and the
subscription made or updated through the API, for ten years, the longest RingCentral allows
(see :mod:`.numbers`).

Docs: https://developers.ringcentral.com/guide/notifications/webhooks/creating-webhooks,
https://developers.ringcentral.com/guide/notifications/event-filters/account-telephony-sessions
and https://developers.ringcentral.com/guide/messaging/sms/sending-sms
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import fields, validate

from carrier_adapters.base import HANDSHAKE, CallRouting, CarrierAdapter, url_kinds_with
from carrier_adapters.provisioning import SetupCalls, WebhookField
from connector.kernel.errors import UnsupportedEventError
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    MessageStatusUpdate,
    SendResult,
)
from connector.kernel.http import WebhookReply, WebhookRequest

from . import numbers, webhooks
from .api import JwtToken, RingCentralRestClient


class RingCentralCredentials(marshmallow.Schema):
    """``carrier.credentials`` for RingCentral.

    A REST API app with JWT auth (client id and secret) and a JWT credential of the user whose
    number sends the texts; the verification token is the ``deliveryMode.verificationToken``
    of the webhook subscription.
    """

    client_id = fields.String(required=True, validate=validate.Length(min=1))
    client_secret = fields.String(
        required=True, validate=validate.Length(min=1), metadata={"secret": True}
    )
    jwt = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "JWT credential from the Developer Console"},
    )
    verification_token = fields.String(
        required=True,
        validate=validate.Length(min=16, max=64),
        metadata={"secret": True, "description": "deliveryMode.verificationToken of the subscription"},
    )
    account_id = fields.String(load_default="~", validate=validate.Regexp(r"^(~|\d+)\Z"))
    extension_id = fields.String(load_default="~", validate=validate.Regexp(r"^(~|\d+)\Z"))


class RingCentralCarrier(CarrierAdapter):
    """RingCentral: verification-token webhooks, telephony sessions, the SMS API."""

    name: ClassVar[str] = "ringcentral"
    display_name: ClassVar[str] = "RingCentral"
    docs_url: ClassVar[str] = (
        "https://developers.ringcentral.com/guide/notifications/event-filters/account-telephony-sessions"
    )
    default_api_base_url: ClassVar[str] = "https://platform.ringcentral.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = RingCentralCredentials
    #: ``status.reason`` of a missed party:
    #: https://developers.ringcentral.com/guide/notifications/event-filters/account-telephony-sessions
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: ``messageStatus`` of message records:
    #: https://developers.ringcentral.com/guide/messaging/sms/sms-errors
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: ``deliveryErrorCode`` "The destination subscriber opted out", from RingCentral, its
    #: upstream and the carrier (https://developers.ringcentral.com/guide/messaging/sms/sms-errors).
    #: They appear on message records; RingCentral sends no delivery-report webhook to carry them.
    opt_out_error_codes: ClassVar[frozenset[str]] = frozenset({"SMS-RC-413", "SMS-UP-413", "SMS-CAR-413"})
    #: One subscription delivers every event filter it lists to one address, our ``voice`` URL
    #: (https://developers.ringcentral.com/guide/notifications/webhooks/creating-webhooks); a
    #: messages-only subscription may use our ``sms`` URL. The ``status`` URL takes message-store
    #: events only.
    url_kinds: ClassVar[Mapping[str, frozenset[str]]] = url_kinds_with(
        voice={"sms", "status"}, sms={"status"}
    )
    can_check_credentials: ClassVar[bool] = True
    can_list_numbers: ClassVar[bool] = True
    #: One subscription of the app for the whole account (see :mod:`.numbers`).
    can_point_webhooks: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = (
        "check the app's client ID and secret and the user's JWT credential (Developer Console)"
    )
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField(
            "Webhook subscription (POST /restapi/v1.0/subscription) address, event filters "
            "/restapi/v1.0/account/~/telephony/sessions and "
            "/restapi/v1.0/account/~/extension/~/message-store/instant?type=SMS",
            "voice",
            note="Set deliveryMode.verificationToken to the credentials' verification_token "
            "and expiresIn to 315360000 (ten years, the most RingCentral allows).",
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
        token = JwtToken(
            session=self.session,
            base_url=self.api_base_url,
            client_id=self.credentials["client_id"],
            client_secret=self.credentials["client_secret"],
            jwt=self.credentials["jwt"],
        )
        self._api = RingCentralRestClient(
            session=self.session,
            base_url=self.api_base_url,
            token=token,
            account_id=self.credentials["account_id"],
            extension_id=self.credentials["extension_id"],
            verification_token=self.credentials["verification_token"],
        )

    def setup_client(self) -> Any:
        """The REST client :mod:`.numbers` runs with."""
        return self._api

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Accept the subscription handshake; otherwise check ``Verification-Token``."""
        webhooks.verify(request, self.credentials["verification_token"])

    route = webhooks.route
    parse_call_event = webhooks.parse_call_event
    parse_answered_call = webhooks.parse_answered_call

    parse_inbound_message = webhooks.parse_inbound_message

    def parse_status(self, request: WebhookRequest) -> MessageStatusUpdate:
        """Always :class:`UnsupportedEventError`: message-store notifications only count changes.

        RingCentral's message-store event carries ``changes[].newCount/updatedCount`` and no
        message id, so a delivery report would need an API read per notification; the
        connector reconciles through :meth:`find_sent_message` instead.
        """
        raise UnsupportedEventError("ringcentral: message-store notifications carry no message id")

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        """The handshake answer echoes ``Validation-Token``; notifications get an empty 200."""
        if kind == HANDSHAKE:
            return webhooks.handshake_reply(request)
        return WebhookReply(b"", "text/plain")

    # -- sending -------------------------------------------------------------------------

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Send one SMS from ``from_`` (a number of the JWT's extension with the SMS feature).

        RingCentral takes no per-message status callback, so ``status_callback_url`` is unused.
        """
        return self._api.send_sms(to=to, from_=from_, body=body)

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """Our outbound SMS in the extension's message store, matched on numbers, text and time."""
        return self._api.find_message(to=to, from_=from_, body=body, sent_after=sent_after)


__all__ = ["RingCentralCarrier", "RingCentralCredentials"]
