"""HubSpot's setup calls: the "test connection" and the lists the setup pages map fields from.

These are plain JSON reads, made with ``requests`` (one attempt, the kernel's timeouts) and
classified by :func:`crm_adapters.hubspot.client.api_error` like every other HubSpot call:

- Granted scopes: a private-app token (``pat-...``) is described by
  ``POST /oauth/v2/private-apps/get/access-token-info`` (body ``{"tokenKey": token}``,
  https://developers.hubspot.com/docs/api/private-apps); an OAuth access token by
  ``GET /oauth/v1/access-tokens/{token}`` (``hub_id``, ``hub_domain``, ``scopes``;
  https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/get-oauth-token-metadata).
- One record: ``GET /crm/v3/objects/contacts?limit=1``.
- Deal pipelines and their stages: ``GET /crm/v3/pipelines/deals``
  (https://developers.hubspot.com/docs/api/crm/pipelines); archived ones are left out.
- Owners: ``GET /crm/v3/owners`` paged by ``paging.next.after``
  (https://developers.hubspot.com/docs/api/crm/owners); ``id`` is the ``hubspot_owner_id``.
- Task queues: HubSpot's public API has no queue endpoint. The options of the task property
  ``hs_queue_membership_ids`` (``GET /crm/v3/properties/tasks/hs_queue_membership_ids``) are
  offered when the portal lists them there; otherwise the queues recent tasks are in
  (``POST /crm/v3/objects/tasks/search``, ``HAS_PROPERTY``), by id, as HubSpot does not name
  them through the API. A portal whose tasks use no queue yet offers none.

HubSpot has no lead sources or lead statuses of its own to map, so those lists are None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

from connector.kernel.errors import TransientProviderError, checking_credentials
from connector.kernel.http import DEFAULT_TIMEOUT, json_object, new_session
from crm_adapters.catalog import (
    Choice,
    ConnectionCheck,
    CrmChoices,
    PipelineChoice,
    permissions_from_scopes,
)
from crm_adapters.hubspot.client import PROVIDER, api_error

DISPLAY_NAME = "HubSpot"
#: What to fix when HubSpot refuses the token.
CREDENTIALS_HINT = (
    "check the access token (Settings > Integrations > Private apps > the app > Auth), or "
    "reinstall the app"
)
#: What textback does in HubSpot and the scopes each needs (engagements, i.e. calls, texts and
#: tasks, are covered by the contacts scopes:
#: https://developers.hubspot.com/docs/api/crm/understanding-the-crm).
ACTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("find contacts by phone", ("crm.objects.contacts.read",)),
    ("create contacts, log calls and texts, create tasks", ("crm.objects.contacts.write",)),
    ("create deals and move them through the pipeline",
     ("crm.objects.deals.read", "crm.objects.deals.write")),
    ("list owners to assign follow-ups", ("crm.objects.owners.read",)),
    ("create textback's unique phone property", ("crm.schemas.contacts.write",)),
)
OWNERS_PAGE = 100
#: Tasks read to find the queues in use when the portal lists none.
QUEUE_SAMPLE = 100
MAX_OWNER_PAGES = 20


class HubSpotCatalog:
    """The setup reads for one adapter: its token, API host and timeouts."""

    def __init__(
        self,
        access_token: str | Callable[[], str],
        *,
        host: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        secrets: Sequence[str] = (),
        session: requests.Session | None = None,
    ) -> None:
        self._token_source = access_token
        self._host = host.rstrip("/")
        self._timeout = timeout
        self._secrets = tuple(s for s in secrets if s)
        self._session = session or new_session()

    @property
    def _token(self) -> str:
        """The access token (an OAuth install's current one, renewed when due)."""
        source = self._token_source
        return source if isinstance(source, str) else source()

    def __repr__(self) -> str:
        return f"<HubSpotCatalog {self._host}>"

    def _call(
        self, method: str, path: str, operation: str, *, ok_missing: bool = False, **kwargs: Any
    ) -> dict[str, Any] | None:
        """One request; its JSON object, or None for a 404 when ``ok_missing``."""
        try:
            response = self._session.request(
                method, self._host + path, timeout=self._timeout, allow_redirects=False,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                **kwargs,
            )
        except requests.RequestException as exc:
            raise TransientProviderError(
                f"HubSpot {operation} failed: {type(exc).__name__}", provider=PROVIDER
            ) from None
        if ok_missing and response.status_code == 404:
            return None
        if not 200 <= response.status_code < 300:
            raise api_error(
                response.status_code, response.content, response.headers,
                operation=operation, ambiguous=False, secrets=self._secrets,
            )
        return json_object(response, PROVIDER, label=f"HubSpot {operation}")

    # -- test connection ------------------------------------------------------------------

    def _token_info(self) -> tuple[str, tuple[str, ...] | None]:
        """The portal's name and the token's scopes (None when HubSpot does not describe this
        kind of token)."""
        if self._token.startswith("pat-"):
            info = self._call(
                "POST", "/oauth/v2/private-apps/get/access-token-info", "token info",
                json={"tokenKey": self._token}, ok_missing=True,
            )
            hub, domain = (info or {}).get("hubId"), None
        else:
            info = self._call(
                "GET", f"/oauth/v1/access-tokens/{quote(self._token, safe='')}", "token info",
                ok_missing=True,
            )
            hub, domain = (info or {}).get("hub_id"), (info or {}).get("hub_domain")
        scopes = None if info is None else tuple(
            str(s) for s in info.get("scopes") or [] if isinstance(s, str)
        )
        account = f"HubSpot account {hub}" if hub is not None else "HubSpot account"
        if domain:
            account += f" ({domain})"
        return account, scopes

    def check_connection(self) -> ConnectionCheck:
        """The portal, one contact read, and what the token's scopes allow."""
        with checking_credentials(DISPLAY_NAME, CREDENTIALS_HINT):
            account, scopes = self._token_info()
            page = self._call(
                "GET", "/crm/v3/objects/contacts", "contact read", params={"limit": "1"}
            ) or {}
        first = next((r for r in page.get("results") or [] if isinstance(r, dict)), None)
        return ConnectionCheck(
            account=account,
            record=f"contact {first['id']}" if first and first.get("id") else None,
            permissions=permissions_from_scopes(scopes, ACTIONS),
            scopes=scopes or (),
        )

    # -- lists ----------------------------------------------------------------------------

    def _pipelines(self) -> tuple[PipelineChoice, ...]:
        body = self._call("GET", "/crm/v3/pipelines/deals", "pipelines read") or {}
        found = []
        for item in _live(body.get("results")):
            stages = tuple(
                Choice(str(s["id"]), str(s.get("label") or s["id"]))
                for s in sorted(_live(item.get("stages")), key=_display_order)
            )
            found.append((item, PipelineChoice(str(item["id"]), str(item.get("label")), stages)))
        return tuple(p for _, p in sorted(found, key=lambda pair: _display_order(pair[0])))

    def _owners(self) -> tuple[Choice, ...]:
        owners: list[Choice] = []
        after: str | None = None
        for _ in range(MAX_OWNER_PAGES):
            params = {"limit": str(OWNERS_PAGE), "archived": "false"}
            if after:
                params["after"] = after
            body = self._call("GET", "/crm/v3/owners", "owners read", params=params) or {}
            owners += [Choice(str(o["id"]), _owner_label(o)) for o in _live(body.get("results"))]
            after = _next_after(body)
            if after is None:
                break
        return tuple(owners)

    def _task_queues(self) -> tuple[Choice, ...]:
        body = self._call(
            "GET", "/crm/v3/properties/tasks/hs_queue_membership_ids", "task queues read",
            ok_missing=True,
        )
        options = (body or {}).get("options") or []
        listed = tuple(
            Choice(str(o["value"]), str(o.get("label") or o["value"]))
            for o in options
            if isinstance(o, dict) and o.get("value") and not o.get("hidden")
        )
        return listed or self._queues_in_use()

    def _queues_in_use(self) -> tuple[Choice, ...]:
        """The queues recent tasks are in, by id (HubSpot's API does not name them)."""
        search = {
            "filterGroups": [{"filters": [
                {"propertyName": "hs_queue_membership_ids", "operator": "HAS_PROPERTY"}]}],
            "properties": ["hs_queue_membership_ids"],
            "limit": QUEUE_SAMPLE,
        }
        body = self._call("POST", "/crm/v3/objects/tasks/search", "task queues read",
                          json=search) or {}
        seen: dict[str, None] = {}
        for task in body.get("results") or []:
            props = task.get("properties") if isinstance(task, dict) else None
            value = props.get("hs_queue_membership_ids") if isinstance(props, dict) else None
            for queue in str(value or "").split(";"):
                if queue.strip():
                    seen.setdefault(queue.strip(), None)
        return tuple(Choice(queue, f"Queue {queue}") for queue in seen)

    def list_choices(self) -> CrmChoices:
        """Deal pipelines with stages, owners and task queues."""
        with checking_credentials(DISPLAY_NAME, CREDENTIALS_HINT):
            return CrmChoices(
                pipelines=self._pipelines(),
                owners=self._owners(),
                task_queues=self._task_queues(),
            )


def _live(items: Any) -> list[Mapping[str, Any]]:
    """The entries of a results list that have an id and are not archived."""
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and i.get("id") and not i.get("archived")]


def _display_order(item: Mapping[str, Any]) -> int:
    order = item.get("displayOrder")
    return order if isinstance(order, int) else 0


def _owner_label(owner: Mapping[str, Any]) -> str:
    name = " ".join(str(owner.get(k) or "").strip() for k in ("firstName", "lastName")).strip()
    email = str(owner.get("email") or "").strip()
    if name and email:
        return f"{name} ({email})"
    return name or email or f"Owner {owner['id']}"


def _next_after(body: Mapping[str, Any]) -> str | None:
    paging = body.get("paging")
    following = paging.get("next") if isinstance(paging, dict) else None
    after = following.get("after") if isinstance(following, dict) else None
    return str(after) if after else None
