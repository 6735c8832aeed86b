"""The CRM contract suite: what every CRM adapter must do, whichever CRM it talks to.

A CRM's test module subclasses :class:`CrmContract` in a class whose name starts with ``Test``
and fills in the hooks below; pytest then runs every ``test_*`` method of the suite against that
adapter (the suite class itself is not collected: its name lacks the prefix)::

    from tests.contracts.crm_contract import CrmContract

    class TestHubSpotContract(CrmContract):
        adapter_class = HubSpotCrm
        secret_credentials = frozenset({"access_token", "client_secret"})

        @pytest.fixture
        def backend(self) -> Iterator[HubSpotStub]:
            with HubSpotStub(access_token=TOKEN) as stub:
                yield stub
        ...

"Backend" is whatever fake the adapter talks to in tests: a local HTTP stub (HubSpot), a
``responses`` mock, an in-memory store (the built-in sandbox). The suite never looks inside it;
it only hands it back to the hook methods.

Hooks a subclass provides
=========================

Class attributes (required unless a default is shown):

``adapter_class: type[CrmAdapter]``
    The adapter under test.
``secret_credentials: frozenset[str]``
    Credential names that are secrets. The suite checks that ``adapter_class.config_schema``
    flags exactly these with ``metadata={"secret": True}`` and that no secret value shows in
    ``repr`` of the adapter or of a contact, or in the message of any error the adapter raised.
``lead_pipeline: str = "default"`` / ``lead_stage: str = "appointmentscheduled"``
    The pipeline and stage ids put in every :class:`LeadSpec`; ids the backend accepts.
``webhook_url: str = "https://textback.example.com/webhooks/crm/test"``
    The public URL the signed webhooks are addressed to.

Fixture (required):

``backend(self) -> Any``
    A fresh, empty fake for each test (yield it from a context manager when it must be stopped).

Methods; ``backend`` is the fixture's value:

``credentials(self) -> Mapping[str, Any]``
    Test credentials with every secret field filled in (values of 8 or more characters).
``make_adapter(self, backend: Any) -> CrmAdapter``
    The adapter under test pointed at ``backend``, e.g.
    ``HubSpotCrm(self.credentials(), api_base_url=backend.url)`` (fixture ``adapter``).
``fail_next(self, backend, status: int, *, message: str | None = None,
retry_after: str | None = None) -> None``
    Make the backend answer the adapter's next request, whatever it is, with HTTP ``status``
    in the provider's usual error shape for that status. ``message`` is the human-readable text
    the provider's error should carry (the suite puts a phone number and a secret in it to check
    the adapter redacts them); ``retry_after`` is a ``Retry-After`` header value. A backend
    that cannot carry one of them raises ``NotImplementedError``; the checks needing it skip.
``contacts_with_phone(self, backend, e164: str) -> Sequence[str]``
    Ids of the contacts the backend holds whose phone normalises to ``e164``.
``add_contact(self, backend, phone: str, first_name: str | None = None,
last_name: str | None = None) -> str``
    Put a contact in the backend as a user would have typed it (``phone`` in any format) and
    return its id. It must be findable at once.
``task_text(self, backend, task_id: str) -> str``
    The body (notes) of a task the adapter created.
``close_lead(self, backend, lead_id: str) -> None``
    Close a lead (deal) the adapter created, as a rep would.
``signed_webhook(self, body: bytes, *, url: str, age_seconds: float = 0.0,
wrong_secret: bool = False) -> WebhookRequest | None``
    Only called when the adapter declares the ``webhooks`` capability. A ``POST`` to ``url``
    carrying ``body``, signed as the CRM signs its webhooks with :meth:`credentials` (with
    another secret when ``wrong_secret``), stamped ``age_seconds`` ago. Return None for
    ``age_seconds > 0`` when the CRM's scheme carries no timestamp (the check then skips).
``signature_headers(self) -> tuple[str, ...]``
    Default ``()``: the headers holding the signature; the suite strips them to build an
    unsigned request (with ``()`` it strips every header).
``requests_made(self, backend) -> int | None``
    Default None (skip). How many API requests the backend has received so far; the suite
    checks that an operation failing on its first request made exactly one (no hidden retries).
``webhook_samples(self) -> Sequence[tuple[bytes, Sequence[CrmEvent]]]``
    Default ``()`` (skip). Webhook bodies as the CRM sends them, each with the normalised events
    :meth:`CrmAdapter.parse_webhook` must return for it once signed (``[]`` for a delivery that
    is only acknowledged). Give one sample for every event type the adapter produces.

What the suite checks: the declared attributes and secret flags; a new number creates a contact,
the same number in another format (national, punctuated) finds the same one, a contact typed in
by hand is found and a different number with the same subscriber digits is not; ``log_call``,
``log_message`` (both directions), ``create_task`` return ids; ``append_to_task`` adds the line;
``set_pipeline_stage`` returns a new id, the same id for an open lead and a new one for a closed
lead; HTTP 429 is a ``RateLimitedError`` with ``retry_after > 0`` (the ``Retry-After`` value when
sent), 401 a ``ProviderAuthError``, 5xx a ``TransientProviderError`` (ambiguous on a create),
400 a ``PermanentProviderError``; webhook signatures are accepted and rejected (unsigned, wrong
secret, altered body, stale) where ``webhooks`` is declared, and always rejected otherwise; no
secret and no full phone number shows in ``repr`` of the adapter or a contact, or in any error;
the ``webhook`` declaration matches the capability, names a secret credential and says how the
URL names the account; signed samples parse to their events, the same event ids every time, and
a signed body of any other shape is a ``MalformedWebhookError`` or no events, never another
error; an ``oauth`` declaration has the client credentials to run it with and follows an
account's ``api_base_url``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import marshmallow
import pytest

from connector.kernel.errors import (
    MalformedWebhookError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.events import CallOutcome
from connector.kernel.http import WebhookRequest
from crm_adapters import oauth_flow
from crm_adapters.base import (
    APP_WIDE,
    CAPABILITIES,
    PER_ACCOUNT,
    CallLog,
    CrmAdapter,
    CrmContact,
    CrmEvent,
    LeadSpec,
    MessageLog,
    TaskSpec,
)
from tests.capabilities import applies

#: Fictional 555-01xx numbers; the business line and the callers.
BUSINESS = "+14155550100"
CALLER = "+14155550134"
CALLER_NATIONAL = "(415) 555-0134"
OTHER_CALLER = "+14155550177"
HAND_TYPED = "+14155550188"
SAME_DIGITS_OTHER_AREA = "+12125550134"
NEVER_SEEN = "+14155550199"
ALL_NUMBERS = (BUSINESS, CALLER, OTHER_CALLER, HAND_TYPED, SAME_DIGITS_OTHER_AREA, NEVER_SEEN)
WEBHOOK_BODY = b'[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]'


def _secret_fields(schema: type[marshmallow.Schema]) -> frozenset[str]:
    return frozenset(n for n, f in schema().fields.items() if f.metadata.get("secret", False))


def _spellings(number: str) -> set[str]:
    """Ways a full number may be written: E.164, bare digits, national digits and punctuated."""
    digits = re.sub(r"\D", "", number)
    national = digits[-10:]
    return {
        number,
        digits,
        national,
        f"({national[:3]}) {national[3:6]}-{national[6:]}",
        f"{national[:3]}-{national[3:6]}-{national[6:]}",
    }


def _strip(request: WebhookRequest, headers: tuple[str, ...]) -> WebhookRequest:
    drop = {h.lower() for h in headers}
    kept = {k: v for k, v in request.headers.items() if drop and k.lower() not in drop}
    return WebhookRequest.build(
        method=request.method, url=request.url, headers=kept, body=request.body
    )


def _takes_webhooks(cls: type[CrmContract]) -> bool:
    return "webhooks" in cls.adapter_class.capabilities


def _signs_a_time(cls: type[CrmContract]) -> bool:
    """Whether the CRM's webhook signature covers a time (so a stale one can be refused)."""
    if not _takes_webhooks(cls):
        return False
    return cls().signed_webhook(WEBHOOK_BODY, url=cls.webhook_url, age_seconds=3600.0) is not None


class CrmContract:
    """Base class of every CRM adapter's contract tests; see the module docstring."""

    adapter_class: ClassVar[type[CrmAdapter]]
    secret_credentials: ClassVar[frozenset[str]]
    lead_pipeline: ClassVar[str] = "default"
    lead_stage: ClassVar[str] = "appointmentscheduled"
    webhook_url: ClassVar[str] = "https://textback.example.com/webhooks/crm/test"
    #: Whether the test backend can answer with a message and a Retry-After, not only a status.
    backend_speaks: ClassVar[bool] = True
    #: Whether the CRM can find a task an earlier attempt made (``find_task``); one that cannot
    #: must say so with ``NotImplementedError``.
    finds_tasks: ClassVar[bool] = True

    # -- hooks without a default -------------------------------------------------------------

    @pytest.fixture
    def backend(self) -> Any:
        raise NotImplementedError("the CRM's test class provides the backend fixture")

    def credentials(self) -> Mapping[str, Any]:
        raise NotImplementedError("the CRM's test class provides credentials()")

    def make_adapter(self, backend: Any) -> CrmAdapter:
        raise NotImplementedError("the CRM's test class provides make_adapter()")

    def fail_next(
        self,
        backend: Any,
        status: int,
        *,
        message: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        raise NotImplementedError("the CRM's test class provides fail_next()")

    def contacts_with_phone(self, backend: Any, e164: str) -> Sequence[str]:
        raise NotImplementedError("the CRM's test class provides contacts_with_phone()")

    def add_contact(
        self, backend: Any, phone: str, first_name: str | None = None, last_name: str | None = None
    ) -> str:
        raise NotImplementedError("the CRM's test class provides add_contact()")

    def task_text(self, backend: Any, task_id: str) -> str:
        raise NotImplementedError("the CRM's test class provides task_text()")

    def close_lead(self, backend: Any, lead_id: str) -> None:
        raise NotImplementedError("the CRM's test class provides close_lead()")

    def signed_webhook(
        self, body: bytes, *, url: str, age_seconds: float = 0.0, wrong_secret: bool = False
    ) -> WebhookRequest | None:
        raise NotImplementedError("a CRM declaring 'webhooks' provides signed_webhook()")

    # -- hooks with a default ----------------------------------------------------------------

    def signature_headers(self) -> tuple[str, ...]:
        """Unknown: strip every header to make an unsigned request."""
        return ()

    def requests_made(self, backend: Any) -> int | None:
        """Unknown: skip the one-attempt checks."""
        return None

    def webhook_samples(self) -> Sequence[tuple[bytes, Sequence[CrmEvent]]]:
        """None: skip the checks of what webhooks parse to."""
        return ()

    # -- fixtures and helpers ----------------------------------------------------------------

    @pytest.fixture
    def adapter(self, backend: Any) -> CrmAdapter:
        """The adapter under test, pointed at this test's backend."""
        return self.make_adapter(backend)

    def _secret_values(self) -> list[str]:
        creds = self.credentials()
        return [str(creds[n]) for n in self.secret_credentials if creds.get(n)]

    def assert_leaks_nothing(self, text: str, what: str) -> None:
        """Fail when ``text`` holds a secret credential or a full phone number."""
        for secret in self._secret_values():
            assert secret not in text, f"{what} shows a secret credential: {text!r}"
        for number in ALL_NUMBERS:
            for spelling in _spellings(number):
                assert spelling not in text, f"{what} shows a full phone number: {text!r}"

    def raised(self, kind: type[ProviderError], action: Any) -> Any:
        """Run ``action``; it must raise ``kind``, whose message and repr leak nothing."""
        with pytest.raises(kind) as info:
            action()
        self.assert_leaks_nothing(str(info.value), "the error message")
        self.assert_leaks_nothing(repr(info.value), "the error repr")
        return info.value

    def _now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    def _call(self, contact_id: str, deal_id: str | None = None) -> CallLog:
        return CallLog(
            contact_id=contact_id,
            caller=CALLER,
            called=BUSINESS,
            outcome=CallOutcome.NO_ANSWER,
            occurred_at=self._now(),
            title="Missed call (no answer)",
            body="Texted back at once.",
            deal_id=deal_id,
        )

    def _lead(self, contact_id: str) -> LeadSpec:
        return LeadSpec(
            contact_id=contact_id,
            name="Missed call lead",
            pipeline=self.lead_pipeline,
            stage=self.lead_stage,
        )

    # -- declared attributes -------------------------------------------------------------------

    def test_declares_the_adapter_attributes(self, adapter: CrmAdapter) -> None:
        cls = self.adapter_class
        assert cls.name and cls.name == cls.name.lower() and " " not in cls.name
        assert cls.display_name
        assert cls.docs_url.startswith("https://")
        assert "contacts" in cls.capabilities
        assert cls.capabilities <= CAPABILITIES, cls.capabilities - CAPABILITIES
        assert isinstance(adapter, cls)

    def test_flags_exactly_the_secret_credentials(self) -> None:
        assert _secret_fields(self.adapter_class.config_schema) == self.secret_credentials
        assert all(len(v) >= 8 for v in self._secret_values()), "use realistic test secrets"

    def test_repr_of_adapter_and_contact_leaks_nothing(self, adapter: CrmAdapter) -> None:
        self.assert_leaks_nothing(repr(adapter), "repr(adapter)")
        contact = adapter.find_or_create_contact(CALLER, name="Jane Doe")
        self.assert_leaks_nothing(repr(contact), "repr(contact)")
        self.assert_leaks_nothing(str(contact), "str(contact)")

    # -- contacts ------------------------------------------------------------------------------

    def test_new_number_creates_a_contact(self, adapter: CrmAdapter, backend: Any) -> None:
        assert list(self.contacts_with_phone(backend, CALLER)) == []
        contact = adapter.find_or_create_contact(CALLER, name="Jane Doe")
        assert isinstance(contact, CrmContact)
        assert contact.id and contact.created is True
        assert contact.phone == CALLER
        assert list(self.contacts_with_phone(backend, CALLER)) == [contact.id]

    def test_same_number_in_another_format_finds_the_same_contact(
        self, adapter: CrmAdapter, backend: Any
    ) -> None:
        first = adapter.find_or_create_contact(CALLER)
        again = adapter.find_or_create_contact(CALLER_NATIONAL)
        assert again.id == first.id
        assert again.created is False
        assert again.phone == CALLER
        assert list(self.contacts_with_phone(backend, CALLER)) == [first.id]

    def test_contact_typed_in_by_hand_is_found(self, adapter: CrmAdapter, backend: Any) -> None:
        typed = self.add_contact(backend, "(415) 555-0188", first_name="Ann", last_name="Lee")
        found = adapter.find_or_create_contact(HAND_TYPED)
        assert found.id == typed
        assert found.created is False
        assert list(self.contacts_with_phone(backend, HAND_TYPED)) == [typed]

    def test_same_subscriber_digits_in_another_area_is_another_contact(
        self, adapter: CrmAdapter, backend: Any
    ) -> None:
        other = self.add_contact(backend, "+1 212-555-0134")
        mine = adapter.find_or_create_contact(CALLER)
        assert mine.id != other and mine.created is True
        assert list(self.contacts_with_phone(backend, SAME_DIGITS_OTHER_AREA)) == [other]

    def test_different_callers_get_different_contacts(self, adapter: CrmAdapter) -> None:
        one = adapter.find_or_create_contact(CALLER)
        two = adapter.find_or_create_contact(OTHER_CALLER)
        assert one.id != two.id

    # -- activities ----------------------------------------------------------------------------

    def test_log_call_returns_an_id(self, adapter: CrmAdapter) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        lead = adapter.set_pipeline_stage(self._lead(contact.id))
        plain = adapter.log_call(self._call(contact.id))
        on_lead = adapter.log_call(self._call(contact.id, deal_id=lead))
        assert isinstance(plain, str) and plain
        assert isinstance(on_lead, str) and on_lead and on_lead != plain

    def test_log_message_in_both_directions_returns_ids(self, adapter: CrmAdapter) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        ids = []
        for direction, sender, recipient in (
            ("outbound", BUSINESS, CALLER),
            ("inbound", CALLER, BUSINESS),
        ):
            ids.append(
                adapter.log_message(
                    MessageLog(
                        contact_id=contact.id,
                        direction=direction,
                        body="Sorry we missed your call!",
                        occurred_at=self._now(),
                        sender=sender,
                        recipient=recipient,
                    )
                )
            )
        assert all(isinstance(i, str) and i for i in ids)
        assert ids[0] != ids[1]

    def test_create_task_and_append_to_it(self, adapter: CrmAdapter, backend: Any) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        task_id = adapter.create_task(
            TaskSpec(
                contact_id=contact.id,
                subject="Call back the missed caller",
                body="Missed call at 9:02.",
                due_at=self._now() + timedelta(minutes=15),
            )
        )
        assert isinstance(task_id, str) and task_id
        assert adapter.append_to_task(task_id, "Customer replied: need a plumber today") is None
        text = self.task_text(backend, task_id)
        assert "Missed call at 9:02." in text
        assert "Customer replied: need a plumber today" in text
        assert text.index("Missed call at 9:02.") < text.index("Customer replied")

    # -- pipeline ------------------------------------------------------------------------------

    def test_set_pipeline_stage_creates_then_reuses_an_open_lead(self, adapter: CrmAdapter) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        lead = adapter.set_pipeline_stage(self._lead(contact.id))
        assert isinstance(lead, str) and lead
        assert adapter.set_pipeline_stage(self._lead(contact.id), existing_id=lead) == lead

    def test_set_pipeline_stage_replaces_a_closed_lead(
        self, adapter: CrmAdapter, backend: Any
    ) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        lead = adapter.set_pipeline_stage(self._lead(contact.id))
        self.close_lead(backend, lead)
        fresh = adapter.set_pipeline_stage(self._lead(contact.id), existing_id=lead)
        assert isinstance(fresh, str) and fresh and fresh != lead

    # -- finding what an earlier attempt made ---------------------------------------------------

    def test_find_call_log_finds_the_logged_call_and_nothing_else(
        self, adapter: CrmAdapter
    ) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        other = adapter.find_or_create_contact(OTHER_CALLER)
        call = self._call(contact.id)
        logged = adapter.log_call(call)
        assert adapter.find_call_log(call) == logged
        later = replace(call, occurred_at=call.occurred_at + timedelta(seconds=5))
        assert adapter.find_call_log(later) is None
        assert adapter.find_call_log(replace(call, contact_id=other.id)) is None

    def test_find_message_log_finds_the_logged_text_and_nothing_else(
        self, adapter: CrmAdapter
    ) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        other = adapter.find_or_create_contact(OTHER_CALLER)
        text = MessageLog(contact_id=contact.id, direction="outbound",
                          body="Sorry we missed your call!", occurred_at=self._now(),
                          sender=BUSINESS, recipient=CALLER)
        logged = adapter.log_message(text)
        assert adapter.find_message_log(text) == logged
        reply = replace(text, direction="inbound", sender=CALLER, recipient=BUSINESS)
        assert adapter.find_message_log(reply) is None
        assert adapter.find_message_log(replace(text, body="Another text")) is None
        assert adapter.find_message_log(replace(text, contact_id=other.id)) is None

    def test_find_lead_finds_the_open_lead_and_not_a_closed_one(
        self, adapter: CrmAdapter, backend: Any
    ) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        other = adapter.find_or_create_contact(OTHER_CALLER)
        assert adapter.find_lead(self._lead(contact.id)) is None
        lead = adapter.set_pipeline_stage(self._lead(contact.id))
        assert adapter.find_lead(self._lead(contact.id)) == lead
        assert adapter.find_lead(self._lead(other.id)) is None
        self.close_lead(backend, lead)
        assert adapter.find_lead(self._lead(contact.id)) is None

    def test_find_task_finds_the_task_with_the_marker_and_nothing_else(
        self, adapter: CrmAdapter
    ) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        task = TaskSpec(contact_id=contact.id, subject="Call back the missed caller",
                        body="Missed call at 9:02.\ntextback call 0c0ffee17",
                        due_at=self._now() + timedelta(minutes=15))
        if not self.finds_tasks:
            with pytest.raises(NotImplementedError):
                adapter.find_task(task, "0c0ffee17")
            return
        assert adapter.find_task(task, "0c0ffee17") is None
        made = adapter.create_task(task)
        adapter.append_to_task(made, "Customer replied: need a plumber today")
        assert adapter.find_task(task, "0c0ffee17") == made
        assert adapter.find_task(task, "0c0ffee1") is None  # a part of the marker is not it
        another = replace(task, body="Missed call at 9:05.\ntextback call 0c0ffee18")
        assert adapter.find_task(another, "0c0ffee18") is None

    # -- error classification ------------------------------------------------------------------

    def _one_attempt(self, backend: Any, before: int | None) -> None:
        after = self.requests_made(backend)
        if before is not None and after is not None:
            assert after - before == 1, "the adapter retried on its own (one retry layer only)"

    def test_http_429_is_rate_limited(self, adapter: CrmAdapter, backend: Any) -> None:
        self.fail_next(backend, 429)
        before = self.requests_made(backend)
        error = self.raised(RateLimitedError, lambda: adapter.find_or_create_contact(NEVER_SEEN))
        assert error.retry_after > 0
        self._one_attempt(backend, before)

    @applies(lambda cls: cls.backend_speaks, "the backend fails with a status only")
    def test_http_429_honours_retry_after(self, adapter: CrmAdapter, backend: Any) -> None:
        self.fail_next(backend, 429, retry_after="7")
        error = self.raised(RateLimitedError, lambda: adapter.find_or_create_contact(NEVER_SEEN))
        assert error.retry_after == pytest.approx(7.0)

    def test_http_401_is_an_auth_error(self, adapter: CrmAdapter, backend: Any) -> None:
        self.fail_next(backend, 401)
        self.raised(ProviderAuthError, lambda: adapter.find_or_create_contact(NEVER_SEEN))

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_http_5xx_is_transient(self, adapter: CrmAdapter, backend: Any, status: int) -> None:
        self.fail_next(backend, status)
        before = self.requests_made(backend)
        error = self.raised(
            TransientProviderError, lambda: adapter.find_or_create_contact(NEVER_SEEN)
        )
        assert not isinstance(error, RateLimitedError)
        self._one_attempt(backend, before)

    def test_http_5xx_on_a_create_is_ambiguous(self, adapter: CrmAdapter, backend: Any) -> None:
        contact = adapter.find_or_create_contact(CALLER)
        self.fail_next(backend, 500)
        error = self.raised(
            TransientProviderError, lambda: adapter.log_call(self._call(contact.id))
        )
        assert error.ambiguous is True

    def test_http_400_is_permanent(self, adapter: CrmAdapter, backend: Any) -> None:
        self.fail_next(backend, 400)
        error = self.raised(
            PermanentProviderError, lambda: adapter.find_or_create_contact(NEVER_SEEN)
        )
        assert error.provider == self.adapter_class.name

    @applies(lambda cls: cls.backend_speaks, "the backend fails with a status only")
    def test_error_messages_redact_numbers_and_secrets(
        self, adapter: CrmAdapter, backend: Any
    ) -> None:
        secrets = " ".join(self._secret_values())
        self.fail_next(
            backend,
            400,
            message=f"Invalid phone {CALLER} ({CALLER_NATIONAL}) for credentials {secrets}",
        )
        self.raised(PermanentProviderError, lambda: adapter.find_or_create_contact(NEVER_SEEN))

    # -- webhooks ------------------------------------------------------------------------------

    def _signed(self, **kwargs: Any) -> WebhookRequest | None:
        return self.signed_webhook(WEBHOOK_BODY, url=self.webhook_url, **kwargs)

    @applies(_takes_webhooks, "the adapter declares no webhooks")
    def test_signed_webhook_is_accepted(self, adapter: CrmAdapter) -> None:
        request = self._signed()
        assert request is not None
        assert adapter.verify_request(request) is None

    @applies(_takes_webhooks, "the adapter declares no webhooks")
    def test_unsigned_webhook_is_rejected(self, adapter: CrmAdapter) -> None:
        request = self._signed()
        assert request is not None
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(_strip(request, self.signature_headers()))

    @applies(_takes_webhooks, "the adapter declares no webhooks")
    def test_webhook_signed_with_another_secret_is_rejected(self, adapter: CrmAdapter) -> None:
        request = self._signed(wrong_secret=True)
        assert request is not None
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(request)

    @applies(_takes_webhooks, "the adapter declares no webhooks")
    def test_webhook_with_altered_body_is_rejected(self, adapter: CrmAdapter) -> None:
        request = self._signed()
        assert request is not None
        altered = WebhookRequest.build(
            method=request.method,
            url=request.url,
            headers=dict(request.headers.items()),
            body=request.body.replace(b"123", b"124"),
        )
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(altered)

    @applies(_signs_a_time, "the CRM's signature carries no timestamp")
    def test_stale_webhook_is_rejected(self, adapter: CrmAdapter) -> None:
        request = self._signed(age_seconds=3600.0)
        assert request is not None
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(request)

    @applies(lambda cls: not _takes_webhooks(cls), "the adapter declares webhooks")
    def test_without_webhooks_every_request_is_rejected(self, adapter: CrmAdapter) -> None:
        request = WebhookRequest.build(url=self.webhook_url, body=WEBHOOK_BODY)
        with pytest.raises(WebhookVerificationError):
            adapter.verify_request(request)

    # -- what webhooks say -----------------------------------------------------------------------

    def test_the_webhook_declaration_matches_the_capability(self) -> None:
        cls = self.adapter_class
        spec = cls.webhook
        assert ("webhooks" in cls.capabilities) == (spec is not None)
        if spec is None:
            return
        assert spec.url in (PER_ACCOUNT, APP_WIDE)
        if spec.url == APP_WIDE:  # a per-account spec may take the app-wide URL too
            assert spec.account_of is not None
        field = cls.config_schema().fields.get(spec.credential)
        assert field is not None and field.metadata.get("secret"), (
            f"{spec.credential} must be a secret credential of {cls.__name__}")

    @applies(lambda cls: bool(cls().webhook_samples()), "the CRM's test class gives no samples")
    def test_signed_samples_parse_to_their_events(self, adapter: CrmAdapter) -> None:
        samples = self.webhook_samples()
        for body, expected in samples:
            request = self.signed_webhook(body, url=self.webhook_url)
            assert request is not None
            adapter.verify_request(request)
            events = adapter.parse_webhook(request)
            assert events == list(expected), body[:80]
            assert all(isinstance(e, CrmEvent) and e.event_id for e in events)
            again = self.signed_webhook(body, url=self.webhook_url, age_seconds=1.0) or request
            assert [e.event_id for e in adapter.parse_webhook(again)] == [
                e.event_id for e in events], "a redelivery must keep its event ids"
            if self.adapter_class.webhook is not None and self.adapter_class.webhook.account_of:
                assert self.adapter_class.webhook.account_of(request)

    @pytest.mark.parametrize("body", [WEBHOOK_BODY, b"{}", b"[]", b"[1, null]", b"null",
                                      b'{"data": [1]}', b"not json", b""])
    @applies(_takes_webhooks, "the adapter declares no webhooks")
    def test_a_signed_body_of_another_shape_is_refused_or_ignored(
        self, adapter: CrmAdapter, body: bytes
    ) -> None:
        request = self.signed_webhook(body, url=self.webhook_url)
        assert request is not None
        try:
            events = adapter.parse_webhook(request)
        except (MalformedWebhookError, UnsupportedEventError):
            return
        assert isinstance(events, list) and all(isinstance(e, CrmEvent) for e in events)

    # -- OAuth install ---------------------------------------------------------------------------

    @applies(lambda cls: cls.adapter_class.oauth is not None, "the adapter installs without OAuth")
    def test_the_oauth_declaration_follows_the_api_base_url(self) -> None:
        cls = self.adapter_class
        assert cls.oauth is not None
        fields = cls.config_schema().fields
        assert "client_id" in fields and fields["client_secret"].metadata.get("secret")
        assert cls.oauth.authorize_url.startswith("https://")
        assert cls.oauth.token_url.startswith("https://")
        base = "http://127.0.0.1:8123/prefix"
        url = oauth_flow.authorize_url(cls, "client-1", "https://tb.example/cb", "st8",
                                       api_base_url=base)
        assert url.startswith(f"{base}/") and "state=st8" in url
        assert oauth_flow.token_url(cls, base).startswith(f"{base}/")
        production = oauth_flow.authorize_url(cls, "client-1", "https://tb.example/cb", "st8")
        assert production.startswith(cls.oauth.authorize_url + "?")
