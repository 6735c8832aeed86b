"""The Aircall adapter: ``call.ended`` webhooks in, Aircall's API messaging out.

How a missed call reaches us: an Aircall webhook (Dashboard > Integrations > Webhook, or
``POST /v1/webhooks``) subscribed to ``call.ended`` (and ``call.answered``, so an answered call
cancels a pending text) posts to our ``voice`` URL. An inbound call that ended with
``answered_at: null`` is missed; ``missed_call_reason`` says why, and ``out_of_opening_hours``
is after hours.

Texts go out with ``POST /v1/numbers/{id}/messages/send`` from an Aircall number configured for
API messaging ("proxy mode": it can then no longer text from the Aircall app, and Aircall needs
the Professional plan). That configuration's ``callbackUrl`` should be our ``sms`` URL: replies
and status updates arrive there as callbacks, and :meth:`AircallCarrier.route` sorts them.

Authenticity: a ``token`` in the body, no signature (see :mod:`.webhooks`).

Setup: the API ID and token are checked and the numbers listed (see :mod:`.numbers`); the
webhook and the messaging configuration are made by hand, because each answers with a token
the credentials must hold.

Docs: https://developer.aircall.io/docs/webhooks-overview,
https://support.aircall.io/hc/en-gb/articles/14936017803549 (missed-call reasons) and
https://developer.aircall.io/docs/send-and-receive-sms-proxy-mode
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import fields, validate

from carrier_adapters.base import CarrierAdapter, url_kinds_with
from carrier_adapters.provisioning import SetupCalls, WebhookField
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    SendResult,
)
from connector.kernel.http import WebhookRequest

from . import numbers, webhooks
from .api import AircallRestClient


class AircallCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Aircall.

    ``api_id``/``api_token`` (Company settings > API keys) authenticate the API; ``number_id``
    is the Aircall number configured for API messaging. ``webhook_token`` is the token of the
    webhook (shown when it is created); ``messaging_token`` the token returned when the number
    was configured for messaging, which signs its callbacks.
    """

    api_id = fields.String(required=True, validate=validate.Length(min=1))
    api_token = fields.String(required=True, validate=validate.Length(min=1), metadata={"secret": True})
    number_id = fields.String(
        required=True, validate=validate.Regexp(r"^\d+\Z", error="must be the numeric Aircall number id")
    )
    webhook_token = fields.String(required=True, validate=validate.Length(min=8), metadata={"secret": True})
    messaging_token = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=8), metadata={"secret": True}
    )


class AircallCarrier(CarrierAdapter):
    """Aircall: token-checked webhooks, ``call.ended`` missed calls, API messaging."""

    name: ClassVar[str] = "aircall"
    display_name: ClassVar[str] = "Aircall"
    docs_url: ClassVar[str] = "https://developer.aircall.io/docs/webhooks-overview"
    default_api_base_url: ClassVar[str] = "https://api.aircall.io"
    config_schema: ClassVar[type[marshmallow.Schema]] = AircallCredentials
    #: ``missed_call_reason``: https://support.aircall.io/hc/en-gb/articles/14936017803549
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: Message ``status``: https://support.aircall.io/hc/en-gb/articles/20566418489757
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: One Aircall webhook posts every event it subscribes to to one URL, our ``voice`` URL
    #: (https://developer.aircall.io/docs/webhooks-overview), and a number's messaging
    #: ``callbackUrl`` posts replies and status updates to our ``sms`` URL
    #: (https://developer.aircall.io/docs/send-and-receive-sms-proxy-mode). The ``status`` URL
    #: takes delivery reports only.
    url_kinds: ClassVar[Mapping[str, frozenset[str]]] = url_kinds_with(
        voice={"sms", "status"}, sms={"status"}
    )
    can_check_credentials: ClassVar[bool] = True
    can_list_numbers: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = (
        "check the API ID and API token (Aircall Dashboard > Integrations & API > API Keys)"
    )
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField(
            "Dashboard > Integrations & API > Webhook > URL, events call.ended and call.answered",
            "voice", note="Put the webhook's token in the credentials' webhook_token.",
        ),
        WebhookField(
            "The number's API messaging configuration > callbackUrl",
            "sms", note="Put the configuration's token in the credentials' messaging_token.",
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
        self._tokens = tuple(
            t for t in (self.credentials["webhook_token"], self.credentials["messaging_token"]) if t
        )
        self._api = AircallRestClient(
            session=self.session,
            base_url=self.api_base_url,
            api_id=self.credentials["api_id"],
            api_token=self.credentials["api_token"],
            number_id=self.credentials["number_id"],
        )

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Compare the body's ``token`` with the webhook and messaging tokens."""
        webhooks.verify(request, self._tokens)

    route = webhooks.route
    parse_call_event = webhooks.parse_call_event
    parse_answered_call = webhooks.parse_answered_call

    parse_inbound_message = webhooks.parse_inbound_message
    parse_status = webhooks.parse_status

    # reply: the base class's empty 200, quickly: Aircall disables a webhook after repeated
    # failures.

    # -- sending -------------------------------------------------------------------------

    def setup_client(self) -> Any:
        """The REST client :mod:`.numbers` runs with."""
        return self._api

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Send one text from the configured ``number_id``.

        Aircall sends from the number, not from ``from_``, so the account's business number must
        be that Aircall number; status updates go to the number's configured ``callbackUrl``, so
        ``status_callback_url`` is unused.
        """
        return self._api.send_message(to=to, body=body)

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """Not available: ``NotImplementedError``.

        Aircall does not record texts sent through API messaging on its platform and documents
        no message list for a number, so an ambiguous send waits for the status callback.
        """
        raise NotImplementedError("aircall: no message list to reconcile API-messaging sends")


__all__ = ["AircallCarrier", "AircallCredentials"]
