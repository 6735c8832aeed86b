"""The Telnyx carrier adapter: Call Control or TeXML voice webhooks in, the Messaging API out.

How a missed call reaches us depends on the account's voice product:

- **TeXML**: the number's TeXML application requests its instructions from our ``voice``
  webhook (set the application's method to POST); we answer ``<Dial action=...>`` to the
  forwarding numbers and Telnyx posts ``DialCallStatus`` to ``action`` when the dial ends.
- **Call Control**: the business's own Call Control application forwards calls (``transfer``)
  and its connection posts events to our ``voice`` webhook; ``call.hangup`` tells us which
  calls nobody answered (see :mod:`.voice`).

Texts go out through ``POST /v2/messages`` with our ``status`` webhook as the message's
``webhook_url``. The messaging profile's own webhook (inbound texts *and* delivery reports) must
point at our ``sms`` URL: :meth:`TelnyxCarrier.route` sorts them by ``event_type``. The
``status`` URL takes delivery reports only, never an inbound text. Every webhook is verified with
Ed25519 (see :mod:`.webhooks`).

Docs: https://developers.telnyx.com/docs/voice/programmable-voice/voice-api-webhooks and
https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import marshmallow
import requests
from marshmallow import fields, validate

from carrier_adapters.base import CallRouting, CarrierAdapter, WebhookEvent, url_kinds_with
from carrier_adapters.provisioning import (
    SetupCalls,
    WebhookField,
)
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    MissedCall,
    SendResult,
)
from connector.kernel.http import WebhookReply, WebhookRequest

from . import numbers, voice, webhooks
from .api import TelnyxRestClient

#: What to fix when Telnyx refuses the API key.
CREDENTIALS_HINT = "check the API key (Mission Control > Account Settings > Keys & Credentials)"


class TelnyxCredentials(marshmallow.Schema):
    """``carrier.credentials`` for Telnyx.

    The API key (Mission Control, API Keys) authenticates our REST calls. The public key
    (Mission Control, Keys & Credentials, Public Key; Base64 of 32 bytes) verifies Telnyx's
    webhook signatures; it is public, so it is not flagged secret.
    """

    api_key = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "API key (v2), sent as a Bearer token"},
    )
    public_key = fields.String(
        required=True,
        metadata={"description": "Webhook signing public key (Base64, Ed25519)"},
    )
    messaging_profile_id = fields.String(
        load_default=None,
        metadata={"description": "Messaging profile to send through (optional)"},
    )

    @marshmallow.validates("public_key")
    def _ed25519_key(self, value: str, **kwargs: Any) -> None:
        try:
            webhooks.load_public_key(value)
        except ValueError as exc:
            raise marshmallow.ValidationError(
                f"must be the account's Ed25519 public key in Base64 ({exc})"
            ) from None


class TelnyxCarrier(CarrierAdapter):
    """Telnyx: verify Ed25519 signatures, map voice and messaging webhooks, send SMS."""

    name: ClassVar[str] = "telnyx"
    display_name: ClassVar[str] = "Telnyx"
    docs_url: ClassVar[str] = "https://developers.telnyx.com/api-reference/callbacks/call-hangup"
    default_api_base_url: ClassVar[str] = "https://api.telnyx.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = TelnyxCredentials
    #: Call Control ``hangup_cause`` and TeXML ``CallStatus``/``DialCallStatus`` values:
    #: https://developers.telnyx.com/api-reference/callbacks/call-hangup and
    #: https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/dial
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = voice.CALL_OUTCOMES
    #: ``to[].status`` of an outbound message:
    #: https://developers.telnyx.com/api-reference/messages/send-a-message
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = webhooks.DELIVERY_STATUSES
    #: Telnyx blocks STOP (and START unblocks) on its own, but its default list lacks REVOKE
    #: and OPTOUT and has no HELP answer, so the connector's confirmations stay on: a second
    #: confirmation after STOP cannot reach the customer anyway (Telnyx refuses it, 40300).
    #: https://developers.telnyx.com/docs/messaging/messages/advanced-opt-in-out
    confirms_opt_outs: ClassVar[bool] = False
    #: 40300 "Blocked due to STOP message": the recipient opted out with Telnyx.
    opt_out_error_codes: ClassVar[frozenset[str]] = frozenset({"40300"})
    #: A messaging profile has one webhook URL for inbound texts *and* delivery reports
    #: (https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks): point it at
    #: our ``sms`` URL, which therefore takes both. Our ``status`` URL, the ``webhook_url`` of
    #: each text we send, takes delivery reports only.
    url_kinds: ClassVar[Mapping[str, frozenset[str]]] = url_kinds_with(sms={"status"})
    #: Numbers, connections and messaging profiles (see :mod:`.numbers`).
    can_check_credentials: ClassVar[bool] = True
    can_list_numbers: ClassVar[bool] = True
    can_point_webhooks: ClassVar[bool] = True
    setup_calls: ClassVar[SetupCalls | None] = numbers
    credentials_hint: ClassVar[str] = CREDENTIALS_HINT
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField(
            "Mission Control > Voice > TeXML Applications > the number's application > "
            "Voice URL (POST)",
            "voice", calls="forward",
            note="textback answers with <Dial> to the forwarding phones.",
        ),
        WebhookField(
            "Mission Control > Voice > TeXML Applications > the number's application > "
            "Status callback URL (POST)",
            "voice",
        ),
        WebhookField(
            "Mission Control > Voice > Call Control Applications > the number's application > "
            "Webhook URL (Call Control numbers only)",
            "voice", calls="watch",
            note="Your own Call Control code then no longer receives the events.",
        ),
        WebhookField(
            "Mission Control > Messaging > the number's messaging profile > Inbound > "
            "Send a webhook to this URL (API v2)",
            "sms",
            note="Takes inbound texts and delivery reports; it serves every number in the "
            "profile.",
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
        self._public_key = webhooks.load_public_key(self.credentials["public_key"])
        self._api = TelnyxRestClient(
            session=self.session,
            base_url=self.api_base_url,
            api_key=self.credentials["api_key"],
        )

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Check ``telnyx-signature-ed25519`` over ``"{telnyx-timestamp}|{body}"`` (300 s window)."""
        webhooks.verify_signature(request, self._public_key)

    route = webhooks.route
    is_incoming_call = voice.is_incoming_call
    parse_call_event = voice.parse_call_event
    parse_answered_call = voice.parse_answered_call

    def business_number(self, event: WebhookEvent, request: WebhookRequest) -> str | None:
        """None for a Call Control missed call: the leg's ``to`` is the forwarding target, not
        a number of ours (see :mod:`.voice`), so such a call cannot be bound by number."""
        if isinstance(event, MissedCall) and webhooks.is_json(request):
            return None
        return super().business_number(event, request)

    def lookup_line_type(self, number: str) -> str | None:
        """The line type per Telnyx Number Lookup (``type=carrier``, a paid request; the
        connector caches it)."""
        return self._api.lookup_line_type(number)

    parse_inbound_message = webhooks.parse_inbound_message
    parse_status = webhooks.parse_status

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        """TeXML for ``voice`` (``<Dial>`` with routing, else ``<Hangup/>``; an empty 200 to a
        Call Control event, whose body Telnyx ignores); an empty 200 for ``sms`` and ``status``
        (Telnyx messaging sends no reply from a webhook answer)."""
        if kind == "voice":
            if routing is not None:
                return voice.TEXML.dial(routing)
            if request is not None and webhooks.is_json(request):
                return WebhookReply(b"", "text/plain")
            return voice.TEXML.hangup()
        if kind in ("sms", "status"):
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
        """Send one message; raise a classified :mod:`connector.kernel.errors` error on failure.

        ``webhook_url`` sends this message's delivery reports to our ``status`` webhook first
        (the messaging profile's URL is the failover). ``messaging_profile_id``, when
        configured, is sent too; the ``from`` number must belong to that profile.
        """
        message: dict[str, Any] = {"from": from_, "to": to, "text": body, "type": "SMS"}
        profile = self.credentials.get("messaging_profile_id")
        if profile:
            message["messaging_profile_id"] = profile
        if status_callback_url:
            message["webhook_url"] = status_callback_url
        return self._api.create_message(message)

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """Not available: raises ``NotImplementedError``.

        The Messaging API retrieves a message by id only. The one search Telnyx has, detail
        records (``GET /v2/detail_records``, record type ``messaging``), is a billing record:
        it carries no text to match and appears after a delay, so an empty answer would not
        prove the text was never sent, and the connector would send it twice. The connector
        waits for the ``message.sent``/``message.finalized`` webhook instead.
        """
        raise NotImplementedError("telnyx cannot search sent messages; await the status webhook")


__all__ = ["TelnyxCarrier", "TelnyxCredentials"]
