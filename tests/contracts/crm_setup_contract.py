"""The CRM setup contract: "test connection" and the lists the setup pages map fields from.

A CRM's test class adds :class:`CrmSetupContract` next to
:class:`~tests.contracts.crm_contract.CrmContract`. The checks apply to adapters that implement
:meth:`~crm_adapters.base.CrmAdapter.check_connection` and
:meth:`~crm_adapters.base.CrmAdapter.list_choices` (``@applies``: no skips elsewhere).

Hooks (besides the CRM contract's ``backend`` fixture, ``make_adapter``, ``fail_next``,
``add_contact``, ``credentials`` and ``secret_credentials``):

``seed_choices(self, backend) -> CrmChoices``
    Put pipelines, owners and the CRM's other lists in the backend; return what
    ``list_choices`` must answer for them.
``expected_account: str``
    What :attr:`ConnectionCheck.account` must contain for the backend's account.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from connector.kernel.errors import CredentialsRejectedError, ProviderUnreachableError
from crm_adapters.base import CrmAdapter
from crm_adapters.catalog import ConnectionCheck, CrmChoices
from tests.capabilities import applies

CONTACT_PHONE = "+14155550134"


def _implements(method: str) -> Any:
    def predicate(cls: Any) -> bool:
        return getattr(cls.adapter_class, method) is not getattr(CrmAdapter, method)

    return predicate


class CrmSetupContract:
    """Checks of ``check_connection`` and ``list_choices``; see the module docstring."""

    adapter_class: ClassVar[type[CrmAdapter]]
    expected_account: ClassVar[str] = ""

    def seed_choices(self, backend: Any) -> CrmChoices:
        raise NotImplementedError("the CRM's test class provides seed_choices()")

    # -- test connection ----------------------------------------------------------------------

    @applies(_implements("check_connection"), "the CRM has no connection test")
    def test_check_connection_reads_one_record(self, adapter: CrmAdapter, backend: Any) -> None:
        contact_id = self.add_contact(backend, CONTACT_PHONE, "Jane", "Doe")  # type: ignore[attr-defined]
        check = adapter.check_connection()
        assert isinstance(check, ConnectionCheck)
        assert self.expected_account in check.account
        assert check.record is not None and contact_id in check.record
        assert check.permissions, "the check says what textback may do"
        assert all(p.action for p in check.permissions)

    @applies(_implements("check_connection"), "the CRM has no connection test")
    def test_check_connection_refused_credentials(self, adapter: CrmAdapter, backend: Any) -> None:
        self.fail_next(backend, 401)  # type: ignore[attr-defined]
        with pytest.raises(CredentialsRejectedError) as caught:
            adapter.check_connection()
        assert self.adapter_class.display_name in str(caught.value)
        self.assert_leaks_nothing(str(caught.value), "the error message")  # type: ignore[attr-defined]

    @applies(_implements("check_connection"), "the CRM has no connection test")
    def test_check_connection_when_the_crm_is_down(self, adapter: CrmAdapter, backend: Any) -> None:
        self.fail_next(backend, 503)  # type: ignore[attr-defined]
        with pytest.raises(ProviderUnreachableError) as caught:
            adapter.check_connection()
        assert "try again" in str(caught.value)

    # -- lists --------------------------------------------------------------------------------

    @applies(_implements("list_choices"), "the CRM offers no lists")
    def test_list_choices_offers_the_crms_lists(self, adapter: CrmAdapter, backend: Any) -> None:
        expected = self.seed_choices(backend)
        assert adapter.list_choices() == expected

    @applies(_implements("list_choices"), "the CRM offers no lists")
    def test_list_choices_declares_what_the_crm_has(self, adapter: CrmAdapter, backend: Any) -> None:
        self.seed_choices(backend)
        choices = adapter.list_choices()
        capabilities = self.adapter_class.capabilities
        assert (choices.task_queues is not None) == ("task_queues" in capabilities)
        assert choices.owners is not None, "every CRM assigns follow-ups to someone"
        for choice in (choices.owners or ()) + (choices.lead_sources or ()):
            assert choice.id and choice.label

    @applies(_implements("list_choices"), "the CRM offers no lists")
    def test_list_choices_refused_credentials(self, adapter: CrmAdapter, backend: Any) -> None:
        self.fail_next(backend, 401)  # type: ignore[attr-defined]
        with pytest.raises(CredentialsRejectedError):
            adapter.list_choices()
