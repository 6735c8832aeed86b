"""The HubSpot stub with the reads the setup pages make: token info, a contacts page, deal
pipelines, owners and the task-queue property. Everything else is :class:`HubSpotStub`'s::

    with HubSpotCatalogStub(access_token="pat-na1-test") as stub:
        stub.scopes = ["crm.objects.contacts.read"]       # what the token was granted
        stub.pipelines = [pipeline("default", "Sales", [("new", "New")])]
        stub.owners = [owner("7", "Ann", "Lee", "ann@example.com")]
        stub.queue_options = [{"label": "Callbacks", "value": "55", "hidden": False}]

Shapes follow HubSpot's v3 Pipelines and Owners APIs, the private-app token-info endpoint
(``hubId``, ``scopes``) and the OAuth token metadata (``hub_id``, ``hub_domain``, ``scopes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.stubs.hubspot_stub import HubSpotStub, _ApiError

HUB_ID = 4_242_424


def pipeline(
    pipeline_id: str, label: str, stages: list[tuple[str, str]], *, order: int = 0,
    archived: bool = False,
) -> dict[str, Any]:
    """A deal pipeline as ``GET /crm/v3/pipelines/deals`` lists it."""
    return {
        "id": pipeline_id, "label": label, "displayOrder": order, "archived": archived,
        "stages": [
            {"id": sid, "label": slabel, "displayOrder": i, "archived": False,
             "metadata": {"isClosed": "false", "probability": "0.2"}}
            for i, (sid, slabel) in enumerate(stages)
        ],
    }


def owner(owner_id: str, first: str, last: str, email: str) -> dict[str, Any]:
    """An owner as ``GET /crm/v3/owners`` lists it."""
    return {"id": owner_id, "firstName": first, "lastName": last, "email": email,
            "type": "PERSON", "userId": int(owner_id) * 10, "archived": False, "teams": []}


class HubSpotCatalogStub(HubSpotStub):
    """:class:`HubSpotStub` plus the setup reads; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scopes: list[str] = []
        self.hub_domain = "acme-plumbing.hubspot.com"
        self.pipelines: list[dict[str, Any]] = []
        self.owners: list[dict[str, Any]] = []
        #: None: the portal has no ``hs_queue_membership_ids`` property to read (a 404).
        self.queue_options: list[dict[str, Any]] | None = []
        self.owners_page_size = 100

    def _route(
        self, method: str, path: str, query: Mapping[str, list[str]], payload: Any
    ) -> tuple[int, Any]:
        if method == "POST" and path == "/oauth/v2/private-apps/get/access-token-info":
            if not isinstance(payload, dict) or payload.get("tokenKey") != self.access_token:
                raise _ApiError(401, "The token is not valid")
            return 200, {"userId": 123, "hubId": HUB_ID, "appId": 999, "scopes": self.scopes}
        if method == "GET" and path.startswith("/oauth/v1/access-tokens/"):
            if path.rsplit("/", 1)[-1] != self.access_token:
                raise _ApiError(404, "Token not found")
            return 200, {"token": self.access_token, "hub_id": HUB_ID, "user": "a@example.com",
                         "hub_domain": self.hub_domain, "scopes": self.scopes,
                         "token_type": "access", "app_id": 999, "expires_in": 1500}
        if method == "GET" and path == "/crm/v3/objects/contacts":
            limit = int((query.get("limit") or ["10"])[0])
            rows = [self._public(r, None) for r in self._objects["contacts"].values()][:limit]
            return 200, {"results": rows}
        if method == "GET" and path == "/crm/v3/pipelines/deals":
            return 200, {"results": self.pipelines}
        if method == "GET" and path == "/crm/v3/owners":
            return 200, self._owners_page(query)
        if method == "GET" and path == "/crm/v3/properties/tasks/hs_queue_membership_ids":
            if self.queue_options is None:
                raise _ApiError(404, "Unable to find property hs_queue_membership_ids")
            return 200, {"name": "hs_queue_membership_ids", "label": "Queue",
                         "type": "enumeration", "fieldType": "checkbox",
                         "options": self.queue_options}
        return super()._route(method, path, query, payload)

    def _owners_page(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        start = int((query.get("after") or ["0"])[0])
        size = min(int((query.get("limit") or ["100"])[0]), self.owners_page_size)
        rows = self.owners[start:start + size]
        body: dict[str, Any] = {"results": rows}
        if start + size < len(self.owners):
            body["paging"] = {"next": {"after": str(start + size)}}
        return body
