"""The Twilio carrier adapter: Programmable Voice webhooks in, Programmable Messaging out.

How a missed call reaches us: the business number's Voice URL points at our ``voice`` webhook;
for a new call we answer with ``<Dial action=... answerOnBridge="true">`` to the forwarding
numbers, and Twilio calls ``action`` with ``DialCallStatus`` when the ``<Dial>`` ends. The
number's own status callback (set on the phone number, also to our ``voice`` webhook) is the
safety net; both carry the same call SID, so the store's unique key absorbs the duplicate.

The module is split in :mod:`.webhooks` (signatures, parsing, TwiML) and :mod:`.api` (REST).
Docs: https://www.twilio.com/docs/voice/twiml/dial and
https://www.twilio.com/docs/messaging/api/message-resource
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import fields, validate

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.provisioning import (
    SetupCalls,
    WebhookField,
)
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    SendResult,
)
from connector.kernel.http import WebhookReply, WebhookRequest

from . import numbers, webhooks
from .api import LOOKUPS_BASE_URL, MESSAGING_BASE_URL, TwilioRestClient

#: What to fix when Twilio refuses the credentials.
CREDENTIALS_HINT = (
    "check the Account SID and Auth Token (Twilio Console, Account Info), or the API key SID "
    "and secret"
)


class TwilioCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Twilio.

    The Auth Token both signs Twilio's webhooks and, unless an API key is given, authenticates
    our REST calls. An API key (https://www.twilio.com/docs/iam/api-keys) can take over the REST
    calls so the Auth Token is used for webhook signatures only.
    """

    account_sid = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^AC[0-9a-fA-F]{32}\Z", error="must be a Twilio Account SID: AC and 32 hex digits"
        ),
        metadata={"description": "Account SID (starts with AC)"},
    )
    auth_token = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "Auth Token; also the webhook signing key"},
    )
    api_key_sid = fields.String(
        load_default=None,
        validate=validate.Regexp(
            r"^SK[0-9a-fA-F]{32}\Z", error="must be an API key SID: SK and 32 hex digits"
        ),
        metadata={"description": "API key SID for REST calls (optional)"},
    )
    api_key_secret = fields.String(
        load_default=None,
        metadata={"secret": True, "description": "API key secret (with api_key_sid)"},
    )
    messaging_service_sid = fields.String(
        load_default=None,
        validate=validate.Regexp(
            r"^MG[0-9a-fA-F]{32}\Z", error="must be a Messaging Service SID: MG and 32 hex digits"
        ),
        metadata={"description": "Messaging Service to send through (optional)"},
    )

    @marshmallow.validates_schema
    def _api_key_pair(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if bool(data.get("api_key_sid")) != bool(data.get("api_key_secret")):
            raise marshmallow.ValidationError(
                "api_key_sid and api_key_secret are given together or not at all",
                field_name="api_key_secret" if data.get("api_key_sid") else "api_key_sid",
            )


class TwilioCarrier(CarrierAdapter):
    """Twilio: verify ``X-Twilio-Signature``, map voice and messaging webhooks, send SMS."""

    name: ClassVar[str] = "twilio"
    display_name: ClassVar[str] = "Twilio"
    docs_url: ClassVar[str] = "https://www.twilio.com/docs/voice/twiml/dial"
    default_api_base_url: ClassVar[str] = "https://api.twilio.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = TwilioCredentials
    #: https://www.twilio.com/docs/voice/twiml/dial#dialcallstatus-values
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: https://www.twilio.com/docs/api/errors/21610
    opt_out_error_codes: ClassVar[frozenset[str]] = frozenset({"21610"})
    #: Twilio answers STOP, START and HELP itself on US and Canadian long codes:
    #: https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out
    confirms_opt_outs: ClassVar[bool] = True
    #: The account and IncomingPhoneNumber resources (see :mod:`.numbers`).
    can_check_credentials: ClassVar[bool] = True
    can_list_numbers: ClassVar[bool] = True
    can_point_webhooks: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = CREDENTIALS_HINT
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField(
            "Phone Numbers > Active numbers > the number > Voice Configuration > "
            "A call comes in (Webhook)",
            "voice", calls="forward",
            note="textback answers and rings the forwarding phones.",
        ),
        WebhookField(
            "Phone Numbers > Active numbers > the number > Voice Configuration > "
            "Call status changes",
            "voice",
        ),
        WebhookField(
            "Phone Numbers > Active numbers > the number > Messaging Configuration > "
            "A message comes in (Webhook)",
            "sms",
            note="If the number is in a Messaging Service, set the service's incoming "
            "messages to 'Defer to sender's webhook'.",
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
        creds = self.credentials
        if creds.get("api_key_sid"):
            auth = (creds["api_key_sid"], creds["api_key_secret"])
        else:
            auth = (creds["account_sid"], creds["auth_token"])
        # Lookup and Messaging Services have hosts of their own; a non-default api_base_url
        # (a stub, a proxy) serves all three.
        default = self.api_base_url == self.default_api_base_url
        self._api = TwilioRestClient(
            session=self.session,
            base_url=self.api_base_url,
            account_sid=creds["account_sid"],
            auth=auth,
            lookups_base_url=LOOKUPS_BASE_URL if default else self.api_base_url,
            messaging_base_url=MESSAGING_BASE_URL if default else self.api_base_url,
            messaging_service_sid=creds.get("messaging_service_sid"),
        )

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Check ``X-Twilio-Signature`` against the Auth Token (see :mod:`.webhooks`)."""
        webhooks.verify_signature(request, self.credentials["auth_token"])

    is_incoming_call = webhooks.is_incoming_call
    parse_call_event = webhooks.parse_call_event
    parse_answered_call = webhooks.parse_answered_call

    def lookup_line_type(self, number: str) -> str | None:
        """The line type per Twilio Lookup v2 (a paid request; the connector caches it)."""
        return self._api.lookup_line_type(number)

    parse_inbound_message = webhooks.parse_inbound_message
    parse_status = webhooks.parse_status

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        """TwiML for ``voice`` (``<Dial>`` with routing, else ``<Hangup/>``) and ``sms`` (empty,
        no auto-reply); an empty 200 for ``status``."""
        if kind == "voice":
            return webhooks.TWIML.dial(routing) if routing else webhooks.TWIML.hangup()
        if kind == "sms":
            return webhooks.TWIML.empty()
        if kind == "status":
            return WebhookReply(b"", "text/plain")
        raise ValueError(f"unknown webhook kind {kind!r}")

    # -- setup ---------------------------------------------------------------------------

    def setup_client(self) -> Any:
        """The REST client :mod:`.numbers` runs with."""
        return self._api

    # -- sending -------------------------------------------------------------------------

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Create one Message; raise a classified :mod:`connector.kernel.errors` error on failure.

        With a Messaging Service configured we send both ``MessagingServiceSid`` and ``From``:
        Twilio then uses that sender from the service's pool (the business number the customer
        called) while applying the service's settings. See the ``MessagingServiceSid``
        parameter in https://www.twilio.com/docs/messaging/api/message-resource.
        """
        form = {"To": to, "From": from_, "Body": body}
        service = self.credentials.get("messaging_service_sid")
        if service:
            form["MessagingServiceSid"] = service
        if status_callback_url:
            form["StatusCallback"] = status_callback_url
        return self._api.create_message(form)

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """The text with this body we sent to ``to`` since ``sent_after`` (less 60 s of clock
        skew), or None; used to reconcile an ambiguous send instead of sending twice."""
        return self._api.find_message(to=to, from_=from_, body=body, sent_after=sent_after)


__all__ = ["TwilioCarrier", "TwilioCredentials"]
