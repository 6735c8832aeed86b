"""What the setup pages ask a CRM: is the connection good and what may the app do with it
(:class:`ConnectionCheck`), and the CRM's own lists to map fields from (:class:`CrmChoices`).

Plain data; each adapter fills it from its CRM's API
(:meth:`~crm_adapters.base.CrmAdapter.check_connection`,
:meth:`~crm_adapters.base.CrmAdapter.list_choices`), so an admin picks pipelines, stages and
owners from what the CRM holds instead of typing ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from connector.kernel.errors import (
    ConfigurationError,
    CredentialsRejectedError,
    checking_credentials,
)


@dataclass(frozen=True)
class Choice:
    """One entry of a CRM list: the id that goes into ``crm.mapping`` and its label."""

    id: str
    label: str


@dataclass(frozen=True)
class PipelineChoice:
    """A pipeline and its stages, in the CRM's display order."""

    id: str
    label: str
    stages: tuple[Choice, ...] = ()


@dataclass(frozen=True)
class CrmChoices:
    """The CRM's lists a missed call's records can be mapped to.

    Each list is None when the CRM has no such thing (Jobber has no task queues; HubSpot no
    lead sources) and a tuple, possibly empty, when it has: the page then offers it.

    - ``pipelines``: for ``crm.mapping.pipeline`` and ``stage``;
    - ``owners``: users or employees, for ``owner_id`` (and routing owners);
    - ``task_queues``: for ``task_queue_id``;
    - ``lead_sources``: for ``lead_source``;
    - ``pipeline_statuses``: the stage of a lead in CRMs whose leads have one fixed pipeline
      (Housecall Pro), for ``stage``.
    """

    pipelines: tuple[PipelineChoice, ...] | None = None
    owners: tuple[Choice, ...] | None = None
    task_queues: tuple[Choice, ...] | None = None
    lead_sources: tuple[Choice, ...] | None = None
    pipeline_statuses: tuple[Choice, ...] | None = None


@dataclass(frozen=True)
class Permission:
    """One thing textback does in the CRM and whether the connection allows it.

    ``needs`` names what grants it (OAuth scopes, a plan feature); ``allowed`` is None when the
    CRM cannot say before trying.
    """

    action: str
    allowed: bool | None
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConnectionCheck:
    """A "test connection" answer: the CRM account reached, the one record read to prove it,
    and what the app may and may not do.

    ``account`` is the CRM's name for the account (portal, company); ``record`` describes the
    record read (``"contact 501"``), None when the CRM holds none yet; ``scopes`` are the
    granted scopes where the CRM has scopes.
    """

    account: str
    record: str | None
    permissions: tuple[Permission, ...]
    scopes: tuple[str, ...] = ()

    @property
    def allowed(self) -> tuple[Permission, ...]:
        """What the app may do."""
        return tuple(p for p in self.permissions if p.allowed)

    @property
    def refused(self) -> tuple[Permission, ...]:
        """What the app may not do (a missing scope, a plan without the feature)."""
        return tuple(p for p in self.permissions if p.allowed is False)

    @property
    def ok(self) -> bool:
        """True when nothing textback does is refused."""
        return not self.refused


def permissions_from_scopes(
    granted: Iterable[str] | None, needs: Iterable[tuple[str, tuple[str, ...]]]
) -> tuple[Permission, ...]:
    """A :class:`Permission` per ``(action, scopes)`` in ``needs``: allowed when every scope it
    names is in ``granted``; unknown (None) for every action when ``granted`` is None (the CRM
    did not say which scopes the token has)."""
    have = None if granted is None else set(granted)
    return tuple(
        Permission(action, None if have is None else all(s in have for s in scopes), scopes)
        for action, scopes in needs
    )


@contextmanager
def checking_connection(display_name: str, hint: str, *, provider: str) -> Iterator[None]:
    """:func:`~connector.kernel.errors.checking_credentials` for a CRM, and a CRM account with no
    working connection yet (no OAuth installation: the adapter raises
    :class:`~connector.kernel.errors.ConfigurationError`) told to connect it first."""
    try:
        with checking_credentials(display_name, hint):
            yield
    except ConfigurationError as exc:
        raise CredentialsRejectedError(
            f"{display_name} is not connected yet: {exc}", provider=provider
        ) from None
