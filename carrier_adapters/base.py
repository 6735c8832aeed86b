"""The contract every carrier adapter fulfils.

An adapter is a thin translator: verify the provider's signature on the raw request, map its
payloads to :mod:`connector.kernel.events` through mapping tables, send one text per call to ``send_sms``
and classify the provider's errors into :mod:`connector.kernel.errors`. It keeps no state and never
touches Flask or storage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, final

import marshmallow
import requests

from carrier_adapters.provisioning import (
    GENERIC_WEBHOOK_FIELDS,
    CallHandling,
    OwnedNumber,
    SetupCalls,
    WebhookChange,
    WebhookField,
    WebhookSetting,
    WebhookUrls,
    setup_call,
)
from connector.kernel.errors import (
    MalformedWebhookError,
    PermanentProviderError,
    UnsupportedEventError,
    checking_credentials,
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
from connector.kernel.http import WebhookReply, WebhookRequest, new_session

#: Webhook kinds, the last segment of ``/webhooks/<carrier>/<account_id>/<kind>``.
WEBHOOK_KINDS = ("voice", "sms", "status")
#: What ``route()`` returns for a provider's subscription handshake (RingCentral's
#: ``Validation-Token``): the connector answers it with ``reply(HANDSHAKE, request)`` and stores
#: nothing.
HANDSHAKE = "handshake"
#: The default of :attr:`CarrierAdapter.url_kinds`: each URL carries its own kind only.
ONE_KIND_PER_URL: Mapping[str, frozenset[str]] = MappingProxyType(
    {kind: frozenset({kind}) for kind in WEBHOOK_KINDS}
)


def url_kinds_with(**also: frozenset[str] | set[str]) -> Mapping[str, frozenset[str]]:
    """:data:`ONE_KIND_PER_URL` plus the kinds ``also`` adds to a URL:
    ``url_kinds_with(sms={"status"})`` lets the ``sms`` URL carry delivery reports too."""
    return MappingProxyType(
        {url: kinds | frozenset(also.get(url, ())) for url, kinds in ONE_KIND_PER_URL.items()}
    )


def check_url_kinds(owner: str, url_kinds: Mapping[str, frozenset[str]]) -> None:
    """Refuse a :attr:`CarrierAdapter.url_kinds` declaration that breaks the URL rules.

    Every URL carries at least its own kind, names only webhook kinds, and the ``status`` URL
    never carries inbound texts: a delivery report's signature must not be able to pass a text
    off as the customer's (or the owner's) words.
    """
    for url, kinds in url_kinds.items():
        if url not in WEBHOOK_KINDS or url not in kinds or not kinds <= set(WEBHOOK_KINDS):
            raise TypeError(f"{owner}.url_kinds: the {url!r} URL declares {sorted(kinds)}")
    if "sms" in url_kinds.get("status", frozenset()):
        raise TypeError(f"{owner}.url_kinds: the status URL never carries inbound texts")


#: An event parsed from a webhook.
WebhookEvent = MissedCall | AnsweredCall | InboundMessage | MessageStatusUpdate


@dataclass(frozen=True)
class CallRouting:
    """What the adapter needs to answer an incoming call that should be forwarded.

    ``action_url`` and ``status_callback_url`` are our own public webhook URLs for the account.
    """

    forward_to: tuple[str, ...]
    ring_timeout_seconds: int
    action_url: str
    status_callback_url: str


def secret_fields(schema: type[marshmallow.Schema]) -> frozenset[str]:
    """Names of the fields a credential schema flags with ``metadata={"secret": True}``."""
    return frozenset(
        name for name, f in schema().fields.items() if f.metadata.get("secret", False)
    )


class CarrierAdapter(ABC):
    """Base class of the carrier adapters; subclasses set the class attributes and the methods."""

    #: Registry key and the ``carrier.kind`` in the account file.
    name: ClassVar[str]
    display_name: ClassVar[str]
    #: Link to the provider documentation the mapping tables come from.
    docs_url: ClassVar[str]
    default_api_base_url: ClassVar[str]
    #: Credential schema; secret fields carry ``metadata={"secret": True}``.
    config_schema: ClassVar[type[marshmallow.Schema]]
    #: The carrier's call status (or end reason) -> what it means to us; :meth:`call_outcome`
    #: reads it, and a status it does not list is ``UNKNOWN``. Each entry cites the docs.
    call_outcomes: ClassVar[Mapping[str, CallOutcome]]
    #: The carrier's message status -> ours; :meth:`delivery_status` reads it. Call sources
    #: that send no texts leave it empty.
    delivery_statuses: ClassVar[Mapping[str, DeliveryStatus]] = MappingProxyType({})
    #: True when the carrier itself answers STOP (and START, HELP) with a confirmation text, so
    #: the connector must not send a second one. An account can override it.
    confirms_opt_outs: ClassVar[bool] = False
    #: False for call-event sources without a messaging API (CallRail): the account file then
    #: names an SMS carrier in ``carrier.sms``.
    sends_sms: ClassVar[bool] = True
    #: Delivery-report error codes that mean the recipient opted out with the carrier; a status
    #: callback carrying one records the opt-out in our own ledger.
    opt_out_error_codes: ClassVar[frozenset[str]] = frozenset()
    #: Which kinds of event each of our webhook URLs may carry, keyed by the URL's last segment.
    #: The URL's kind decides what is parsed: by default a URL carries its own kind only, and
    #: :meth:`route` may refine within it. A carrier that posts several kinds to one address of
    #: its own configuration (one messaging webhook for inbound texts and delivery reports, one
    #: subscription for every event) declares it here, citing the provider's documentation. The
    #: ``status`` URL never carries inbound texts, whatever is declared
    #: (:func:`check_url_kinds`, :meth:`webhook_kind`).
    url_kinds: ClassVar[Mapping[str, frozenset[str]]] = ONE_KIND_PER_URL
    #: How long a spent :meth:`replay_nonce` is remembered. A replay within it is refused; past
    #: it only a signature timestamp, where the scheme has one, stops a replay.
    nonce_retention: ClassVar[timedelta] = timedelta(hours=24)

    #: True when :meth:`check_credentials` asks the carrier whether the credentials work.
    can_check_credentials: ClassVar[bool] = False
    #: True when :meth:`list_numbers` lists the account's numbers from the carrier's API.
    can_list_numbers: ClassVar[bool] = False
    #: True when :meth:`point_webhooks` can point a number's webhooks at textback through the
    #: carrier's API; otherwise the setup page shows :meth:`webhook_settings` to paste by hand.
    can_point_webhooks: ClassVar[bool] = False
    #: The carrier's settings that take textback's URLs, in its console's words.
    webhook_fields: ClassVar[tuple[WebhookField, ...]] = GENERIC_WEBHOOK_FIELDS
    #: The setup calls as functions of the adapter's REST client (:meth:`setup_client`), when
    #: the adapter does not override the three methods itself.
    setup_calls: ClassVar[SetupCalls | None] = None
    #: What to fix when the carrier refuses the credentials, in its console's words.
    credentials_hint: ClassVar[str] = "check carrier.credentials"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_url_kinds(cls.__name__, cls.url_kinds)
        for flag, method in (
            ("can_check_credentials", "check_credentials"),
            ("can_list_numbers", "list_numbers"),
            ("can_point_webhooks", "point_webhooks"),
        ):
            declared = setup_call(cls.setup_calls, method) is not None
            overridden = declared or getattr(cls, method) is not getattr(CarrierAdapter, method)
            if getattr(cls, flag) and not overridden:
                raise TypeError(f"{cls.__name__}.{flag} is set but {method} is not implemented")

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        api_base_url: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.credentials: Mapping[str, Any] = self.config_schema().load(dict(credentials))
        self.api_base_url = (api_base_url or self.default_api_base_url).rstrip("/")
        self.session = session or new_session()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} api_base_url={self.api_base_url!r}>"

    @classmethod
    def call_outcome(cls, status: str) -> CallOutcome:
        """What the carrier's call ``status`` means, per :attr:`call_outcomes`; ``UNKNOWN`` for
        a status the table does not list (one the carrier added since)."""
        return cls.call_outcomes.get(status, CallOutcome.UNKNOWN)

    @classmethod
    def delivery_status(cls, status: str) -> DeliveryStatus:
        """What the carrier's message ``status`` means, per :attr:`delivery_statuses`;
        ``UNKNOWN`` for a status the table does not list."""
        return cls.delivery_statuses.get(status, DeliveryStatus.UNKNOWN)

    @abstractmethod
    def verify_request(self, request: WebhookRequest) -> None:
        """Raise :class:`~connector.kernel.errors.WebhookVerificationError` unless the request is
        authentic."""

    @abstractmethod
    def parse_call_event(self, request: WebhookRequest) -> MissedCall | None:
        """The missed call this voice webhook reports, or None (answered, ringing, not a call end).

        Raises :class:`~connector.kernel.errors.MalformedWebhookError` when required fields are missing.
        """

    def replay_nonce(self, request: WebhookRequest) -> str | None:
        """The one-time value the signature of this (verified) request covers, else None.

        Adapters whose signature does not cover the body but does cover a nonce (Plivo's
        messaging signature covers the URL and a nonce only) return it: the webhook view spends
        it once per account in ``used_nonces`` and refuses a second use with a 403, so captured
        headers cannot carry another body. The default, for signatures that cover the body or
        carry no nonce, is None.
        """
        return None

    def business_number(self, event: WebhookEvent, request: WebhookRequest) -> str | None:
        """The account's own number that ``event`` is about (E.164), when the payload names it.

        With carrier credentials shared by several accounts, a signature that does not cover the
        URL proves the carrier sent the request, not to which account; so the webhook view
        refuses (404) an event whose business number is not one of the account's. The default
        reads the parsed event: the called number of a missed call, the receiving number of an
        inbound text, and the ``business_number`` the adapter's parser read from the payload of
        an answered call or a delivery report (the business is the *caller* of an outbound
        call, when it called a customer back, and the sender of the texts it reports on).

        None means the event names no number of ours and cannot be bound to an account this
        way: a forwarded leg that names only the forwarding phone, a carrier that reports no
        sender. Such events are accepted; the stores bind them otherwise (a delivery report
        only updates a message this account sent, found by the carrier's message id).
        """
        if isinstance(event, MissedCall):
            return event.called
        if isinstance(event, InboundMessage):
            return event.recipient
        if isinstance(event, AnsweredCall | MessageStatusUpdate):
            return event.business_number
        return None

    def route(self, kind: str, request: WebhookRequest) -> str:
        """Which kind of event this authentic request, posted to our ``kind`` URL, carries.

        Carriers that post several kinds to one URL (declared in :attr:`url_kinds`) override
        this to sort them; the default trusts the URL's kind. The view calls
        :meth:`webhook_kind`, which holds the answer to what the URL may carry.
        """
        return kind

    @final
    def webhook_kind(self, kind: str, request: WebhookRequest) -> str:
        """The kind to parse an authentic request to our ``kind`` URL as: :meth:`route`'s answer,
        when the URL may carry it (:attr:`url_kinds`).

        Raises :class:`~connector.kernel.errors.MalformedWebhookError` (a 400) for an event the URL
        does not carry, above all an inbound text on the ``status`` URL. ``HANDSHAKE`` passes on
        any URL: answering it stores nothing.
        """
        routed = self.route(kind, request)
        if routed == HANDSHAKE:
            return routed
        carried = self.url_kinds.get(kind, frozenset({kind}))
        if routed not in carried or (kind == "status" and routed == "sms"):
            raise MalformedWebhookError(
                f"{self.name}: the {kind} URL does not take {routed} events (see the adapter's "
                "url_kinds)"
            )
        return routed

    def is_incoming_call(self, request: WebhookRequest) -> bool:
        """True when the voice webhook is a new incoming call to be answered with forwarding."""
        return False

    def parse_answered_call(self, request: WebhookRequest) -> AnsweredCall | None:
        """The answered call a voice webhook reports (either direction), else None.

        Used to cancel a pending text when the business called back or the customer got through.
        Carriers whose events cannot tell return None.
        """
        return None

    def lookup_line_type(self, number: str) -> str | None:
        """The number's line type (``mobile``, ``landline``, ``fixedVoip`` ...) per the carrier.

        Raises ``NotImplementedError`` for carriers without a lookup, and the usual provider
        errors; None when the carrier does not know.
        """
        raise NotImplementedError

    # -- setup: credentials, numbers and webhook configuration ------------------------------

    def check_credentials(self) -> None:
        """Ask the carrier whether the credentials work, with one cheap read.

        Returns quietly when they do. Raises
        :class:`~connector.kernel.errors.CredentialsRejectedError` (the message says which
        setting to fix) when the carrier refuses them and
        :class:`~connector.kernel.errors.ProviderUnreachableError` when it cannot be reached
        or fails on its side. ``NotImplementedError`` unless :attr:`can_check_credentials`.
        """
        self._run_setup_call("check_credentials")

    def list_numbers(self) -> list[OwnedNumber]:
        """The phone numbers the carrier account owns, with what each can do and where its
        webhooks point now (where the API shows it).

        Raises like :meth:`check_credentials`. ``NotImplementedError`` unless
        :attr:`can_list_numbers`.
        """
        numbers: list[OwnedNumber] = self._run_setup_call("list_numbers")
        return numbers

    def point_webhooks(
        self, number: str, urls: WebhookUrls, *, calls: CallHandling = "forward"
    ) -> list[WebhookChange]:
        """Point the owned ``number``'s webhooks at ``urls`` (textback's, for this account)
        and return every setting written, with its value before and after.

        ``calls`` is ``forward`` when textback answers the number's calls and forwards them,
        ``watch`` when the business keeps its own call flow and textback only receives call
        status reports; carriers that cannot tell the two apart ignore it. A number the account
        does not own is a :class:`~connector.kernel.errors.PermanentProviderError`; credentials
        errors raise like :meth:`check_credentials`. ``NotImplementedError`` unless
        :attr:`can_point_webhooks`.
        """
        changes: list[WebhookChange] = self._run_setup_call("point_webhooks", number, urls, calls)
        return changes

    def setup_client(self) -> Any:
        """The REST client :attr:`setup_calls` run with."""
        raise NotImplementedError(f"{self.name} has no setup client")

    def _run_setup_call(self, name: str, *args: Any) -> Any:
        """Run :attr:`setup_calls`' ``name`` with the setup client, its errors turned into what
        the setup page shows; ``NotImplementedError`` when the carrier has no such call."""
        call = setup_call(self.setup_calls, name)
        if call is None:
            what = name.replace("_", " ")
            raise NotImplementedError(f"{self.name} cannot {what} through its API")
        with checking_credentials(self.display_name, self.credentials_hint):
            return call(self.setup_client(), *args)

    @classmethod
    def webhook_settings(
        cls, urls: WebhookUrls, *, calls: CallHandling = "forward"
    ) -> list[WebhookSetting]:
        """What to paste where in the carrier's console, for ``urls`` and the way ``calls``
        are handled (:attr:`webhook_fields` filled in)."""
        return [
            WebhookSetting(f.where, urls.for_kind(f.kind), f.method, f.note)
            for f in cls.webhook_fields
            if f.calls is None or f.calls == calls
        ]

    @abstractmethod
    def parse_inbound_message(self, request: WebhookRequest) -> InboundMessage:
        """The customer's text in an ``sms`` webhook."""

    @abstractmethod
    def parse_status(self, request: WebhookRequest) -> MessageStatusUpdate:
        """The delivery report in a ``status`` webhook."""

    @abstractmethod
    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Send one text, one attempt; raise a classified :mod:`connector.kernel.errors` error on failure."""

    def find_sent_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """Look for a text we may have sent when a send's outcome was ambiguous.

        Returns the carrier's record when it exists, None when the carrier shows no such text.
        Adapters that cannot list messages raise ``NotImplementedError``; the connector then waits
        for a status callback instead of re-sending.
        """
        raise NotImplementedError

    def reply(
        self,
        kind: str,
        request: WebhookRequest | None = None,
        routing: CallRouting | None = None,
    ) -> WebhookReply:
        """The body to answer a webhook of ``kind`` with; ``routing`` is set for incoming calls."""
        return WebhookReply(b"", "text/plain")


class CallEventSource(CarrierAdapter):
    """Base of the call-event sources that text nothing for us (CallRail, Zoom Phone).

    They report calls; the account names the carrier that texts from the business number in
    ``carrier.sms`` (``sends_sms`` is False, so the account schema requires one), and the
    customer's replies and delivery reports go to that carrier's webhooks.
    """

    sends_sms: ClassVar[bool] = False

    def parse_inbound_message(self, request: WebhookRequest) -> InboundMessage:
        """Always :class:`UnsupportedEventError`: replies reach the ``carrier.sms`` carrier."""
        raise UnsupportedEventError(f"{self.name}: texts are received by the account's carrier.sms")

    def parse_status(self, request: WebhookRequest) -> MessageStatusUpdate:
        """Always :class:`UnsupportedEventError`: the source sends none of our texts."""
        raise UnsupportedEventError(
            f"{self.name}: delivery reports come from the account's carrier.sms"
        )

    def send_sms(
        self, *, to: str, from_: str, body: str, status_callback_url: str | None = None
    ) -> SendResult:
        """Always :class:`PermanentProviderError`: the account's ``carrier.sms`` sends texts;
        reaching this is a wiring mistake."""
        raise PermanentProviderError(
            f"{self.name} sends no texts: the account's carrier.sms sends them from the "
            "business number",
            provider=self.name,
        )
