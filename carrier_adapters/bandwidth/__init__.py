"""The Bandwidth carrier adapter: Voice API v2 (BXML) events in, Messaging API v2 out.

How a missed call reaches us: the business number's Voice Application has its
``CallInitiatedCallbackUrl`` set to our ``voice`` webhook (and, as a safety net, its
``CallStatusCallbackUrl`` too). For the ``initiate`` event we answer with BXML
``<Transfer transferCompleteUrl=... callTimeout=...>`` to the forwarding numbers; Bandwidth posts
``transferComplete`` (and, for a single rung number, ``transferDisconnect``) with a ``cause``
to our ``voice`` webhook. ``busy``, ``timeout``, ``cancel`` and ``rejected`` are missed calls.

The Messaging Application's inbound and outbound callback URLs point at our ``sms`` and
``status`` webhooks (or both at our ``sms`` URL: :meth:`BandwidthCarrier.route` sorts the
events by type; the ``status`` URL takes delivery reports only).
Bandwidth authenticates callbacks only with the HTTP Basic credentials set on the Applications
(``CallbackCreds``, ``InboundCallbackCreds``, ``OutboundCallbackCreds``; use the same pair for
all) and, for ``<Transfer>`` callbacks, the ``username``/``password`` we put in the BXML. There
is no signature and no timestamp.

Sending uses the Messaging v2 API with OAuth 2.0 client credentials (API credentials), or with
a legacy API user's Basic credentials, which Bandwidth has deprecated.

Setup: the Messaging credentials are checked through the API; numbers are not listed and the
Applications' callback URLs are not pointed, because both live in Bandwidth's separate
Dashboard (Numbers) API (see :mod:`.numbers`): the setup page shows the URLs to paste.

The module is split in :mod:`.webhooks` (authentication, parsing, BXML) and :mod:`.api` (REST).
Docs: https://dev.bandwidth.com/docs/voice/bxml/transfer/ and
https://dev.bandwidth.com/docs/messaging/webhooks/
"""

from __future__ import annotations

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

from . import numbers, webhooks
from .api import DEFAULT_TOKEN_URL, BandwidthRestClient, OAuthToken

_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"


class BandwidthCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Bandwidth.

    REST calls use API credentials (``client_id`` + ``client_secret``, OAuth 2.0 client
    credentials) or a legacy API user (``api_username`` + ``api_password``, HTTP Basic); give
    exactly one pair. ``callback_username``/``callback_password`` are the Basic credentials set
    on the Voice and Messaging Applications; Bandwidth sends them with every callback.
    """

    account_id = fields.String(
        required=True,
        validate=validate.Regexp(r"^\d{1,20}\Z", error="must be a Bandwidth account id (digits)"),
        metadata={"description": "Account id (digits)"},
    )
    application_id = fields.String(
        required=True,
        validate=validate.Regexp(_UUID, error="must be a Bandwidth application id (a UUID)"),
        metadata={"description": "Messaging Application id the business number belongs to"},
    )
    client_id = fields.String(
        load_default=None, metadata={"description": "API credentials client id (OAuth 2.0)"}
    )
    client_secret = fields.String(
        load_default=None,
        metadata={"secret": True, "description": "API credentials client secret (OAuth 2.0)"},
    )
    api_username = fields.String(
        load_default=None, metadata={"description": "Legacy API user name (deprecated)"}
    )
    api_password = fields.String(
        load_default=None,
        metadata={"secret": True, "description": "Legacy API user password (deprecated)"},
    )
    callback_username = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "Basic auth user name set on the Applications' callbacks"},
    )
    callback_password = fields.String(
        required=True,
        validate=validate.Length(min=8),
        metadata={"secret": True, "description": "Basic auth password of the callbacks"},
    )
    token_url = fields.Url(
        load_default=DEFAULT_TOKEN_URL,
        require_tld=False,
        metadata={"description": "OAuth 2.0 token endpoint (tests, other regions)"},
    )

    @marshmallow.validates_schema
    def _one_api_credential(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        oauth = (bool(data.get("client_id")), bool(data.get("client_secret")))
        legacy = (bool(data.get("api_username")), bool(data.get("api_password")))
        if oauth[0] != oauth[1]:
            raise marshmallow.ValidationError(
                "client_id and client_secret are given together",
                field_name="client_secret" if oauth[0] else "client_id",
            )
        if legacy[0] != legacy[1]:
            raise marshmallow.ValidationError(
                "api_username and api_password are given together",
                field_name="api_password" if legacy[0] else "api_username",
            )
        if all(oauth) == all(legacy):
            raise marshmallow.ValidationError(
                "give API credentials (client_id, client_secret) or a legacy API user "
                "(api_username, api_password), not both and not neither",
                field_name="client_id",
            )


class BandwidthCarrier(CarrierAdapter):
    """Bandwidth: check callback Basic auth, map BXML and messaging events, send SMS."""

    name: ClassVar[str] = "bandwidth"
    display_name: ClassVar[str] = "Bandwidth"
    docs_url: ClassVar[str] = "https://dev.bandwidth.com/docs/voice/bxml/transfer/"
    default_api_base_url: ClassVar[str] = "https://messaging.bandwidth.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = BandwidthCredentials
    #: https://dev.bandwidth.com/docs/voice/webhooks/transferComplete/
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: https://dev.bandwidth.com/docs/messaging/webhooks/
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: Bandwidth 4775: the recipient has opted out
    opt_out_error_codes: ClassVar[frozenset[str]] = frozenset({"4775"})
    #: The Messaging Application's callbacks may all go to one URL
    #: (https://dev.bandwidth.com/docs/messaging/webhooks/): our ``sms`` URL then takes inbound
    #: texts and delivery reports. Our ``status`` URL takes delivery reports only.
    url_kinds: ClassVar[Mapping[str, frozenset[str]]] = url_kinds_with(sms={"status"})
    #: The credentials only; numbers and Applications live in the Dashboard API (see
    #: :mod:`.numbers`).
    can_check_credentials: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = (
        "check the API client ID and secret (or the API user and password) and the account ID"
    )
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField("Voice Application > Call-initiated callback URL (POST)", "voice",
                     calls="forward", note="textback answers with <Transfer>."),
        WebhookField("Voice Application > Call status callback URL (POST)", "voice"),
        WebhookField("Messaging Application > Inbound callback URL", "sms",
                     note="Set the Applications' callback credentials to the account's "
                     "callback_username and callback_password."),
        WebhookField("Messaging Application > Outbound (status) callback URL", "status"),
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
        auth: OAuthToken | tuple[str, str]
        if creds.get("client_id"):
            auth = OAuthToken(
                session=self.session,
                token_url=creds["token_url"],
                client_id=creds["client_id"],
                client_secret=creds["client_secret"],
            )
        else:
            auth = (creds["api_username"], creds["api_password"])
        self._api = BandwidthRestClient(
            session=self.session,
            base_url=self.api_base_url,
            account_id=creds["account_id"],
            auth=auth,
        )

    def setup_client(self) -> Any:
        """The REST client :mod:`.numbers` runs with."""
        return self._api

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Check the callback's HTTP Basic credentials (Bandwidth's only scheme)."""
        webhooks.verify_basic_auth(
            request, self.credentials["callback_username"], self.credentials["callback_password"]
        )

    route = webhooks.route
    is_incoming_call = webhooks.is_incoming_call
    parse_call_event = webhooks.parse_call_event
    parse_inbound_message = webhooks.parse_inbound_message

    parse_status = webhooks.parse_status

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        """BXML for ``voice``: ``<Transfer>`` with routing; an empty ``<Response/>`` after
        ``transferAnswer`` (so the legs are bridged); an empty 204 for events that take no
        BXML (``disconnect``, ``transferDisconnect``); else ``<Hangup/>``. Messaging callbacks
        only need a 2xx: an empty 200."""
        if kind == "voice":
            if routing is not None:
                return webhooks.transfer_bxml(
                    routing,
                    self.credentials["callback_username"],
                    self.credentials["callback_password"],
                )
            event_type = webhooks.voice_event_type(request)
            if event_type == "transferAnswer":
                return webhooks.BXML.empty()
            if event_type in ("disconnect", "transferDisconnect"):
                return WebhookReply(b"", "text/plain", 204)
            return webhooks.BXML.hangup()
        if kind in ("sms", "status"):
            return WebhookReply(b"", "text/plain")
        raise ValueError(f"unknown webhook kind {kind!r}")

    # -- sending -------------------------------------------------------------------------

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Create one message; raise a classified :mod:`connector.kernel.errors` error on failure.

        Messaging v2 has no per-message callback URL: delivery reports go to the Messaging
        Application's outbound callback URL, so ``status_callback_url`` is not sent.
        """
        payload = {
            "applicationId": self.credentials["application_id"],
            "to": [to],
            "from": from_,
            "text": body,
        }
        return self._api.create_message(payload)

    def find_sent_message(self, *, to: str, from_: str, body: str, sent_after: datetime) -> SendResult | None:
        """Our outbound message to ``to`` since ``sent_after`` (less 60 s of clock skew), or None.

        Bandwidth keeps no message text, so ``body`` cannot be compared: an outbound message
        from the business number to the caller in that window counts as ours.
        """
        return self._api.find_message(to=to, from_=from_, sent_after=sent_after)


__all__ = ["BandwidthCarrier", "BandwidthCredentials"]
