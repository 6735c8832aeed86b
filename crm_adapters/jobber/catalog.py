"""Jobber's setup calls: the "test connection" and the lists the setup pages map fields from.

- The connection: ``query Account`` names the Jobber account and ``query FirstClient`` reads one
  client. Jobber grants scopes when the app is installed, not per request; the access token (a
  JWT) lists them in its ``scope`` claim, which is compared with what each of textback's actions
  needs (https://developer.getjobber.com/docs/building_your_app/app_authorization).
- The lists: the active users (``query Users``) are the owners a follow-up can be assigned to.
  Jobber has no pipelines (a request's status is derived from its assessment, quote and job),
  no task queues, and in the pinned API version no lead source a request or client can be given
  (``RequestSource`` is read-only), so those lists are None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from crm_adapters.base import TokenStore
from crm_adapters.catalog import (
    Choice,
    ConnectionCheck,
    CrmChoices,
    checking_connection,
    permissions_from_scopes,
)
from crm_adapters.jobber.documents import FIRST_CLIENT
from crm_adapters.jobber.errors import PROVIDER
from crm_adapters.jobber.oauth import JobberAccount
from crm_adapters.jobber.tokens import jwt_claims


class _User(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def is_admin(self) -> bool: ...


class JobberCrm(Protocol):
    """What these calls use of :class:`crm_adapters.jobber.JobberCrm`."""

    def account(self) -> JobberAccount: ...
    def run(self, document: str) -> dict[str, Any]: ...
    def list_users(self) -> Sequence[_User]: ...
    def token_store_or_raise(self) -> TokenStore: ...

DISPLAY_NAME = "Jobber"
CREDENTIALS_HINT = "reconnect the app in Jobber (the installation's tokens no longer work)"
#: What textback does in Jobber and the scopes each needs (names as in the token's claim).
ACTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("find and create clients, add notes", ("read_clients", "write_clients")),
    ("create requests", ("read_requests", "write_requests")),
    ("create follow-up tasks or assessments",
     ("read_scheduled_items", "write_scheduled_items")),
    ("list team members to assign follow-ups", ("read_users",)),
)


def granted_scopes(crm: JobberCrm) -> tuple[str, ...] | None:
    """The scopes in the installation's access token, None when it names none."""
    tokens = crm.token_store_or_raise().load()
    scope = jwt_claims(tokens.access_token).get("scope")
    return tuple(str(scope).split()) if isinstance(scope, str) else None


def check_connection(crm: JobberCrm) -> ConnectionCheck:
    """The account's name, one client and what the installation's scopes allow."""
    with checking_connection(DISPLAY_NAME, CREDENTIALS_HINT, provider=PROVIDER):
        account = crm.account()
        data = crm.run(FIRST_CLIENT)
    nodes = (data.get("clients") or {}).get("nodes") or []
    first = nodes[0] if nodes and isinstance(nodes[0], dict) else None
    scopes = granted_scopes(crm)
    return ConnectionCheck(
        account=f"Jobber account {account.name}".strip() if account.name else "Jobber account",
        record=f"client {first['id']}" if first and first.get("id") else None,
        permissions=permissions_from_scopes(scopes, ACTIONS),
        scopes=scopes or (),
    )


def list_choices(crm: JobberCrm) -> CrmChoices:
    """The active users, admins first, as the owners to choose from."""
    with checking_connection(DISPLAY_NAME, CREDENTIALS_HINT, provider=PROVIDER):
        users = crm.list_users()
    ordered = sorted(users, key=lambda u: not u.is_admin)
    owners = tuple(
        Choice(u.id, f"{u.name} ({u.email})" if u.email else u.name or u.id) for u in ordered
    )
    return CrmChoices(owners=owners)
