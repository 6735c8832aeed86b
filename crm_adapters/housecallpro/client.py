"""The Housecall Pro REST client: one ``requests`` session, the two credential schemes, paging.

Base URL ``https://api.housecallpro.com`` (one unversioned surface; paths carry no ``/v1``).
Every request is one attempt with the connector's timeouts and no redirects followed; whatever
fails leaves as a :class:`~connector.kernel.errors.ProviderError` (the connector is the only retry layer).

Credentials (https://docs.housecallpro.com/, OpenAPI ``securitySchemes``):

- Company or Application API key: ``Authorization: Token <key>``.
- Partner OAuth: ``Authorization: Bearer <access token>``, the tokens kept in the connector's
  :class:`~crm_adapters.base.TokenStore` and refreshed shortly before they expire.

The two are not interchangeable and Housecall Pro answers either mistake with the same
``{"message": "Unauthorized"}``, so :mod:`crm_adapters.housecallpro.errors` words the 401.

``X-Company-Id`` selects one location of a multi-location company (it overrides
``location_ids[]``); it is sent when the account sets ``company_id``.

``ambiguous`` is decided per adapter operation, not per request: a write operation (log a
call, append to notes, make a lead) reports a 5xx or a read timeout as ambiguous even when the
failing request was its preparatory read. The connector sees operations, and the writes it
makes converge on retry (notes entries carry markers, a customer is searched for and our open
lead looked up before a new one is made, a follow-up lead is made between two notes entries a
retry reads), so over-reporting only ever causes a safe retry. A connection that never opened
is never ambiguous; a search alone is never ambiguous.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests

from connector.kernel.http import DEFAULT_TIMEOUT, json_object, new_session, transport_error
from crm_adapters import oauth_flow
from crm_adapters.base import CrmAdapter, OAuthTokens, TokenStore
from crm_adapters.housecallpro.errors import (
    PROVIDER,
    SCHEME_API_KEY,
    SCHEME_OAUTH,
    api_error,
)
from crm_adapters.oauth_tokens import TokenKeeper

_LOG = logging.getLogger(__name__)

#: Page size for list calls. The spec documents ``page_size`` with a default of 10 and no
#: maximum; 50 is our choice *(inferred to be accepted)*.
PAGE_SIZE = 50
#: Refresh an OAuth access token this long before it expires (they last about 30 days).
REFRESH_MARGIN = timedelta(minutes=10)


class StripedLocks:
    """A fixed set of locks picked by key: serialises work on one key without a lock per key."""

    def __init__(self, stripes: int = 64) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def lock_for(self, key: str) -> threading.Lock:
        """The lock guarding ``key`` (shared with a few other keys)."""
        return self._locks[zlib.crc32(key.encode()) % len(self._locks)]


@dataclass(frozen=True, repr=False)
class OAuthApp:
    """The partner app's OAuth client and where its tokens are refreshed (``crm`` declares the
    token endpoint's style)."""

    crm: type[CrmAdapter]
    client_id: str
    client_secret: str
    token_url: str

    def __repr__(self) -> str:
        return f"OAuthApp(client_id={self.client_id!r}, <secret hidden>)"


class HcpClient:
    """Authenticated JSON requests to one Housecall Pro company."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        app: OAuthApp | None = None,
        token_store: TokenStore | None = None,
        company_id: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        if (api_key is None) == (app is None):
            raise ValueError("exactly one of api_key and app is needed")
        if app is not None and token_store is None:
            raise ValueError("OAuth needs a token store")
        self.base_url = base_url.rstrip("/")
        self.scheme = SCHEME_API_KEY if api_key is not None else SCHEME_OAUTH
        self._api_key = api_key
        self._app = app
        self._store = token_store
        self._company_id = company_id
        self.timeout = timeout
        self._session = session or new_session()
        self._secrets = tuple(s for s in secrets if s)
        self._tokens_seen: set[str] = set()
        self._keeper = (
            TokenKeeper(token_store, self._refresh, provider=PROVIDER,
                        display_name="Housecall Pro", skew=REFRESH_MARGIN.total_seconds())
            if app is not None and token_store is not None else None)

    def __repr__(self) -> str:
        return f"<HcpClient {self.base_url} scheme={self.scheme}>"

    # -- credentials -----------------------------------------------------------------------

    def _access_token(self) -> str:
        """The current OAuth access token, renewed under the store's lock when due."""
        assert self._keeper is not None  # noqa: S101 - set whenever OAuth is on
        token = self._keeper.access_token()
        self._tokens_seen.update(self._keeper.current_secrets())
        return token

    def _refresh(self, refresh_token: str) -> OAuthTokens:
        assert self._app is not None  # noqa: S101 - only OAuth clients refresh
        return oauth_flow.refresh(self._app.crm, self._app.client_id, self._app.client_secret,
                                  refresh_token, token_url=self._app.token_url,
                                  session=self._session, timeout=self.timeout)

    def headers(self) -> dict[str, str]:
        """The request headers, with a fresh Authorization value."""
        if self._api_key is not None:
            auth = f"Token {self._api_key}"
        else:
            auth = f"Bearer {self._access_token()}"
        headers = {"Authorization": auth, "Accept": "application/json"}
        if self._company_id:
            headers["X-Company-Id"] = self._company_id
        return headers

    # -- requests --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        ambiguous: bool,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One request; the decoded JSON object (``{}`` for an empty 2xx body).

        ``ambiguous`` says whether a 5xx or a lost answer may leave the operation done.
        """
        url = f"{self.base_url}{path}"
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                json=json,
                headers=self.headers(),
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            failure = transport_error(PROVIDER, exc)
            failure.ambiguous = failure.ambiguous and ambiguous
            _LOG.warning("housecallpro %s: transport failure %s", operation, type(exc).__name__)
            raise failure from None
        status = response.status_code
        if not 200 <= status < 300:
            secrets = self._secrets + tuple(self._tokens_seen)
            error = api_error(
                status,
                response.content,
                response.headers,
                operation=operation,
                scheme=self.scheme,
                ambiguous=ambiguous,
                secrets=secrets,
            )
            _LOG.info("housecallpro %s: HTTP %s (%s)", operation, status, type(error).__name__)
            raise error
        if not response.content.strip():
            return {}
        return json_object(response, PROVIDER, label=f"Housecall Pro {operation}",
                           ambiguous=ambiguous)

    def paged(
        self,
        path: str,
        key: str,
        *,
        operation: str,
        ambiguous: bool = False,
        params: Mapping[str, Any] | None = None,
        max_pages: int = 20,
    ) -> Iterator[dict[str, Any]]:
        """The items under ``key`` of every page (``page`` from 1, ``page_size``), lazily.

        Stops at ``total_pages`` (at a short page when the answer has no page count), or after
        ``max_pages`` pages. A server capping ``page_size`` below ours still pages correctly.
        """
        for page in range(1, max_pages + 1):
            query = {**(params or {}), "page": page, "page_size": PAGE_SIZE}
            body = self.request(
                "GET", path, operation=operation, ambiguous=ambiguous, params=query
            )
            items = [i for i in body.get(key) or [] if isinstance(i, dict)]
            yield from items
            total = body.get("total_pages")
            if isinstance(total, int | float) and not isinstance(total, bool):
                if page >= total:
                    return
            elif len(items) < PAGE_SIZE:
                return  # no page count: a short page is the last one
