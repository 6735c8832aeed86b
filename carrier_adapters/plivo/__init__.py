"""The Plivo carrier adapter: Plivo XML voice webhooks in, the Message API out.

How a missed call reaches us: the Plivo Application of the business number has its Answer URL
set to our ``voice`` webhook. For a new call we answer with ``<Dial action=... timeout=...>``
to the forwarding numbers, and Plivo posts ``DialStatus`` to ``action`` (the same ``voice``
webhook) when the ``<Dial>`` ends. The Application's Message URL points at our ``sms``
webhook; delivery reports go to the ``url`` we pass with each send (our ``status`` webhook).

Voice requests are signed with ``X-Plivo-Signature-V3`` (URL and POST parameters), messaging
requests with ``X-Plivo-Signature-V2`` (URL and nonce only, not the body); neither carries a
timestamp. So each URL takes its own kind only (a delivery report's headers must not carry an
inbound text), and every signature's nonce is spent once (:meth:`PlivoCarrier.replay_nonce`):
captured headers cannot be sent again with another body.

The module is split in :mod:`.webhooks` (signatures, parsing, Plivo XML) and :mod:`.api` (REST).
Docs: https://www.plivo.com/docs/voice/xml/dial and
https://www.plivo.com/docs/messaging/api/message/send-a-message
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import fields, validate

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.provisioning import SetupCalls, WebhookField
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    SendResult,
)
from connector.kernel.http import WebhookReply, WebhookRequest

from . import numbers, webhooks
from .api import PlivoRestClient


class PlivoCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Plivo.

    The Auth ID and Auth Token authenticate the REST calls (HTTP Basic), and the Auth Token
    signs Plivo's webhooks. Use the credentials of the (sub)account that owns the number:
    ``X-Plivo-Signature-V3``/``-V2`` are made with that account's token.
    """

    auth_id = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^(MA|SA)[A-Z0-9]{18}\Z",
            error="must be a Plivo Auth ID: MA or SA and 18 letters or digits",
        ),
        metadata={"description": "Auth ID (starts with MA, or SA for a subaccount)"},
    )
    auth_token = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "Auth Token; also the webhook signing key"},
    )


class PlivoCarrier(CarrierAdapter):
    """Plivo: verify V3/V2 signatures, map ``<Dial>`` and messaging webhooks, send SMS."""

    name: ClassVar[str] = "plivo"
    display_name: ClassVar[str] = "Plivo"
    docs_url: ClassVar[str] = "https://www.plivo.com/docs/voice/xml/dial"
    default_api_base_url: ClassVar[str] = "https://api.plivo.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = PlivoCredentials
    #: https://www.plivo.com/docs/voice/use-cases/dial-status-reporting/
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: https://www.plivo.com/docs/messaging/api/message/message-status-callbacks
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: Plivo error 200: the destination has opted out
    opt_out_error_codes: ClassVar[frozenset[str]] = frozenset({"200"})
    #: Plivo signs no time, so a spent nonce is what stops a replay: it is remembered for 30
    #: days (a row per webhook, purged by the sweeper), much longer than the default.
    nonce_retention: ClassVar[timedelta] = timedelta(days=30)
    #: The account, its numbers and their Applications (see :mod:`.numbers`).
    can_check_credentials: ClassVar[bool] = True
    can_list_numbers: ClassVar[bool] = True
    can_point_webhooks: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = (
        "check the Auth ID and Auth Token (Plivo console, Account > Overview)"
    )
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField(
            "Voice > XML Applications > the number's application > Primary Answer URL (POST)",
            "voice",
            note="Plivo reports a missed call only through the <Dial> textback answers with, "
            "so textback answers the number's calls.",
        ),
        WebhookField(
            "Voice > XML Applications > the number's application > Message URL (POST)", "sms",
            note="The application serves every number linked to it.",
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
        self._api = PlivoRestClient(
            session=self.session,
            base_url=self.api_base_url,
            auth_id=self.credentials["auth_id"],
            auth_token=self.credentials["auth_token"],
        )

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Check ``X-Plivo-Signature-V3`` (voice) or ``-V2`` (messaging); see :mod:`.webhooks`."""
        webhooks.verify_signature(request, self.credentials["auth_token"])

    def replay_nonce(self, request: WebhookRequest) -> str | None:
        """The nonce of the signature this URL takes (V3 on ``voice``, V2 on messaging): the V2
        signature covers the URL and the nonce but not the body, so the nonce is spent once."""
        return webhooks.signature_nonce(request)

    is_incoming_call = webhooks.is_incoming_call
    parse_call_event = webhooks.parse_call_event
    parse_inbound_message = webhooks.parse_inbound_message

    parse_status = webhooks.parse_status

    def setup_client(self) -> Any:
        """The REST client :mod:`.numbers` runs with."""
        return self._api

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        """Plivo XML for ``voice`` (``<Dial>`` with routing, else ``<Hangup/>``) and ``sms``
        (an empty ``<Response/>``: no auto-reply); an empty 200 for ``status``."""
        if kind == "voice":
            return webhooks.PLIVO_XML.dial(routing) if routing else webhooks.PLIVO_XML.hangup()
        if kind == "sms":
            return webhooks.PLIVO_XML.empty()
        if kind == "status":
            return WebhookReply(b"", "text/plain")
        raise ValueError(f"unknown webhook kind {kind!r}")

    # -- sending -------------------------------------------------------------------------

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Send one message (``type=sms``); raise a classified :mod:`connector.kernel.errors` error.

        ``url``/``method`` ask Plivo to post each status change to our ``status`` webhook.
        """
        payload: dict[str, Any] = {"src": from_, "dst": to, "text": body, "type": "sms"}
        if status_callback_url:
            payload["url"] = status_callback_url
            payload["method"] = "POST"
        return self._api.send_message(payload)

    def find_sent_message(self, *, to: str, from_: str, body: str, sent_after: datetime) -> SendResult | None:
        """Our outbound message to ``to`` since ``sent_after`` (less 60 s of clock skew), or None.

        Plivo's message records hold no text, so ``body`` cannot be compared: any outbound
        message from the business number to the caller in that window counts. The connector
        sends one text per missed call, so that message is ours.
        """
        return self._api.find_message(to=to, from_=from_, sent_after=sent_after)


__all__ = ["PlivoCarrier", "PlivoCredentials"]
