"""HTTP plumbing shared by adapters: the framework-free webhook request value, the outbound
``requests`` session, the reply value, and the generic status-code classification."""

from __future__ import annotations

import email.utils
import os
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import urllib3
from requests.utils import NETRC_FILES

from connector.kernel import clock
from connector.kernel.errors import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)

#: Connect and read timeouts for every outbound provider call, in seconds.
DEFAULT_TIMEOUT = (5.0, 15.0)
USER_AGENT = "textback-connector/0.1"


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only header mapping."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._data = {k.lower(): v for k, v in pairs}

    def __getitem__(self, key: str) -> str:
        return self._data[key.lower()]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        # Header names only: values may be signatures or tokens.
        return f"Headers({sorted(self._data)})"


@dataclass(frozen=True, repr=False)
class WebhookRequest:
    """A webhook as the provider sent it, independent of any web framework.

    ``url`` is the public URL the provider called (``TEXTBACK_PUBLIC_URL`` + path + query string,
    exactly as received), which is what providers sign. ``form_items`` keeps repeated form keys in
    order; ``form`` is the first value of each key.
    """

    method: str
    url: str
    headers: Headers
    body: bytes
    form_items: tuple[tuple[str, str], ...] = ()
    form: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(
        cls,
        *,
        method: str = "POST",
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> WebhookRequest:
        """Build a request, parsing a form-encoded body into ``form_items`` and ``form``."""
        hdrs = Headers(headers or {})
        items: tuple[tuple[str, str], ...] = ()
        ctype = hdrs.get("content-type", "")
        if body and (ctype.startswith("application/x-www-form-urlencoded") or not ctype):
            try:
                items = tuple(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                items = ()
        first: dict[str, str] = {}
        for k, v in items:
            first.setdefault(k, v)
        return cls(method.upper(), url, hdrs, body, items, MappingProxyType(first))

    @property
    def query(self) -> Mapping[str, str]:
        """The URL's query parameters (first value of each)."""
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    def __repr__(self) -> str:
        return f"WebhookRequest({self.method} {urlsplit(self.url).path}, {len(self.body)} bytes)"


@dataclass(frozen=True)
class WebhookReply:
    """What to answer the provider: a body, its content type and the status code."""

    body: bytes = field(default=b"", repr=False)  # may carry credentials (Bandwidth BXML)
    content_type: str = "text/plain"
    status: int = 200
    #: Extra response headers (RingCentral's subscription handshake echoes ``Validation-Token``).
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


def new_session() -> requests.Session:
    """A ``requests`` session with our user agent; callers pass ``timeout=DEFAULT_TIMEOUT``.

    ``requests`` reads the environment again at every request (proxies and ``no_proxy``, a CA
    bundle, a netrc file): scanning every environment variable each time costs about a tenth
    of a request's client CPU (``bench/outbound_request.py``). When the environment sets no
    proxy and no netrc file at the session's start, the session reads it once, here: the CA
    bundle it names becomes the session's ``verify``, and the session stops looking
    (``trust_env``), which changes no request. With a proxy or a netrc file the session keeps
    ``requests``' behaviour.
    """
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    if not _proxies_or_netrc():
        # What requests' merge_environment_settings would pick for every request.
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        session.trust_env = False
    return session


def _proxies_or_netrc() -> bool:
    """Whether the environment sets a proxy (``*_proxy``) or a netrc file, which ``requests``
    applies per request and per host."""
    if urllib.request.getproxies():
        return True
    named = os.environ.get("NETRC")
    places = [named] if named is not None else [f"~/{name}" for name in NETRC_FILES]
    return any(os.path.exists(os.path.expanduser(place)) for place in places)


def retry_after_seconds(value: str | None, default: float) -> float:
    """Parse a ``Retry-After`` header (seconds or an HTTP date); ``default`` when absent or bad."""
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(when.timestamp() - clock.timestamp(), 0.0)


def classify_status(
    provider: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    retry_after: str | None = None,
    default_wait: float = 1.0,
) -> ProviderError:
    """The generic mapping from an HTTP status to our error classes; adapters refine it first."""
    if status == 429:
        return RateLimitedError(
            message,
            provider=provider,
            code=code,
            status=status,
            retry_after=retry_after_seconds(retry_after, default_wait),
        )
    if status in (401, 403):
        return ProviderAuthError(message, provider=provider, code=code, status=status)
    if status >= 500:
        return TransientProviderError(
            message, provider=provider, code=code, status=status, ambiguous=True
        )
    return PermanentProviderError(message, provider=provider, code=code, status=status)


def never_reached_provider(exc: requests.RequestException) -> bool:
    """True only when the request certainly never left this machine.

    That is a connection that was never opened: refused, unreachable, a name that did not
    resolve, or a connect timeout. Everything else (a reset, "remote end closed connection
    without response", a read timeout, a broken TLS session) may have happened after the
    provider read the request, so it may have taken effect.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.ReadTimeout):
        return False
    cause: object = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the real failure
    return isinstance(cause, urllib3.exceptions.NewConnectionError)


def transport_error(provider: str, exc: requests.RequestException) -> TransientProviderError:
    """A connection or timeout failure; ambiguous unless the request never left this machine.

    An ambiguous failure is reconciled against the provider's records before anything is sent
    again: a text the carrier accepted just before the connection dropped must not go twice.
    """
    return TransientProviderError(
        f"{provider}: {type(exc).__name__}", provider=provider,
        ambiguous=not never_reached_provider(exc),
    )


class CachedToken:
    """An access token fetched on demand and reused until shortly before it expires.

    Thread-safe; shared by the threads that use one adapter. Subclasses implement
    :meth:`_fetch`, returning the token and its lifetime in seconds (OAuth2 ``expires_in``).
    """

    #: Renew this many seconds before the token expires.
    margin: float = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def _fetch(self) -> tuple[str, float]:
        raise NotImplementedError

    def get(self) -> str:
        """A valid access token, fetched when there is none or it is about to expire."""
        with self._lock:
            if self._token is not None and time.monotonic() < self._expires - self.margin:
                return self._token
            self._token, lifetime = self._fetch()
            self._expires = time.monotonic() + lifetime
            return self._token

    def invalidate(self) -> None:
        """Forget the token (the API refused it): the next call fetches a new one."""
        with self._lock:
            self._token = None


def json_object(response: requests.Response, provider: str, *, label: str = "",
                ambiguous: bool = False) -> dict[str, Any]:
    """The JSON object of a 2xx answer; a body that is not one is a
    :class:`TransientProviderError` (the provider answered, but not as its API documents).
    ``label`` opens the message (the provider and the operation); it defaults to ``provider``.
    ``ambiguous`` marks that error for a write that may have happened all the same."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise TransientProviderError(
            f"{label or provider}: HTTP {response.status_code} without a readable body",
            provider=provider, status=response.status_code, ambiguous=ambiguous,
        )
    return payload
