"""The carrier setup contract: what the setup pages ask of a carrier adapter.

Every carrier's test class adds :class:`CarrierSetupContract` next to
:class:`~tests.contracts.carrier_contract.CarrierContract`. Its checks are cut by the adapter's
flags with ``@applies``: a carrier whose API cannot list numbers runs no listing check (and
shows no skip), while the paste-by-hand instructions are checked for every carrier.

=============================  ==============================================================
flag                           checks
=============================  ==============================================================
(every carrier)                ``webhook_settings`` gives textback's exact URLs; flags match
                               the methods
``can_check_credentials``      accepted, refused (``CredentialsRejectedError`` naming the
                               carrier, no secret) and, over a network, unreachable
                               (``ProviderUnreachableError``)
``can_list_numbers``           the fake account's numbers in E.164 with capabilities
``can_point_webhooks``         the number then points at textback, the changes say what was
                               before and after, a second run changes nothing, another number
                               is refused
=============================  ==============================================================

Hooks (besides those of the carrier contract: ``adapter_class``, ``credentials()``,
``secret_credentials``, the ``adapter`` and ``http`` fixtures):

``owned_numbers: tuple[str, ...]``
    The E.164 numbers the fake account owns (``can_list_numbers``).
``checks_over_network: bool = True``
    False for the built-in sandbox, which cannot be unreachable.
``points_numbers_one_by_one: bool = True``
    False where the webhooks are one setting for the whole account (a RingCentral
    subscription): pointing one number then points them all.
``stub_account(self, http, adapter) -> None``
    Make the carrier's API answer like an account owning ``owned_numbers``; pointing a
    number's webhooks must change what a later listing shows (a stateful fake).
``stub_refused(self, http, adapter) -> CarrierAdapter``
    Make the carrier refuse the credentials; return the adapter to check with.
``stub_unreachable(self, http, adapter) -> None``
    Default: every request fails to connect.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pytest
import requests
import responses

from carrier_adapters.base import CarrierAdapter
from carrier_adapters.provisioning import NUMBER_CAPABILITIES, WebhookUrls, webhook_urls
from connector.kernel.errors import (
    CredentialsRejectedError,
    PermanentProviderError,
    ProviderUnreachableError,
)
from connector.kernel.phone import to_e164
from tests.capabilities import applies

PUBLIC_URL = "https://textback.example.com"
ACCOUNT = "acme-plumbing"
#: A number no fake account owns.
NOT_OURS = "+14155550177"


def _flag(name: str) -> Any:
    return lambda cls: bool(getattr(cls.adapter_class, name))


class CarrierSetupContract:
    """Checks of the setup calls; see the module docstring."""

    adapter_class: ClassVar[type[CarrierAdapter]]
    owned_numbers: ClassVar[tuple[str, ...]] = ()
    checks_over_network: ClassVar[bool] = True
    points_numbers_one_by_one: ClassVar[bool] = True

    # -- hooks ------------------------------------------------------------------------------

    def stub_account(self, http: responses.RequestsMock, adapter: CarrierAdapter) -> None:
        raise NotImplementedError("the carrier's test class provides stub_account()")

    def stub_refused(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> CarrierAdapter:
        raise NotImplementedError("the carrier's test class provides stub_refused()")

    def stub_unreachable(self, http: responses.RequestsMock, adapter: CarrierAdapter) -> None:
        """Every request, whatever its method and URL, fails to connect."""
        for method in (responses.GET, responses.POST, responses.PUT, responses.PATCH):
            http.add(method, re.compile(r".*"), body=requests.ConnectionError("refused"))

    def urls(self) -> WebhookUrls:
        """textback's URLs for the test account on this carrier."""
        return webhook_urls(PUBLIC_URL, self.adapter_class.name, ACCOUNT)

    def _secrets(self) -> list[str]:
        creds = self.credentials()  # type: ignore[attr-defined]
        names = self.secret_credentials  # type: ignore[attr-defined]
        return [str(creds[n]) for n in names if creds.get(n)]

    # -- every carrier -----------------------------------------------------------------------

    def test_webhook_settings_give_the_exact_urls(self) -> None:
        urls = self.urls()
        ours = {urls.voice, urls.sms, urls.status}
        for calls in ("forward", "watch"):
            settings = self.adapter_class.webhook_settings(urls, calls=calls)  # type: ignore[arg-type]
            assert settings, "the page must show at least one URL to paste"
            assert {s.url for s in settings} <= ours
            assert urls.voice in {s.url for s in settings}, "calls must reach the voice URL"
            for setting in settings:
                assert setting.where.strip(), "each URL names the carrier setting it goes in"
                assert setting.method in ("POST", "GET")

    def test_webhook_urls_follow_the_webhook_route(self) -> None:
        urls = self.urls()
        name = self.adapter_class.name
        assert urls.voice == f"{PUBLIC_URL}/webhooks/{name}/{ACCOUNT}/voice"
        assert urls.sms == f"{PUBLIC_URL}/webhooks/{name}/{ACCOUNT}/sms"
        assert urls.status == f"{PUBLIC_URL}/webhooks/{name}/{ACCOUNT}/status"

    # -- credentials ------------------------------------------------------------------------

    @applies(_flag("can_check_credentials"), "the carrier's API cannot check credentials")
    def test_check_credentials_accepts_working_ones(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> None:
        self.stub_account(http, adapter)
        assert adapter.check_credentials() is None

    @applies(_flag("can_check_credentials"), "the carrier's API cannot check credentials")
    def test_check_credentials_refused_says_what_to_fix(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> None:
        checked = self.stub_refused(http, adapter)
        with pytest.raises(CredentialsRejectedError) as caught:
            checked.check_credentials()
        message = str(caught.value)
        assert self.adapter_class.display_name in message
        assert "refused" in message
        for secret in self._secrets():
            assert secret not in message

    @applies(
        lambda cls: cls.adapter_class.can_check_credentials and cls.checks_over_network,
        "the carrier cannot be unreachable",
    )
    def test_check_credentials_unreachable_is_not_a_refusal(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> None:
        self.stub_unreachable(http, adapter)
        with pytest.raises(ProviderUnreachableError) as caught:
            adapter.check_credentials()
        assert not isinstance(caught.value, CredentialsRejectedError)
        assert "try again" in str(caught.value)

    # -- numbers ----------------------------------------------------------------------------

    @applies(_flag("can_list_numbers"), "the carrier's API lists no numbers")
    def test_list_numbers_gives_the_accounts_numbers(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> None:
        self.stub_account(http, adapter)
        numbers = adapter.list_numbers()
        assert [n.e164 for n in numbers] == list(self.owned_numbers)
        for number in numbers:
            assert to_e164(number.e164) == number.e164
            assert number.capabilities <= set(NUMBER_CAPABILITIES)
            assert number.capabilities, "each number says what it can do"
            assert number.e164 not in repr(number)

    @applies(_flag("can_list_numbers"), "the carrier's API lists no numbers")
    def test_list_numbers_refused_credentials(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> None:
        checked = self.stub_refused(http, adapter)
        with pytest.raises(CredentialsRejectedError):
            checked.list_numbers()

    # -- pointing webhooks ------------------------------------------------------------------

    @applies(_flag("can_point_webhooks"), "the carrier's API cannot point webhooks")
    def test_point_webhooks_points_the_number_at_textback(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> None:
        self.stub_account(http, adapter)
        urls = self.urls()
        number = self.owned_numbers[0]
        assert not next(n for n in adapter.list_numbers() if n.e164 == number).points_at(urls)

        changes = adapter.point_webhooks(number, urls)

        written = {c.after for c in changes if c.changed}
        assert urls.sms in written or urls.voice in written, "the change list shows the URLs"
        assert all(c.field for c in changes)
        listed = next(n for n in adapter.list_numbers() if n.e164 == number)
        assert listed.points_at(urls)
        others = [n for n in adapter.list_numbers() if n.e164 != number]
        if self.points_numbers_one_by_one:
            assert not any(n.points_at(urls) for n in others), "only the chosen number changes"
        else:
            assert all(n.points_at(urls) for n in others), "the account-wide setting serves all"

    @applies(_flag("can_point_webhooks"), "the carrier's API cannot point webhooks")
    def test_point_webhooks_twice_changes_nothing_the_second_time(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> None:
        self.stub_account(http, adapter)
        urls = self.urls()
        first = adapter.point_webhooks(self.owned_numbers[0], urls)
        second = adapter.point_webhooks(self.owned_numbers[0], urls)
        assert [c.field for c in second] == [c.field for c in first]
        assert not any(c.changed for c in second)

    @applies(_flag("can_point_webhooks"), "the carrier's API cannot point webhooks")
    def test_point_webhooks_refuses_a_number_the_account_does_not_own(
        self, http: responses.RequestsMock, adapter: CarrierAdapter
    ) -> None:
        self.stub_account(http, adapter)
        with pytest.raises(PermanentProviderError):
            adapter.point_webhooks(NOT_OURS, self.urls())
        assert not any(n.points_at(self.urls()) for n in adapter.list_numbers())
