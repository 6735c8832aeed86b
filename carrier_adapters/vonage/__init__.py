"""The Vonage carrier adapter: Voice API webhooks in, the Messages API out.

How a missed call reaches us: the number's Vonage application has our ``voice`` webhook as its
answer URL (method POST) and event URL. For a new call we answer with an NCCO ``connect`` to the
forwarding number whose ``eventUrl`` is our ``voice`` webhook plus a sealed call context (see
:mod:`.context`); the forwarded leg's final status (``unanswered``, ``timeout``, ``busy``,
``rejected``, ``failed``, ``cancelled``) tells us the call was missed, and the context tells us
who called. Texts go out through the Messages API (``POST /v1/messages``), our ``status``
webhook as the message's ``webhook_url``; inbound texts arrive on the application's (or the
account's) Messages inbound URL, our ``sms`` webhook.

Every webhook carries a JWT signed HS256 with the account's signature secret; see
:func:`.webhooks.verify_request`.

Setup: the credentials are checked and the numbers listed (with their application's URLs)
through the Numbers API, which needs the API secret. The webhooks are not pointed by API: the
Application API's update replaces the whole application, so the setup page shows the URLs to
paste instead (see :mod:`.numbers`).

Docs: https://developer.vonage.com/en/voice/voice-api/webhook-reference and
https://developer.vonage.com/en/messages/concepts/messages-status-callbacks
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import fields, validate

from carrier_adapters.base import CallRouting, CarrierAdapter, url_kinds_with
from carrier_adapters.provisioning import SetupCalls, WebhookField
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    SendResult,
)
from connector.kernel.http import WebhookReply, WebhookRequest

from . import numbers, tokens, webhooks
from .api import VonageRestClient


class VonageCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Vonage.

    The signature secret (Dashboard, API settings) verifies webhooks. Texts are sent with the
    Vonage application's id and private key (a JWT per request) or, without an application,
    with the API key and secret (Basic auth, account-level webhooks).
    """

    api_key = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "API key; webhook tokens name it in their api_key claim"},
    )
    signature_secret = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "Signature secret (HS256 webhook tokens)"},
    )
    api_secret = fields.String(
        load_default=None,
        metadata={"secret": True, "description": "API secret, for Basic auth (optional)"},
    )
    application_id = fields.String(
        load_default=None,
        metadata={"description": "Vonage application id, for JWT auth (optional)"},
    )
    private_key = fields.String(
        load_default=None,
        metadata={"secret": True, "description": "The application's private key, PEM"},
    )

    @marshmallow.validates("private_key")
    def _rsa_key(self, value: str | None, **kwargs: Any) -> None:
        if value is None:
            return
        try:
            tokens.load_private_key(value)
        except ValueError as exc:
            raise marshmallow.ValidationError(
                f"must be the application's private key ({exc})"
            ) from None

    @marshmallow.validates_schema
    def _one_way_to_send(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if bool(data.get("application_id")) != bool(data.get("private_key")):
            raise marshmallow.ValidationError(
                "application_id and private_key are given together or not at all",
                field_name="private_key" if data.get("application_id") else "application_id",
            )
        if not data.get("application_id") and not data.get("api_secret"):
            raise marshmallow.ValidationError(
                "give application_id and private_key, or api_secret, to send texts",
                field_name="api_secret",
            )


class VonageCarrier(CarrierAdapter):
    """Vonage: verify signed-JWT webhooks, map Voice and Messages webhooks, send SMS."""

    name: ClassVar[str] = "vonage"
    display_name: ClassVar[str] = "Vonage"
    docs_url: ClassVar[str] = "https://developer.vonage.com/en/voice/voice-api/webhook-reference"
    default_api_base_url: ClassVar[str] = "https://api.nexmo.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = VonageCredentials
    #: Voice event ``status`` values:
    #: https://developer.vonage.com/en/voice/voice-api/webhook-reference#event-webhook
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: Messages API status values:
    #: https://developer.vonage.com/en/messages/concepts/messages-status-callbacks
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: A text to an opted-out number is accepted (202) and then ``rejected`` in the status
    #: webhook (https://developer.vonage.com/en/opt-out-assist/guides/messaging-opted-out-numbers).
    #: 1050 "Number barred: blacklisted" is our reading of that error; the page's Messages API
    #: example is the place to confirm it.
    opt_out_error_codes: ClassVar[frozenset[str]] = frozenset({"1050"})
    #: The application's Messages inbound and status URLs may both point at our ``sms`` URL
    #: (https://developer.vonage.com/en/messages/concepts/messages-status-callbacks), which then
    #: takes inbound texts and delivery reports. Our ``status`` URL, the ``webhook_url`` of each
    #: text we send, takes delivery reports only.
    url_kinds: ClassVar[Mapping[str, frozenset[str]]] = url_kinds_with(sms={"status"})
    #: Credentials and numbers through the Numbers API; no pointing (see :mod:`.numbers`).
    can_check_credentials: ClassVar[bool] = True
    can_list_numbers: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = (
        "check the API key and API secret (Vonage API Dashboard, API settings)"
    )
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField("Applications > the number's application > Voice > Answer URL (HTTP POST)",
                     "voice", calls="forward",
                     note="textback answers with an NCCO connect to the forwarding phone."),
        WebhookField("Applications > the number's application > Voice > Event URL (HTTP POST)",
                     "voice"),
        WebhookField("Applications > the number's application > Messages > Inbound URL",
                     "sms"),
        WebhookField("Applications > the number's application > Messages > Status URL", "sms",
                     note="Delivery reports; textback also names its status URL on each text."),
    )

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(credentials, api_base_url=api_base_url, session=session)
        creds = self.credentials
        self._signature_secret: str = creds["signature_secret"]
        if creds.get("application_id"):
            key = tokens.load_private_key(creds["private_key"])
            app_id = creds["application_id"]

            def authorization() -> str:
                return f"Bearer {tokens.application_token(app_id, key)}"

        else:
            basic = base64.b64encode(
                f"{creds['api_key']}:{creds['api_secret']}".encode()
            ).decode("ascii")

            def authorization() -> str:
                return f"Basic {basic}"

        self._api = VonageRestClient(
            session=self.session, base_url=self.api_base_url, authorization=authorization
        )
        # The Numbers API has its own host; a non-default api_base_url (a stub) serves both.
        default = self.api_base_url == self.default_api_base_url
        self._setup = numbers.VonageSetupClient(
            session=self.session,
            rest_url=numbers.REST_BASE_URL if default else self.api_base_url,
            api_url=self.api_base_url,
            api_key=creds["api_key"],
            api_secret=creds.get("api_secret"),
        )

    def setup_client(self) -> Any:
        """The Numbers and Application client :mod:`.numbers` runs with."""
        return self._setup

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Check the HS256 JWT, its freshness (300 s), API key, application and payload_hash."""
        webhooks.verify_request(
            request,
            signature_secret=self._signature_secret,
            api_key=self.credentials["api_key"],
            application_id=self.credentials.get("application_id"),
        )

    route = webhooks.route
    is_incoming_call = webhooks.is_incoming_call
    parse_call_event = webhooks.parse_call_event
    parse_answered_call = webhooks.parse_answered_call

    parse_inbound_message = webhooks.parse_inbound_message
    parse_status = webhooks.parse_status

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        """An NCCO ``connect`` for a new call with routing; an empty 200 otherwise (Vonage reads
        no answer to event and Messages webhooks)."""
        if kind == "voice" and routing is not None:
            return webhooks.connect_ncco(request, routing, self._signature_secret)
        if kind in ("voice", "sms", "status"):
            return WebhookReply(b"", "text/plain")
        raise ValueError(f"unknown webhook kind {kind!r}")

    # -- sending -------------------------------------------------------------------------

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Send one SMS through the Messages API; raise a classified error on failure.

        Numbers go out in Vonage's spelling, E.164 without ``+``; ``webhook_url`` sends this
        message's status reports to our ``status`` webhook.
        """
        message: dict[str, Any] = {
            "message_type": "text",
            "channel": "sms",
            "to": webhooks.vonage_number(to),
            "from": webhooks.vonage_number(from_),
            "text": body,
        }
        if status_callback_url:
            message["webhook_url"] = status_callback_url
        return self._api.send_message(message)

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """Not available: raises ``NotImplementedError``.

        The Messages API has no message list. Vonage's Reports API can search records, but it
        is a separate product whose records are not promised to be there seconds after a send;
        an empty answer would not prove the text was never sent, and the connector would send
        it twice. The connector waits for the status webhook instead.
        """
        raise NotImplementedError("vonage cannot search sent messages; await the status webhook")


__all__ = ["VonageCarrier", "VonageCredentials"]
