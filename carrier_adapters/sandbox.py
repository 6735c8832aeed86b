"""The built-in ``sandbox`` carrier: texts are recorded, nothing leaves the machine.

Like django-anymail's test backend, it lets the demo and the workflow tests run the whole flow
without a phone company. Its webhooks are JSON signed with HMAC-SHA256 of the raw body under the
account's ``webhook_secret`` (header ``X-Sandbox-Signature``, hex), so the signature path is real.
It is never a substitute for testing the real adapters.

What it records goes to a :class:`SandboxOutbox`; the connector passes one backed by its
``sandbox_records`` table, tests use the in-memory default.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Protocol

from marshmallow import Schema, fields

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.provisioning import (
    CallHandling,
    OwnedNumber,
    WebhookChange,
    WebhookField,
    WebhookUrls,
)
from connector.kernel import clock, safe_json
from connector.kernel.errors import (
    CredentialsRejectedError,
    MalformedWebhookError,
    PermanentProviderError,
    WebhookVerificationError,
)
from connector.kernel.events import (
    AnsweredCall,
    CallOutcome,
    DeliveryStatus,
    InboundMessage,
    MessageStatusUpdate,
    MissedCall,
    SendResult,
)
from connector.kernel.http import WebhookReply, WebhookRequest, classify_status
from connector.kernel.phone import to_e164
from connector.kernel.signing import constant_time_equals, hmac_hex

SIGNATURE_HEADER = "X-Sandbox-Signature"
#: The numbers a sandbox account owns unless its credentials list others (fictional 555-01xx).
DEFAULT_OWNED_NUMBERS = ("+14155550100", "+14155550101", "+14155550102")
#: The shortest ``webhook_secret`` :meth:`SandboxCarrier.check_credentials` accepts: a shorter
#: one is too easy to guess to sign webhooks with.
MIN_SECRET_LENGTH = 16
#: The sandbox's per-number webhook settings, by our URL kind.
SETTING_OF_KIND = {"voice": "voice_url", "sms": "sms_url", "status": "status_url"}


class SandboxOutbox(Protocol):
    """Where the sandbox carrier records the texts it 'sends'."""

    def record_sms(self, message: Mapping[str, Any]) -> None:
        """Keep one sent text (id, to, from, body, status_callback_url, sent_at)."""

    def sent_messages(self) -> list[Mapping[str, Any]]:
        """Every text recorded so far, oldest first."""

    def number_webhooks(self) -> Mapping[str, Mapping[str, str]]:
        """Where each owned number's webhooks point: E.164 -> {setting name: URL}."""

    def set_number_webhooks(self, number: str, settings: Mapping[str, str]) -> None:
        """Replace where ``number``'s webhooks point."""


class MemoryOutbox:
    """An in-memory outbox; ``fail_next(status)`` makes the next send fail with that HTTP status."""

    def __init__(self) -> None:
        self._messages: list[Mapping[str, Any]] = []
        self._webhooks: dict[str, dict[str, str]] = {}
        self._failures: list[int] = []
        self._lock = threading.Lock()

    def fail_next(self, status: int) -> None:
        """Answer the next send with this HTTP status, as a real carrier might."""
        with self._lock:
            self._failures.append(status)

    def take_failure(self) -> int | None:
        """The queued failure status for this send, if any."""
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def record_sms(self, message: Mapping[str, Any]) -> None:
        with self._lock:
            self._messages.append(dict(message))

    def sent_messages(self) -> list[Mapping[str, Any]]:
        with self._lock:
            return list(self._messages)

    def number_webhooks(self) -> Mapping[str, Mapping[str, str]]:
        with self._lock:
            return {number: dict(settings) for number, settings in self._webhooks.items()}

    def set_number_webhooks(self, number: str, settings: Mapping[str, str]) -> None:
        with self._lock:
            self._webhooks[number] = dict(settings)


class SandboxCredentials(Schema):
    """``carrier.credentials`` for the sandbox."""

    webhook_secret = fields.String(required=True, metadata={"secret": True})
    #: Numbers the sandbox's line-type lookup reports as landlines (everything else is mobile).
    landlines = fields.List(fields.String(), load_default=list)
    #: The numbers the sandbox "account" owns, as :meth:`SandboxCarrier.list_numbers` lists them.
    owned_numbers = fields.List(
        fields.String(), load_default=lambda: list(DEFAULT_OWNED_NUMBERS)
    )


class SandboxCarrier(CarrierAdapter):
    """A carrier that records texts locally and takes signed JSON webhooks."""

    name: ClassVar[str] = "sandbox"
    display_name: ClassVar[str] = "Sandbox (built in)"
    docs_url: ClassVar[str] = "https://github.com/textback/textback#sandbox"
    default_api_base_url: ClassVar[str] = "sandbox://local"
    config_schema = SandboxCredentials
    call_outcomes: ClassVar[Mapping[str, CallOutcome]] = {
        "no-answer": CallOutcome.NO_ANSWER,
        "busy": CallOutcome.BUSY,
        "failed": CallOutcome.FAILED,
        "canceled": CallOutcome.CANCELED,
        "rejected": CallOutcome.REJECTED,
        "voicemail": CallOutcome.VOICEMAIL,
        "after-hours": CallOutcome.AFTER_HOURS,
        "answered": CallOutcome.ANSWERED,
    }
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = {
        s.value: s for s in DeliveryStatus if s is not DeliveryStatus.UNKNOWN
    }
    can_check_credentials: ClassVar[bool] = True
    can_list_numbers: ClassVar[bool] = True
    can_point_webhooks: ClassVar[bool] = True
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = (
        WebhookField("Sandbox number: voice_url", "voice"),
        WebhookField("Sandbox number: sms_url", "sms"),
        WebhookField("Sandbox number: status_url", "status"),
    )

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
        session: Any = None,
        outbox: SandboxOutbox | None = None,
    ) -> None:
        super().__init__(credentials, api_base_url=api_base_url, session=session)
        self.outbox: SandboxOutbox = outbox if outbox is not None else MemoryOutbox()

    # -- webhooks -------------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        """The signature header value for ``body`` (used by the demo and by tests)."""
        return hmac_hex(self.credentials["webhook_secret"], body)

    def verify_request(self, request: WebhookRequest) -> None:
        given = request.headers.get(SIGNATURE_HEADER)
        if not constant_time_equals(self.sign(request.body), given):
            raise WebhookVerificationError("sandbox signature missing or wrong")

    def _payload(self, request: WebhookRequest) -> dict[str, Any]:
        data = safe_json.loads(request.body, what="sandbox webhook body")
        if not isinstance(data, dict):
            raise MalformedWebhookError("sandbox webhook body must be a JSON object")
        return data

    @staticmethod
    def _require(data: Mapping[str, Any], *names: str) -> None:
        missing = [n for n in names if not data.get(n)]
        if missing:
            raise MalformedWebhookError(f"sandbox webhook lacks {', '.join(missing)}")

    @staticmethod
    def _text(value: Any) -> str | None:
        """A text field: None unless the payload holds a non-empty string (or a number)."""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return None
        return str(value) or None

    @staticmethod
    def _number(value: Any) -> float | None:
        """A number of seconds, or None when the payload holds anything else."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if 0 <= value < 1e9 else None

    @staticmethod
    def _when(value: Any) -> datetime:
        if not value:
            return clock.now()
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise MalformedWebhookError("sandbox timestamp is not ISO 8601") from None
        if parsed.tzinfo is None:
            raise MalformedWebhookError("sandbox timestamp lacks a zone")
        return parsed

    def parse_call_event(self, request: WebhookRequest) -> MissedCall | None:
        data = self._payload(request)
        self._require(data, "call_id", "outcome")
        outcome = self.call_outcomes.get(str(data["outcome"]), CallOutcome.UNKNOWN)
        if outcome is CallOutcome.ANSWERED or data.get("direction") == "outbound":
            return None
        caller_raw = str(data.get("from") or "")
        return MissedCall(
            carrier=self.name,
            event_id=str(data["call_id"]),
            caller=to_e164(caller_raw),
            called=to_e164(str(data.get("to") or "")),
            outcome=outcome,
            occurred_at=self._when(data.get("occurred_at")),
            caller_raw=caller_raw,
            ring_seconds=self._number(data.get("ring_seconds")),
            voicemail=bool(data.get("voicemail", False)),
            attestation=self._text(data.get("attestation")),
            raw=data,
        )

    def parse_answered_call(self, request: WebhookRequest) -> AnsweredCall | None:
        """``outcome: answered`` events: the customer got through (``direction`` inbound, the
        default) or the business called them back (``direction: outbound``, customer in ``to``)."""
        data = self._payload(request)
        if data.get("outcome") != "answered" or not data.get("call_id"):
            return None
        direction = "outbound" if data.get("direction") == "outbound" else "inbound"
        customer = to_e164(str(data.get("to" if direction == "outbound" else "from") or ""))
        if customer is None:
            return None
        return AnsweredCall(
            carrier=self.name, event_id=f"{data['call_id']}:{direction}", customer=customer,
            direction=direction, occurred_at=self._when(data.get("occurred_at")),
            business_number=to_e164(str(data.get("from" if direction == "outbound" else "to") or ""))
            or None,
        )

    def lookup_line_type(self, number: str) -> str | None:
        """``landline`` for the numbers listed in the credentials' ``landlines``, else mobile."""
        landlines = {to_e164(n) for n in self.credentials.get("landlines", [])}
        return "landline" if number in landlines else "mobile"

    def parse_inbound_message(self, request: WebhookRequest) -> InboundMessage:
        data = self._payload(request)
        self._require(data, "message_id", "from", "to")
        return InboundMessage(
            carrier=self.name,
            event_id=str(data["message_id"]),
            sender=to_e164(str(data["from"])),
            recipient=to_e164(str(data["to"])),
            body=str(data.get("body") or ""),
            received_at=self._when(data.get("received_at")),
            opt_out_type=self._text(data.get("opt_out_type")),
            raw=data,
        )

    def parse_status(self, request: WebhookRequest) -> MessageStatusUpdate:
        data = self._payload(request)
        self._require(data, "message_id", "status")
        status = self.delivery_status(str(data["status"]))
        return MessageStatusUpdate(
            carrier=self.name,
            event_id=f"{data['message_id']}:{data['status']}",
            message_id=str(data["message_id"]),
            status=status,
            occurred_at=self._when(data.get("occurred_at")),
            error_code=self._text(data.get("error_code")),
            raw=data,
            business_number=to_e164(str(data.get("from") or "")) or None,  # when it names it
        )

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        return WebhookReply(b'{"ok": true}', "application/json")

    # -- setup ------------------------------------------------------------------------------

    def check_credentials(self) -> None:
        """Refuse a ``webhook_secret`` shorter than :data:`MIN_SECRET_LENGTH` characters, as a
        real carrier refuses a bad token; the sandbox is always reachable."""
        if len(self.credentials["webhook_secret"]) < MIN_SECRET_LENGTH:
            raise CredentialsRejectedError(
                f"{self.display_name} refused the credentials: webhook_secret must be at least "
                f"{MIN_SECRET_LENGTH} characters",
                provider=self.name, status=401,
            )

    def _owned(self) -> list[str]:
        numbers = (to_e164(n) for n in self.credentials["owned_numbers"])
        return [n for n in numbers if n]

    def list_numbers(self) -> list[OwnedNumber]:
        """The credentials' ``owned_numbers`` (three 555-01xx numbers by default), with the
        webhook URLs :meth:`point_webhooks` recorded for them. Refuses what
        :meth:`check_credentials` refuses."""
        self.check_credentials()
        webhooks = self.outbox.number_webhooks()
        numbers = []
        for index, e164 in enumerate(self._owned(), start=1):
            settings = webhooks.get(e164, {})
            numbers.append(
                OwnedNumber(
                    e164=e164,
                    friendly_name=f"Sandbox line {index}",
                    capabilities=frozenset({"voice", "sms"}),
                    voice_url=settings.get("voice_url"),
                    sms_url=settings.get("sms_url"),
                    status_url=settings.get("status_url"),
                    carrier_id=f"SBPN{index}",
                )
            )
        return numbers

    def point_webhooks(
        self, number: str, urls: WebhookUrls, *, calls: CallHandling = "forward"
    ) -> list[WebhookChange]:
        """Record ``urls`` as the number's three webhooks; ``calls`` makes no difference (the
        sandbox's call events always go to the voice URL)."""
        self.check_credentials()
        e164 = to_e164(number)
        if e164 is None or e164 not in self._owned():
            raise PermanentProviderError(
                "sandbox: the account owns no such number", provider=self.name, status=404
            )
        before = dict(self.outbox.number_webhooks().get(e164, {}))
        after = {setting: urls.for_kind(kind) for kind, setting in SETTING_OF_KIND.items()}
        self.outbox.set_number_webhooks(e164, after)
        return [WebhookChange(name, before.get(name), value) for name, value in after.items()]

    # -- sending ----------------------------------------------------------------------------

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        take = getattr(self.outbox, "take_failure", None)
        failure = take() if take else None
        if failure is not None:
            raise classify_status(self.name, failure, f"sandbox send failed with {failure}")
        message_id = "SB" + uuid.uuid4().hex
        self.outbox.record_sms(
            {
                "id": message_id,
                "to": to,
                "from": from_,
                "body": body,
                "status_callback_url": status_callback_url,
                "sent_at": clock.now().isoformat(),
            }
        )
        return SendResult(message_id=message_id, status=DeliveryStatus.SENT, segments=1)

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        for message in reversed(self.outbox.sent_messages()):
            if (
                message["to"] == to
                and message["from"] == from_
                and message["body"] == body
                and datetime.fromisoformat(message["sent_at"]) >= sent_after
            ):
                return SendResult(message_id=message["id"], status=DeliveryStatus.SENT)
        return None
