"""The CallRail adapter: post-call webhooks in; texts go out through the account's SMS carrier.

CallRail is a call-tracking service: its tracking numbers forward calls to the business's own
line and report each call afterwards. It tells us about the missed call; it sends no texts for
us, so an account using it names an SMS carrier for the business number in ``carrier.sms``
(``sends_sms = False`` makes the account schema require it), and the customer's replies and
delivery reports go to that carrier's webhooks.

Set up: in CallRail, Integrations > Webhooks, for the company, put our ``voice`` URL in the
**post-call** webhook only (the pre-call webhook reports every call as missed) and copy the
company's signing key into ``carrier.credentials.signing_key``. Expect the post-call webhook up
to 20 minutes after the call when recording or transcription is on.

No setup calls: the account file holds only the signing key, which CallRail's API cannot
check, and webhooks are per company, not per number; the setup page shows the URL to paste.

Docs: https://support.callrail.com/hc/en-us/articles/5711246459149-Webhooks and
https://apidocs.callrail.com/#webhooks
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import marshmallow
from marshmallow import fields, validate

from carrier_adapters.base import CallEventSource, WebhookEvent
from carrier_adapters.provisioning import WebhookField
from connector.kernel.events import CallOutcome, MissedCall
from connector.kernel.http import WebhookRequest

from . import webhooks


class CallRailCredentials(marshmallow.Schema):
    """``carrier.credentials`` for CallRail: the company's webhook signing key.

    ``signature_digest`` stays ``sha1`` unless CallRail's webhooks turn out to be signed with
    SHA-256 (the header and digest are CallRail's documented scheme as we read it).
    """

    signing_key = fields.String(
        required=True,
        validate=validate.Length(min=8),
        metadata={"secret": True, "description": "Company webhook signing key (Integrations > Webhooks)"},
    )
    signature_digest = fields.String(load_default="sha1", validate=validate.OneOf(webhooks.DIGESTS))


class CallRailCarrier(CallEventSource):
    """CallRail: signed post-call webhooks as missed calls; no texting of its own."""

    name: ClassVar[str] = "callrail"
    display_name: ClassVar[str] = "CallRail"
    docs_url: ClassVar[str] = "https://support.callrail.com/hc/en-us/articles/5711246459149-Webhooks"
    #: Not called: CallRail sends no texts for the connector.
    default_api_base_url: ClassVar[str] = "https://api.callrail.com"
    config_schema: ClassVar[type[marshmallow.Schema]] = CallRailCredentials
    #: ``call_type`` of an unanswered post-call:
    #: https://support.callrail.com/hc/en-us/articles/5711246459149-Webhooks
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = webhooks.CALL_OUTCOMES
    #: The account file holds only the webhook signing key, which CallRail's API cannot check:
    #: no setup calls, only the URL to paste.
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField("Settings > Integrations > Webhooks > Post-Call Webhook URL", "voice",
                     note="Texts go through the account's carrier.sms, at that carrier's URLs."),
    )

    # -- webhooks ------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        """Check the ``Signature`` header: Base64 HMAC of the raw body under the signing key."""
        webhooks.verify(request, self.credentials["signing_key"], self.credentials["signature_digest"])

    parse_call_event = webhooks.parse_call_event
    parse_answered_call = webhooks.parse_answered_call

    def business_number(self, event: WebhookEvent, request: WebhookRequest) -> str | None:
        """``business_phone_number`` of a call (not the tracking number; see
        :func:`.webhooks.business_number`)."""
        if isinstance(event, MissedCall):
            return webhooks.business_number(request)
        return super().business_number(event, request)


__all__ = ["CallRailCarrier", "CallRailCredentials"]
