"""GraphQL over ``requests`` to Jobber, with token renewal and error translation.

Every call is ``POST {api_base_url}/api/graphql`` with ``Content-Type: application/json`` (form
bodies are refused since 2024-04-02), ``Authorization: Bearer <access token>`` and
``X-JOBBER-GRAPHQL-VERSION`` (required for every app).
https://developer.getjobber.com/docs/using_jobbers_api/api_queries_and_mutations
https://developer.getjobber.com/docs/using_jobbers_api/api_versioning

One attempt per request; the connector is the only retry layer. The one
exception is token renewal: a 401 renews the access token once under the installation lock and
re-sends that request once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from connector.kernel.errors import (
    ConfigurationError,
    PermanentProviderError,
    ProviderAuthError,
    TransientProviderError,
)
from crm_adapters.jobber.documents import operation_name
from crm_adapters.jobber.errors import (
    PROVIDER,
    AppDisconnectedError,
    UnauthorizedError,
    graphql_error,
    http_error,
    user_errors,
)
from crm_adapters.oauth_tokens import TokenKeeper

VERSION_HEADER = "X-JOBBER-GRAPHQL-VERSION"

_LOG = logging.getLogger(__name__)


def _versioning_warning(body: Mapping[str, Any], pinned: str | None) -> str | None:
    # extensions.versioning: "warning" when the pinned version stops being supported soon or
    # already has; a "version" other than the pinned one when Jobber removed it and upgraded the
    # request to the oldest supported version (possibly with breaking changes).
    versioning = (body.get("extensions") or {}).get("versioning")
    if not isinstance(versioning, Mapping):
        return None
    if versioning.get("warning"):
        return str(versioning["warning"])
    answered = versioning.get("version")
    if pinned and answered and str(answered) != pinned:
        return f"Jobber answered with API version {answered}; the pinned one is no longer served"
    return None


def post_graphql(
    session: requests.Session,
    url: str,
    access_token: str,
    document: str,
    variables: Mapping[str, Any],
    *,
    graphql_version: str | None,
    timeout: tuple[float, float],
    secrets: Sequence[str] = (),
    on_warning: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Send one document with one token; return ``data`` or raise a classified error.

    A 401 raises :class:`UnauthorizedError` (the caller decides whether to renew); GraphQL
    ``errors`` in a 200 are classified too (``THROTTLED``, disconnected app, schema errors).
    """
    name = operation_name(document)
    mutation = document.lstrip().startswith("mutation")
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    if graphql_version:
        headers[VERSION_HEADER] = graphql_version
    payload = {"query": document, "variables": dict(variables), "operationName": name}
    scrub = (*secrets, access_token)
    try:
        response = session.post(url, json=payload, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        # Never ambiguous when the connection did not open; a read timeout is, for a mutation.
        never_sent = isinstance(exc, requests.ConnectionError) and not isinstance(
            exc, requests.ReadTimeout
        )
        _LOG.warning("jobber %s: transport failure %s", name, type(exc).__name__)
        raise TransientProviderError(
            f"Jobber {name} failed: {type(exc).__name__}",
            provider=PROVIDER,
            ambiguous=mutation and not never_sent,
        ) from None
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if status >= 300:
        error = http_error(
            status,
            body,
            response.headers.get("Retry-After"),
            operation=name,
            ambiguous=mutation,
            secrets=scrub,
        )
        _LOG.info("jobber %s: HTTP %s (%s)", name, status, type(error).__name__)
        raise error
    if not isinstance(body, Mapping):
        raise TransientProviderError(
            f"Jobber {name} failed: HTTP {status} without a JSON body",
            provider=PROVIDER,
            status=status,
            ambiguous=mutation,
        )
    warning = _versioning_warning(body, graphql_version)
    if warning and on_warning is not None:
        on_warning(warning)
    if body.get("errors"):
        error = graphql_error(body, operation=name, ambiguous=mutation, secrets=scrub)
        _LOG.info("jobber %s: GraphQL error (%s)", name, type(error).__name__)
        raise error
    data = body.get("data")
    if not isinstance(data, dict):
        raise PermanentProviderError(f"Jobber {name} returned no data", provider=PROVIDER)
    return data


class JobberApi:
    """The GraphQL endpoint for one installation: tokens, version header, classified errors."""

    def __init__(
        self,
        *,
        session: requests.Session,
        graphql_url: str,
        graphql_version: str,
        timeout: tuple[float, float],
        tokens: TokenKeeper | None,
        client_secret: str,
    ) -> None:
        self.session = session
        self.graphql_url = graphql_url
        self.graphql_version = graphql_version
        self.timeout = timeout
        self.tokens = tokens
        self._client_secret = client_secret
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"<JobberApi {self.graphql_url} version={self.graphql_version}>"

    def _warn(self, warning: str) -> None:
        if warning not in self._warned:
            self._warned.add(warning)
            _LOG.warning("jobber: API version %s: %s", self.graphql_version, warning)

    def _post(self, token: str, document: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        return post_graphql(
            self.session,
            self.graphql_url,
            token,
            document,
            variables,
            graphql_version=self.graphql_version,
            timeout=self.timeout,
            secrets=(self._client_secret,),
            on_warning=self._warn,
        )

    def execute(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a query or mutation and return its ``data``."""
        if self.tokens is None:
            raise ConfigurationError(
                "Jobber needs an OAuth installation (connect the app first)", field="crm"
            )
        values = variables or {}
        token = self.tokens.access_token()
        try:
            try:
                return self._post(token, document, values)
            except UnauthorizedError:
                # Expired early or revoked: renew once (another worker may already have) and
                # send this request once more. A second 401 is final.
                renewed = self.tokens.renew_after_401(token)
                try:
                    return self._post(renewed, document, values)
                except UnauthorizedError as again:
                    raise ProviderAuthError(
                        str(again), provider=PROVIDER, status=again.status
                    ) from None
        except AppDisconnectedError:
            self.tokens.mark_disconnected("the Jobber account disconnected the app")
            raise

    def mutate(
        self, document: str, variables: Mapping[str, Any], root: str
    ) -> Mapping[str, Any]:
        """Run a mutation and return its payload ``data[root]``; ``userErrors`` raise."""
        data = self.execute(document, variables)
        payload = data.get(root)
        error = user_errors(
            payload if isinstance(payload, Mapping) else None,
            operation=operation_name(document),
            secrets=(self._client_secret,),
        )
        if error is not None:
            _LOG.info("jobber %s: userErrors", operation_name(document))
            raise error
        if not isinstance(payload, Mapping):
            raise PermanentProviderError(
                f"Jobber {operation_name(document)} returned no payload", provider=PROVIDER
            )
        return payload
