"""The carrier contract suite: what every carrier adapter must do, whoever the carrier is.

The suite is cut by capability. :class:`CarrierContract` holds what every adapter does; each
mixin below adds the checks of one capability, and a carrier's test class lists the ones that
apply, so a carrier runs only checks that mean something for it and a green run shows no skip
that stands for "does not apply"::

    from tests.contracts.carrier_contract import (
        CallSourceContract, CarrierContract, IncomingCallContract, MessagingContract,
        SignsBodyContract, SignsUrlContract,
    )

    class TestTwilioContract(CarrierContract, CallSourceContract, IncomingCallContract,
                             MessagingContract, SignsUrlContract, SignsBodyContract):
        adapter_class = TwilioCarrier
        secret_credentials = frozenset({"auth_token", "api_key_secret"})
        call_scenarios = {"voice_dial_no_answer": CallOutcome.NO_ANSWER, ...}
        ...

The class's name starts with ``Test``; the suite's classes are not collected (their names
lack the prefix).

=================================  ==========================================================
mixin                              for a carrier that ...
=================================  ==========================================================
:class:`CarrierContract`           (every carrier) verifies its webhooks, hides its secrets
:class:`CallSourceContract`        reports calls (``call_scenarios``)
:class:`IncomingCallContract`      answers a new incoming call (``incoming_call_scenario``)
:class:`InboundMessagingContract`  receives the customer's texts (``inbound_scenarios``)
:class:`DeliveryReportContract`    posts delivery reports (``status_scenarios``)
:class:`SendingContract`           sends texts (``stub_send``, ``success_send``, ``error_body``)
:class:`TransportFailureContract`  sends them over the network (timeouts, dropped connections)
:class:`MessagingContract`         all four messaging mixins at once
:class:`TimestampedSignatureContract`  signs a time (``stale_request``)
:class:`SignsBodyContract`         signs the raw body
:class:`SignsUrlContract`          signs the URL
=================================  ==========================================================

Hooks a subclass provides
=========================

Class attributes (required unless a default is shown):

``adapter_class: type[CarrierAdapter]``
    The adapter under test.
``secret_credentials: frozenset[str]``
    Credential names that are secrets. The suite checks that ``adapter_class.config_schema``
    flags exactly these with ``metadata={"secret": True}`` and that no secret value shows in
    ``repr`` of the adapter, of any event it returns, or of any error it raises.
``call_scenarios: Mapping[str, CallOutcome | None]``
    Voice webhook scenario name -> the outcome ``parse_call_event`` must report, or None for
    a call that was answered (or is not over). Must hold at least one missed and one None.
``unknown_call_scenario: str``
    A scenario in ``call_scenarios`` whose status the carrier does not define; it must parse
    to ``CallOutcome.UNKNOWN``.
``incoming_call_scenario: str`` (:class:`IncomingCallContract`)
    The scenario of a new incoming call, for carriers whose voice webhook tells us to route the
    call: ``is_incoming_call`` must be true for it and false for every other call scenario.
``inbound_scenarios: Mapping[str, Mapping[str, Any]]``
    SMS webhook scenario -> expected attribute values of the :class:`InboundMessage`
    (e.g. ``{"sender": "+12025550143", "body": "STOP", "opt_out_type": "STOP"}``).
``status_scenarios: Mapping[str, Mapping[str, Any]]``
    Status webhook scenario -> expected attribute values of the :class:`MessageStatusUpdate`
    (e.g. ``{"status": DeliveryStatus.DELIVERED, "error_code": None}``).
``unknown_status_scenario: str``
    A scenario in ``status_scenarios`` whose status the carrier does not define; it must parse
    to ``DeliveryStatus.UNKNOWN``.
``signature_headers: tuple[str, ...] = ()``
    The headers that carry the signature; the default :meth:`unsigned_request` removes them.
``fake_api_base_url: str = "https://carrier-api.test"``
    The ``api_base_url`` the adapter is built with; stub the carrier's API under it.
``send_kwargs: Mapping[str, Any]``
    Keyword arguments of the ``send_sms`` calls (defaults to 555-01xx numbers and a short body).

Methods:

``credentials(self) -> Mapping[str, Any]``
    Test credentials; the adapter is built as
    ``adapter_class(credentials(), api_base_url=fake_api_base_url)`` (fixture ``adapter``).
``signed_request(self, kind: str, scenario: str) -> WebhookRequest``
    A correctly signed webhook of ``kind`` (``voice``, ``sms``, ``status``) carrying the
    scenario's payload.
``wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest``
    The same webhook signed with another key (or otherwise carrying a wrong signature).
``unsigned_request(self, kind: str, scenario: str) -> WebhookRequest``
    Default: :meth:`signed_request` without ``signature_headers``. Override when the scheme
    needs more removed.
``stale_request(self, kind: str, scenario: str) -> WebhookRequest``
    (:class:`TimestampedSignatureContract`)
    A request correctly signed for a time outside the tolerance.
``stub_send(self, http, adapter, status, body, headers=None) -> None``
    Make the adapter's next ``send_sms`` meet the carrier answering with HTTP ``status`` and
    the provider ``body`` (a ``dict`` for JSON, ``str``/``bytes`` as is) and ``headers``; when
    ``body`` is an exception instance (``requests.exceptions.ReadTimeout()``,
    ``requests.exceptions.ConnectionError()``), the request raises it instead. ``http`` is an
    active ``responses.RequestsMock`` (the ``http`` fixture of the carrier tests' conftest);
    carriers that do not send over ``requests`` use ``adapter`` instead (and leave
    :class:`TransportFailureContract` out).
``success_send(self) -> tuple[int, Any, Mapping[str, Any]]``
    ``(status, provider body, expected attribute values of the SendResult)`` for an accepted
    send, e.g. ``(201, {...}, {"message_id": "SM...", "status": DeliveryStatus.QUEUED})``.
``error_body(self, status: int) -> Any``
    The provider's error body for a generic failure with this HTTP status (called with 400,
    401, 429, 500 and 503). Use a code the adapter does not treat specially, so that a 400
    maps to a plain :class:`PermanentProviderError`.
``http_attempts(self, http, adapter) -> int``
    Default ``len(http.calls)``. How many requests the last send made; one send is one attempt
    (the connector owns retries). Override when sends do not go over ``requests``.
``sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest``
    A request to ``url`` carrying ``body`` (any bytes: the fuzz test sends odd payloads) signed
    as the carrier would sign it. Where the credential travels in the body it is put there:
    Aircall's ``token`` goes into a JSON object (a body that is not one stays unsigned);
    Dialpad's body becomes a JWT whose claims are ``body`` (plus ``iat``/``exp`` when it is a
    JSON object). Where the signature covers a nonce, each call uses a fresh one.
``scenario_body(self, kind: str, scenario: str) -> tuple[bytes, str]``
    Default: the body and content type of :meth:`signed_request`. The payload to hand to
    :meth:`sign_body` for the scenario; override when the signed body wraps it (Dialpad's JWT).

What the suite checks: the declared attributes; a signed request is accepted; unsigned, wrongly
signed, stale (where applicable) and tampered requests raise ``WebhookVerificationError``; each
call scenario gives its outcome (None for answered) with well-formed ids, numbers and times;
unknown statuses map to ``UNKNOWN``; inbound messages and status callbacks parse; a successful
send maps to ``SendResult``; HTTP 429, 5xx, 401 and 400 map to ``RateLimitedError``,
``TransientProviderError`` (ambiguous), ``ProviderAuthError`` and ``PermanentProviderError``; a
read timeout is an ambiguous ``TransientProviderError`` and a refused connection is not; no
secret and no full phone number shows in ``repr`` of the adapter, its events or its errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import marshmallow
import pytest
import requests
import responses

from carrier_adapters.base import WEBHOOK_KINDS, CarrierAdapter, secret_fields
from connector.kernel.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    RecipientRejectedError,
    TransientProviderError,
    WebhookVerificationError,
)
from connector.kernel.events import (
    CallOutcome,
    DeliveryStatus,
    InboundMessage,
    MessageStatusUpdate,
    MissedCall,
    SendResult,
)
from connector.kernel.http import WebhookReply, WebhookRequest
from tests.transport_errors import dropped_connection, refused_connection

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_PHONE_ATTRS = ("caller", "called", "caller_raw", "sender", "recipient")


def _full_numbers(*values: str | None) -> set[str]:
    """The spellings of each phone number that must never appear whole in a repr or message."""
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        digits = re.sub(r"\D", "", value)
        if len(digits) < 7:  # "anonymous", short codes: nothing to hide
            continue
        found.update({value, digits, digits[-10:]})
    return found


def _rebuild(
    request: WebhookRequest,
    *,
    url: str | None = None,
    body: bytes | None = None,
    drop_headers: tuple[str, ...] = (),
) -> WebhookRequest:
    dropped = {h.lower() for h in drop_headers}
    headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
    return WebhookRequest.build(
        method=request.method,
        url=request.url if url is None else url,
        headers=headers,
        body=request.body if body is None else body,
    )


class ContractHooks:
    """What the carrier's test class provides (see the module docstring), the parametrisation
    and the helpers every part of the suite shares. Holds no tests."""

    """Base class of every carrier adapter's contract tests; see the module docstring."""

    adapter_class: ClassVar[type[CarrierAdapter]]
    secret_credentials: ClassVar[frozenset[str]]
    call_scenarios: ClassVar[Mapping[str, CallOutcome | None]] = {}
    unknown_call_scenario: ClassVar[str]
    inbound_scenarios: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    status_scenarios: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    unknown_status_scenario: ClassVar[str]
    signature_headers: ClassVar[tuple[str, ...]] = ()
    fake_api_base_url: ClassVar[str] = "https://carrier-api.test"
    send_kwargs: ClassVar[Mapping[str, Any]] = {
        "to": "+12025550143",
        "from_": "+14155550100",
        "body": "Sorry we missed your call! This is Acme Plumbing. How can we help?",
        "status_callback_url": "https://textback.example.com/webhooks/carrier/acme/status",
    }

    # -- hooks without a default -------------------------------------------------------------

    def credentials(self) -> Mapping[str, Any]:
        raise NotImplementedError("the carrier's test class provides credentials()")

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        raise NotImplementedError("the carrier's test class provides signed_request()")

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        raise NotImplementedError("the carrier's test class provides wrongly_signed_request()")

    def stub_send(
        self,
        http: responses.RequestsMock,
        adapter: CarrierAdapter,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        raise NotImplementedError("the carrier's test class provides stub_send()")

    def success_send(self) -> tuple[int, Any, Mapping[str, Any]]:
        raise NotImplementedError("the carrier's test class provides success_send()")

    def error_body(self, status: int) -> Any:
        raise NotImplementedError("the carrier's test class provides error_body()")

    # -- hooks with a default ----------------------------------------------------------------

    def unsigned_request(self, kind: str, scenario: str) -> WebhookRequest:
        """The signed request without the signature headers."""
        return _rebuild(self.signed_request(kind, scenario), drop_headers=self.signature_headers)

    def http_attempts(self, http: responses.RequestsMock, adapter: CarrierAdapter) -> int:
        """Requests made so far through ``http``."""
        return len(http.calls)

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        raise NotImplementedError("the carrier's test class provides sign_body()")

    def scenario_body(self, kind: str, scenario: str) -> tuple[bytes, str]:
        """The scenario's payload as :meth:`signed_request` sends it."""
        request = self.signed_request(kind, scenario)
        return request.body, request.headers.get("content-type", "")

    # -- parametrisation and fixtures --------------------------------------------------------

    def _all_scenarios(self) -> list[tuple[str, str]]:
        return (
            [("voice", s) for s in self.call_scenarios]
            + [("sms", s) for s in self.inbound_scenarios]
            + [("status", s) for s in self.status_scenarios]
        )

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrise the suite's tests with the subclass's scenario tables."""
        names = metafunc.fixturenames
        if "call_scenario" in names:
            metafunc.parametrize("call_scenario", list(self.call_scenarios))
        if "inbound_scenario" in names:
            metafunc.parametrize("inbound_scenario", list(self.inbound_scenarios))
        if "status_scenario" in names:
            metafunc.parametrize("status_scenario", list(self.status_scenarios))
        if "webhook" in names:
            pairs = self._all_scenarios()
            metafunc.parametrize("webhook", pairs, ids=[f"{k}-{s}" for k, s in pairs])

    @pytest.fixture
    def adapter(self) -> CarrierAdapter:
        """The adapter under test, pointed at the fake API base URL."""
        return self.adapter_class(self.credentials(), api_base_url=self.fake_api_base_url)

    def _secret_values(self) -> list[str]:
        creds = self.credentials()
        return [str(creds[name]) for name in self.secret_credentials if creds.get(name)]

    def _assert_hidden(self, text: str, numbers: set[str], what: str) -> None:
        for secret in self._secret_values():
            assert secret not in text, f"a credential value shows in {what}"
        for number in numbers:
            assert number not in text, f"a full phone number shows in {what}: {text}"

    def _send(self, adapter: CarrierAdapter) -> SendResult:
        return adapter.send_sms(**self.send_kwargs)

    def _send_failure(
        self,
        http: responses.RequestsMock,
        adapter: CarrierAdapter,
        status: int,
        headers: Mapping[str, str] | None = None,
    ) -> ProviderError:
        self.stub_send(http, adapter, status, self.error_body(status), headers)
        with pytest.raises(ProviderError) as info:
            self._send(adapter)
        assert self.http_attempts(http, adapter) == 1, "one send must be exactly one attempt"
        numbers = _full_numbers(self.send_kwargs["to"], self.send_kwargs["from_"])
        message = f"{info.value} {info.value!r}"
        self._assert_hidden(message, numbers, f"the HTTP {status} error")
        assert self.send_kwargs["body"] not in message, "the message body shows in an error"
        return info.value

    def _assert_event_repr(self, event: object, request: WebhookRequest) -> None:
        values = [getattr(event, attr, None) for attr in _PHONE_ATTRS]
        numbers = _full_numbers(*[v for v in values if isinstance(v, str)])
        text, what = repr(event), f"repr of {type(event).__name__}"
        self._assert_hidden(text, numbers, what)


class CarrierContract(ContractHooks):
    """What every carrier adapter does: declare itself, hide its secrets, accept what it signed
    and refuse what it did not, answer every webhook kind."""

    # -- declaration -------------------------------------------------------------------------

    def test_declares_the_adapter_attributes(self, adapter: CarrierAdapter) -> None:
        cls = self.adapter_class
        assert cls.name and cls.name == cls.name.lower() and " " not in cls.name
        assert cls.display_name
        assert cls.docs_url.startswith("https://")
        assert cls.default_api_base_url
        assert issubclass(cls.config_schema, marshmallow.Schema)
        assert all(isinstance(v, CallOutcome) for v in cls.call_outcomes.values())
        assert all(isinstance(v, DeliveryStatus) for v in cls.delivery_statuses.values())
        assert adapter.api_base_url == self.fake_api_base_url.rstrip("/")

    def test_flags_exactly_the_secret_credentials(self) -> None:
        assert secret_fields(self.adapter_class.config_schema) == self.secret_credentials

    def test_repr_hides_credentials(self, adapter: CarrierAdapter) -> None:
        assert self._secret_values(), "the test credentials must include a secret"
        self._assert_hidden(repr(adapter), set(), "repr(adapter)")
        self._assert_hidden(str(adapter), set(), "str(adapter)")

    # -- verification ------------------------------------------------------------------------

    def test_signed_request_is_accepted(
        self, adapter: CarrierAdapter, webhook: tuple[str, str]
    ) -> None:
        assert adapter.verify_request(self.signed_request(*webhook)) is None

    def test_sign_body_signs_any_url(self, adapter: CarrierAdapter, webhook: tuple[str, str]) -> None:
        kind, scenario = webhook
        body, content_type = self.scenario_body(kind, scenario)
        for url in (
            f"https://hooks.example.test/webhooks/{adapter.name}/another-account/{kind}",
            f"https://textback.example.com/webhooks/{adapter.name}/acme/{kind}",
        ):
            request = self.sign_body(url, body, content_type)
            adapter.verify_request(request)
            assert urlsplit(request.url).path == urlsplit(url).path

    def test_unsigned_request_is_rejected(
        self, adapter: CarrierAdapter, webhook: tuple[str, str]
    ) -> None:
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(self.unsigned_request(*webhook))

    def test_wrongly_signed_request_is_rejected(
        self, adapter: CarrierAdapter, webhook: tuple[str, str]
    ) -> None:
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(self.wrongly_signed_request(*webhook))

    # -- replies -----------------------------------------------------------------------------

    def test_every_webhook_kind_gets_a_reply(self, adapter: CarrierAdapter) -> None:
        for kind in WEBHOOK_KINDS:
            reply = adapter.reply(kind)
            assert isinstance(reply, WebhookReply)
            assert 200 <= reply.status < 300, kind


class CallSourceContract(ContractHooks):
    """Reports calls: every call scenario gives its outcome, an unknown status ``UNKNOWN``."""

    def test_call_scenarios_cover_the_contract(self) -> None:
        outcomes = list(self.call_scenarios.values())
        assert None in outcomes, "call_scenarios needs an answered call (None)"
        assert any(o not in (None, CallOutcome.UNKNOWN) for o in outcomes), "and a missed one"
        assert self.call_scenarios[self.unknown_call_scenario] is CallOutcome.UNKNOWN

    def test_call_scenario_maps_to_its_outcome(
        self, adapter: CarrierAdapter, call_scenario: str
    ) -> None:
        request = self.signed_request("voice", call_scenario)
        adapter.verify_request(request)
        event = adapter.parse_call_event(request)
        expected = self.call_scenarios[call_scenario]
        if expected is None:
            assert event is None, f"{call_scenario}: an answered call must give None"
            return
        assert isinstance(event, MissedCall)
        assert event.outcome is expected
        assert event.carrier == adapter.name
        assert isinstance(event.event_id, str) and event.event_id
        assert event.occurred_at.utcoffset() == timedelta(0)
        for number in (event.caller, event.called):
            assert number is None or _E164.match(number), f"not E.164: {number!r}"
        self._assert_event_repr(event, request)

    def test_unknown_call_status_maps_to_unknown(self, adapter: CarrierAdapter) -> None:
        request = self.signed_request("voice", self.unknown_call_scenario)
        event = adapter.parse_call_event(request)
        assert isinstance(event, MissedCall)
        assert event.outcome is CallOutcome.UNKNOWN


class IncomingCallContract(ContractHooks):
    """Answers a new incoming call (TwiML ``<Dial>``, an NCCO, BXML ``<Transfer>``): only that
    request is routed."""

    incoming_call_scenario: ClassVar[str]

    def test_only_the_incoming_call_is_routed(
        self, adapter: CarrierAdapter, call_scenario: str
    ) -> None:
        request = self.signed_request("voice", call_scenario)
        expected = call_scenario == self.incoming_call_scenario
        assert adapter.is_incoming_call(request) is expected


class InboundMessagingContract(ContractHooks):
    """Receives the customer's texts."""

    def test_inbound_scenarios_cover_the_contract(self) -> None:
        assert self.inbound_scenarios, "inbound_scenarios needs at least one scenario"

    def test_inbound_message_is_parsed(
        self, adapter: CarrierAdapter, inbound_scenario: str
    ) -> None:
        request = self.signed_request("sms", inbound_scenario)
        adapter.verify_request(request)
        message = adapter.parse_inbound_message(request)
        assert isinstance(message, InboundMessage)
        assert message.carrier == adapter.name
        assert isinstance(message.event_id, str) and message.event_id
        assert message.received_at.utcoffset() == timedelta(0)
        for attr, value in self.inbound_scenarios[inbound_scenario].items():
            assert getattr(message, attr) == value, f"{inbound_scenario}: {attr}"
        self._assert_event_repr(message, request)
        if len(message.body) >= 8:  # short bodies ("STOP") may equal other fields
            assert message.body not in repr(message), "the message body shows in repr"


class DeliveryReportContract(ContractHooks):
    """Posts delivery reports about the texts we send."""

    def test_status_scenarios_cover_the_contract(self) -> None:
        unknown_status = self.status_scenarios[self.unknown_status_scenario]
        assert unknown_status["status"] is DeliveryStatus.UNKNOWN

    def test_status_callback_is_parsed(
        self, adapter: CarrierAdapter, status_scenario: str
    ) -> None:
        request = self.signed_request("status", status_scenario)
        adapter.verify_request(request)
        update = adapter.parse_status(request)
        assert isinstance(update, MessageStatusUpdate)
        assert update.carrier == adapter.name
        assert update.event_id and update.message_id
        assert update.occurred_at.utcoffset() == timedelta(0)
        for attr, value in self.status_scenarios[status_scenario].items():
            assert getattr(update, attr) == value, f"{status_scenario}: {attr}"
        self._assert_event_repr(update, request)

    def test_unknown_delivery_status_maps_to_unknown(self, adapter: CarrierAdapter) -> None:
        request = self.signed_request("status", self.unknown_status_scenario)
        assert adapter.parse_status(request).status is DeliveryStatus.UNKNOWN


class SendingContract(ContractHooks):
    """Sends texts: one attempt, each HTTP failure classified."""

    # -- sending -----------------------------------------------------------------------------

    def test_successful_send_maps_to_send_result(
        self, adapter: CarrierAdapter, http: responses.RequestsMock
    ) -> None:
        status, body, expected = self.success_send()
        self.stub_send(http, adapter, status, body)
        result = self._send(adapter)
        assert isinstance(result, SendResult)
        assert isinstance(result.message_id, str) and result.message_id
        assert isinstance(result.status, DeliveryStatus)
        for attr, value in expected.items():
            assert getattr(result, attr) == value, attr
        assert self.http_attempts(http, adapter) == 1
        numbers = _full_numbers(self.send_kwargs["to"], self.send_kwargs["from_"])
        self._assert_hidden(repr(result), numbers, "repr(SendResult)")
        assert self.send_kwargs["body"] not in repr(result)

    def test_http_429_is_rate_limited(
        self, adapter: CarrierAdapter, http: responses.RequestsMock
    ) -> None:
        error = self._send_failure(http, adapter, 429)
        assert isinstance(error, RateLimitedError)
        assert error.retry_after > 0

    @pytest.mark.parametrize("status", [500, 503])
    def test_http_5xx_is_transient_and_ambiguous(
        self, adapter: CarrierAdapter, http: responses.RequestsMock, status: int
    ) -> None:
        error = self._send_failure(http, adapter, status)
        assert isinstance(error, TransientProviderError)
        assert not isinstance(error, RateLimitedError)
        assert error.ambiguous is True

    def test_http_401_is_an_auth_error(
        self, adapter: CarrierAdapter, http: responses.RequestsMock
    ) -> None:
        error = self._send_failure(http, adapter, 401)
        assert isinstance(error, ProviderAuthError)

    def test_http_400_is_permanent(
        self, adapter: CarrierAdapter, http: responses.RequestsMock
    ) -> None:
        error = self._send_failure(http, adapter, 400)
        assert isinstance(error, PermanentProviderError)
        assert not isinstance(error, RecipientRejectedError)
        assert error.status == 400


class TransportFailureContract(ContractHooks):
    """Sends over the network: a timeout or a dropped connection is ambiguous, a refused one
    is not."""

    def test_read_timeout_is_ambiguous(
        self, adapter: CarrierAdapter, http: responses.RequestsMock
    ) -> None:
        self.stub_send(http, adapter, 0, requests.exceptions.ReadTimeout())
        with pytest.raises(TransientProviderError) as info:
            self._send(adapter)
        assert info.value.ambiguous is True
        assert not isinstance(info.value, RateLimitedError)

    def test_refused_connection_is_transient_not_ambiguous(
        self, adapter: CarrierAdapter, http: responses.RequestsMock
    ) -> None:
        self.stub_send(http, adapter, 0, refused_connection())
        with pytest.raises(TransientProviderError) as info:
            self._send(adapter)
        assert info.value.ambiguous is False

    def test_dropped_connection_after_sending_is_ambiguous(
        self, adapter: CarrierAdapter, http: responses.RequestsMock
    ) -> None:
        self.stub_send(http, adapter, 0, dropped_connection())
        with pytest.raises(TransientProviderError) as info:
            self._send(adapter)
        assert info.value.ambiguous is True


class MessagingContract(
    InboundMessagingContract, DeliveryReportContract, SendingContract, TransportFailureContract
):
    """Texts in both directions over the network: inbound texts, delivery reports, sending."""


class TimestampedSignatureContract(ContractHooks):
    """The signature carries a time: a request signed outside the tolerance is refused."""

    def stale_request(self, kind: str, scenario: str) -> WebhookRequest:
        """A request correctly signed for a time outside the tolerance."""
        raise NotImplementedError("the carrier's test class provides stale_request()")

    def test_stale_request_is_rejected(
        self, adapter: CarrierAdapter, webhook: tuple[str, str]
    ) -> None:
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(self.stale_request(*webhook))


class SignsBodyContract(ContractHooks):
    """The signature covers the raw body: a body altered after signing is refused."""

    def test_request_with_altered_body_is_rejected(
        self, adapter: CarrierAdapter, webhook: tuple[str, str]
    ) -> None:
        signed = self.signed_request(*webhook)
        last = signed.body[-1:]
        altered = signed.body[:-1] + (b"1" if last != b"1" else b"2")
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(_rebuild(signed, body=altered))


class SignsUrlContract(ContractHooks):
    """The signature covers the URL: a request to another path is refused."""

    def test_request_to_another_url_is_rejected(
        self, adapter: CarrierAdapter, webhook: tuple[str, str]
    ) -> None:
        signed = self.signed_request(*webhook)
        parts = urlsplit(signed.url)
        other = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "-other"))
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(_rebuild(signed, url=other))
