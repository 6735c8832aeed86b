"""hubspot-api-client setup and the translation of its exceptions into :mod:`connector.kernel.errors`.

One :class:`HubSpotApi` per adapter instance holds the SDK's API objects (each owns a urllib3 pool,
so they are built once and reused), passes a timeout on every call and has urllib3 retries turned
off: the connector is the only retry layer.

Everything the SDK raises leaves through :meth:`HubSpotApi.translating` as a
:class:`~connector.kernel.errors.ProviderError`. Messages keep HubSpot's own text and ``correlationId``
(what HubSpot support asks for) but never the access token, the client secret or a full phone
number, and the SDK exception is not chained (its ``str`` embeds the raw response body).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Protocol
from urllib.parse import urlsplit

import hubspot
import urllib3
from hubspot.discovery.discovery_base import DiscoveryBase
from urllib3.util.retry import Retry

from connector.kernel.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from connector.kernel.http import retry_after_seconds
from connector.kernel.ratelimit import Budget, NoRateLimiter, RateLimiter, acquire
from connector.kernel.redact import redact

PROVIDER = "hubspot"

#: urllib3 retry policy that makes exactly one attempt. ``Retry(total=0)`` turns connect, read,
#: status and redirect retries off; the SDK hands it to every ``PoolManager`` it builds.
NO_RETRIES = Retry(total=0, raise_on_redirect=False, raise_on_status=False)

#: Seconds to wait after a 429 without ``Retry-After``, by the body's ``policyName``.
#: https://developers.hubspot.com/docs/api/usage-details
#: ``DAILY`` resets at midnight in the portal's own time zone, which we do not know: re-probe
#: hourly rather than park the work for a day (OAuth apps have no daily limit anyway).
POLICY_WAIT_SECONDS: Mapping[str, float] = {
    "TEN_SECONDLY_ROLLING": 10.0,
    "SECONDLY": 1.0,
    "DAILY": 3600.0,
}
DEFAULT_RATE_LIMIT_WAIT = 10.0
#: How much of HubSpot's error message an error keeps.
MAX_MESSAGE_CHARS = 300
#: Floor for any computed wait, so a ``Retry-After: 0`` never turns into a hot loop.
MIN_RATE_LIMIT_WAIT = 1.0

# HubSpot's 409 on a contact create names the record that already has the unique value, e.g.
# {"message": "Contact already exists. Existing ID: 37765128953", "category": "CONFLICT"}.
# https://github.com/HubSpot/hubspot-api-nodejs/issues/545 (the message format)
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")

_LOG = logging.getLogger(__name__)

#: HubSpot's limits per installed portal: about 100 requests per 10 s (the rate-limit headers
#: say how many are left), and search on its own at 5 per second, without headers.
#: https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details
REQUESTS_BUDGET = Budget("requests", 100, 10.0)
SEARCH_BUDGET = Budget("search", 5, 1.0)

# The generated SDK logs every response body at DEBUG ("response body: ..."), and bodies hold
# phone numbers and message texts. Keep its loggers at INFO or above unless
# the operator configured them explicitly.
_sdk_logger = logging.getLogger("hubspot")
if _sdk_logger.level == logging.NOTSET:
    _sdk_logger.setLevel(logging.INFO)


class HubSpotConflictError(PermanentProviderError):
    """HubSpot answered 409: the record exists; ``existing_id`` when HubSpot named it."""

    def __init__(self, message: str, *, existing_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.existing_id = existing_id


def _parse_body(body: Any) -> dict[str, Any]:
    """HubSpot's JSON error body as a dict; an empty dict for HTML pages and other surprises."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None:
        # urllib3's HTTPHeaderDict is case-insensitive; a plain dict from a test may not be.
        lowered = {str(k).lower(): v for k, v in dict(headers).items()}
        value = lowered.get(name.lower())
    return str(value) if value is not None else None


def rate_limit_wait(headers: Any, body: Mapping[str, Any]) -> float:
    """Seconds to wait after a 429: ``Retry-After`` when present, else from ``policyName``.

    HubSpot does not reliably send ``Retry-After``; its error body names the policy that tripped.
    https://developers.hubspot.com/docs/api/usage-details
    """
    policy = str(body.get("policyName") or "").upper()
    default = POLICY_WAIT_SECONDS.get(policy, DEFAULT_RATE_LIMIT_WAIT)
    wait = retry_after_seconds(_header(headers, "Retry-After"), default)
    return max(wait, MIN_RATE_LIMIT_WAIT)


def _missing_scopes(body: Mapping[str, Any]) -> list[str]:
    """Scope names a 403 ``MISSING_SCOPES`` body lists (in ``context`` or per error)."""
    found: list[str] = []
    contexts: list[Any] = [body.get("context")]
    contexts += [e.get("context") for e in body.get("errors") or [] if isinstance(e, dict)]
    for ctx in contexts:
        if not isinstance(ctx, dict):
            continue
        for key in ("requiredGranularScopes", "requiredScopes", "missingScopes"):
            for scope in ctx.get(key) or []:
                if isinstance(scope, str) and scope not in found:
                    found.append(scope)
    return found


def api_error(
    status: int,
    body: Any,
    headers: Any,
    *,
    operation: str,
    ambiguous: bool,
    secrets: Sequence[str] = (),
) -> ProviderError:
    """Classify one HubSpot error response.

    Statuses: https://developers.hubspot.com/docs/api-reference/error-handling
    """
    data = _parse_body(body)
    category = str(data.get("category") or data.get("errorType") or "") or None
    # Capped and redacted: validation messages can quote the values we sent, phone numbers
    # among them.
    raw_message = str(data.get("message") or "").strip()[:MAX_MESSAGE_CHARS] or f"HTTP {status}"
    correlation = data.get("correlationId")
    text = f"HubSpot {operation} failed ({status}"
    text += f" {category}): " if category else "): "
    text += redact(raw_message, secrets)
    if correlation:
        text += f" [correlationId {correlation}]"
    common: dict[str, Any] = {"provider": PROVIDER, "code": category, "status": status}

    if status == 429:
        return RateLimitedError(text, retry_after=rate_limit_wait(headers, data), **common)
    if status == 401:
        return ProviderAuthError(text, **common)
    if status == 403:
        # 403 is a missing scope or a feature outside the portal's tier, not a revoked install.
        scopes = _missing_scopes(data)
        if scopes or category == "MISSING_SCOPES" or "scope" in raw_message.lower():
            needed = ", ".join(scopes) if scopes else "see the HubSpot app settings"
            text += f" (missing scopes: {needed}; reinstall the app with them)"
        return PermanentProviderError(text, **common)
    if status == 409:
        match = _EXISTING_ID.search(raw_message)
        return HubSpotConflictError(text, existing_id=match.group(1) if match else None, **common)
    if status == 423 or status >= 500:
        # 423: record locked during an import or merge; 5xx: HubSpot's side. Both pass.
        return TransientProviderError(text, ambiguous=ambiguous and status >= 500, **common)
    return PermanentProviderError(text, **common)


def transport_error(
    exc: BaseException, *, operation: str, ambiguous: bool
) -> TransientProviderError:
    """A timeout or connection failure from urllib3.

    A failure while connecting means the request never left, so it is never ambiguous; a read
    timeout or a dropped connection after sending is ambiguous for writes (``ambiguous``).
    """
    reason: BaseException = getattr(exc, "reason", None) or exc
    never_sent = isinstance(
        reason, urllib3.exceptions.ConnectTimeoutError | urllib3.exceptions.NewConnectionError
    )
    return TransientProviderError(
        f"HubSpot {operation} failed: {type(reason).__name__}",
        provider=PROVIDER,
        ambiguous=ambiguous and not never_sent,
    )


class TokenSource(Protocol):
    """Where an OAuth install's requests get their access token (a
    :class:`~crm_adapters.oauth_tokens.TokenKeeper`)."""

    def access_token(self) -> str:
        """A token valid for a while yet."""

    def renew_after_401(self, rejected: str) -> str:
        """The CRM refused ``rejected``: renew once (unless another worker already did)."""

    def current_secrets(self) -> tuple[str, ...]:
        """The stored token values, to scrub from messages."""


def _api_exception_classes() -> tuple[type[BaseException], ...]:
    # Every SDK sub-package generates its own ApiException (NotFoundException, ServiceException
    # ... subclass it); collect those of the packages this adapter calls.
    from hubspot.crm.contacts import exceptions as contacts
    from hubspot.crm.deals import exceptions as deals
    from hubspot.crm.objects.calls import exceptions as calls
    from hubspot.crm.objects.communications import exceptions as communications
    from hubspot.crm.objects.tasks import exceptions as tasks
    from hubspot.crm.properties import exceptions as properties

    modules = (contacts, deals, calls, communications, tasks, properties)
    return tuple(m.ApiException for m in modules)


_API_EXCEPTIONS = _api_exception_classes()


class HubSpotApi:
    """The SDK API objects one adapter uses, built lazily, sharing one configuration.

    ``timeout`` is ``(connect, read)`` seconds and goes on every call as ``_request_timeout``.
    """

    def __init__(
        self,
        access_token: str | TokenSource,
        *,
        host: str,
        timeout: tuple[float, float],
        secrets: Sequence[str] = (),
        rate_limiter: RateLimiter | None = None,
        rate_limit_key: str = "",
    ) -> None:
        if isinstance(access_token, str):
            self._client = hubspot.HubSpot(access_token=access_token, host=host,
                                           retry=NO_RETRIES)
            self._source: TokenSource | None = None
        else:
            # An OAuth install: every request asks the source for the current token (renewed
            # under the installation's lock when due), through each SDK client's configuration.
            self._client = hubspot.HubSpot(access_token="", host=host, retry=NO_RETRIES,
                                           api_factory=self._api_factory)
            self._source = access_token
        self.timeout = timeout
        self._static_secrets = tuple(s for s in secrets if s)
        self._limiter = rate_limiter or NoRateLimiter()
        self._limit_key = rate_limit_key

    def _metered(self, api: Any) -> Any:
        """``api`` with its requests drawing on the portal's shared budget."""
        rest = api.api_client.rest_client
        if not isinstance(rest.pool_manager, MeteredPool):
            rest.pool_manager = MeteredPool(rest.pool_manager, self._limiter, self._limit_key)
        return api

    @property
    def _secrets(self) -> tuple[str, ...]:
        """What error messages must never show: the credentials given and the current tokens."""
        current = self._source.current_secrets() if self._source is not None else ()
        return self._static_secrets + current

    def _api_factory(self, package: Any, api_name: str, config: Mapping[str, Any]) -> Any:
        # The SDK's own factory builds the client; only its auth settings become a callable.
        api = DiscoveryBase._default_api_factory(package, api_name, dict(config))
        source = self._source
        assert source is not None  # noqa: S101 - only OAuth clients use this factory

        def auth_settings() -> dict[str, Any]:
            return {"oauth2": {"type": "oauth2", "in": "header", "key": "Authorization",
                               "value": f"Bearer {source.access_token()}"}}

        api.api_client.configuration.auth_settings = auth_settings
        return api

    def __repr__(self) -> str:
        return "<HubSpotApi>"

    @cached_property
    def contacts_search(self) -> Any:
        """``hubspot.crm.contacts.SearchApi``."""
        return self._metered(self._client.crm.contacts.search_api)

    @cached_property
    def contacts_batch(self) -> Any:
        """``hubspot.crm.contacts.BatchApi`` (upsert, read by unique property)."""
        return self._metered(self._client.crm.contacts.batch_api)

    @cached_property
    def contacts_basic(self) -> Any:
        """``hubspot.crm.contacts.BasicApi`` (update one contact)."""
        return self._metered(self._client.crm.contacts.basic_api)

    @cached_property
    def properties(self) -> Any:
        """``hubspot.crm.properties.CoreApi``."""
        return self._metered(self._client.crm.properties.core_api)

    @cached_property
    def calls(self) -> Any:
        """``hubspot.crm.objects.calls.BasicApi``."""
        return self._metered(self._client.crm.objects.calls.basic_api)

    @cached_property
    def calls_search(self) -> Any:
        """``hubspot.crm.objects.calls.SearchApi``."""
        return self._metered(self._client.crm.objects.calls.search_api)

    @cached_property
    def communications_search(self) -> Any:
        """``hubspot.crm.objects.communications.SearchApi``."""
        return self._metered(self._client.crm.objects.communications.search_api)

    @cached_property
    def deals_search(self) -> Any:
        """``hubspot.crm.deals.SearchApi``."""
        return self._metered(self._client.crm.deals.search_api)

    @cached_property
    def communications(self) -> Any:
        """``hubspot.crm.objects.communications.BasicApi``."""
        return self._metered(self._client.crm.objects.communications.basic_api)

    @cached_property
    def tasks(self) -> Any:
        """``hubspot.crm.objects.tasks.BasicApi``."""
        return self._metered(self._client.crm.objects.tasks.basic_api)

    @cached_property
    def tasks_search(self) -> Any:
        """``hubspot.crm.objects.tasks.SearchApi``."""
        return self._metered(self._client.crm.objects.tasks.search_api)

    @cached_property
    def deals(self) -> Any:
        """``hubspot.crm.deals.BasicApi``."""
        return self._metered(self._client.crm.deals.basic_api)

    @contextmanager
    def translating(self, operation: str, *, ambiguous: bool) -> Iterator[None]:
        """Turn whatever the SDK raises inside the block into a :class:`ProviderError`.

        ``ambiguous`` says whether the call may have taken effect when the answer was lost
        (true for creates that HubSpot would not de-duplicate).
        """
        try:
            yield
        except urllib3.exceptions.HTTPError as exc:
            error: ProviderError = transport_error(exc, operation=operation, ambiguous=ambiguous)
            _LOG.warning("hubspot %s: transport failure %s", operation, type(exc).__name__)
            raise error from None
        except _API_EXCEPTIONS as exc:
            status = int(getattr(exc, "status", 0) or 0)
            if status == 0:
                # The SDK reports TLS failures as ApiException(status=0).
                error = TransientProviderError(
                    f"HubSpot {operation} failed: connection error",
                    provider=PROVIDER,
                    ambiguous=False,
                )
            else:
                error = api_error(
                    status,
                    getattr(exc, "body", None),
                    getattr(exc, "headers", None),
                    operation=operation,
                    ambiguous=ambiguous,
                    secrets=self._secrets,
                )
            _LOG.info("hubspot %s: HTTP %s (%s)", operation, status, type(error).__name__)
            if status == 401 and self._source is not None:
                error = self._after_refusal(operation, error)
            raise error from None

    def _after_refusal(self, operation: str, refused: ProviderError) -> ProviderError:
        """An install's access token was refused before its expiry (revoked, or the app was
        uninstalled): renew it once, so an uninstall is found at once (the refresh is refused
        and the installation marked disconnected), and a revoked token is replaced before the
        job tries again. HubSpot renews on expiry, not on a 401, but one renewal here costs
        little.
        https://developers.hubspot.com/docs/api-reference/latest/authentication/manage-oauth-tokens
        """
        assert self._source is not None  # noqa: S101 - only install clients get here
        try:
            self._source.renew_after_401(self._source.access_token())
        except ProviderError as exc:
            return exc  # refused for good (disconnected) or HubSpot unreachable
        return TransientProviderError(
            f"HubSpot {operation}: the access token was refused and has been renewed; try again",
            provider=PROVIDER, code=refused.code, status=401, ambiguous=False)


class MeteredPool:
    """The urllib3 pool of one SDK API object, every request taken from the portal's budget.

    Before sending: wait for the budget (search has its own), or raise ``RateLimitedError`` when
    the wait would be long. After: a 429 holds the budget for HubSpot's wait; otherwise
    ``X-HubSpot-RateLimit-Remaining``, when present, caps what the budget counts on.
    """

    def __init__(self, pool: Any, limiter: RateLimiter, key: str) -> None:
        self._pool = pool
        self._limiter = limiter
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send one request within the budget and tell the limiter what HubSpot answered."""
        budget = SEARCH_BUDGET if urlsplit(url).path.endswith("/search") else REQUESTS_BUDGET
        bucket = f"{PROVIDER}-{budget.name}:{self._key}"
        acquire(self._limiter, bucket, budget, provider=PROVIDER)
        response = self._pool.request(method, url, *args, **kwargs)
        if response.status == 429:
            wait = rate_limit_wait(response.headers, _parse_body(response.data))
            self._limiter.hold(bucket, budget, wait)
            _LOG.warning("hubspot answered 429; holding its %s budget for %.0f s",
                         budget.name, wait)
            return response
        remaining = _header(response.headers, "X-HubSpot-RateLimit-Remaining")
        # Only a count below what the bucket can hold changes anything: skip the write otherwise.
        if remaining is not None and remaining.strip().isdigit() and \
                float(remaining) < budget.capacity:
            self._limiter.observe(bucket, budget, float(remaining))
        return response
