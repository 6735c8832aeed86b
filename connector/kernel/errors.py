"""The connector's error tree.

Webhook views map these to HTTP answers; the workflow maps them to retry decisions. Adapters raise
only these, so nothing provider-specific leaks past the adapter boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""


class WebhookVerificationError(ConnectorError):
    """The webhook's signature, token or timestamp did not check out: answer 403."""


class MalformedWebhookError(ConnectorError):
    """The webhook was authentic but its payload cannot be understood: answer 400."""


class UnsupportedEventError(ConnectorError):
    """An authentic event we do not act on: answer 200 and ignore it."""


class ProviderError(ConnectorError):
    """A call to a carrier or CRM failed.

    ``provider`` names the adapter, ``code`` carries the provider's own error code when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.code = code
        self.status = status


class TransientProviderError(ProviderError):
    """Worth retrying later: timeouts, 5xx, throttling.

    ``ambiguous`` is true when the request may have taken effect (a timeout or 5xx after the body
    was sent): a text send in that state is reconciled, never blindly re-sent.
    """

    def __init__(
        self,
        message: str,
        *,
        ambiguous: bool = False,
        provider: str = "",
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, provider=provider, code=code, status=status)
        self.ambiguous = ambiguous


class ProviderUnreachableError(TransientProviderError):
    """A check could not reach the provider (no connection, a timeout, its 5xx): the credentials
    were neither accepted nor refused, so the check says to try again rather than to fix them."""


class RateLimitedError(TransientProviderError):
    """The provider throttled us; ``retry_after`` is the wait in seconds it asked for or we computed."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        provider: str = "",
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, provider=provider, code=code, status=status)
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    """The credentials were refused: mark the installation as needing re-authorisation, no retry."""


class CredentialsRejectedError(ProviderAuthError):
    """A credentials check (setup, "test connection") found the credentials refused.

    The message says what to fix in the provider's own words for the setting (which key, which
    token); nothing should be stored. Raised by ``check_credentials`` and ``check_connection``.
    """


class PermanentProviderError(ProviderError):
    """The provider refused the request for good: record it, no retry."""


class RecipientRejectedError(PermanentProviderError):
    """The recipient cannot be texted: ``reason`` is ``opted_out``, ``not_mobile`` or ``invalid``."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        provider: str = "",
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, provider=provider, code=code, status=status)
        self.reason = reason


class ConfigurationError(Exception):
    """A setting or account field is wrong; ``field`` names what to fix. Outside the tree on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@contextmanager
def checking_credentials(provider: str, hint: str) -> Iterator[None]:
    """Run a credentials check, turning the provider's answer into what the person at the setup
    page must do.

    Refused credentials (:class:`ProviderAuthError`: HTTP 401 or 403, the provider's "bad key"
    codes) leave as :class:`CredentialsRejectedError` naming ``hint`` (which setting to fix);
    a provider that could not be reached, timed out or failed on its side leaves as
    :class:`ProviderUnreachableError`. Throttling and other errors pass unchanged.
    ``provider`` is the display name used in the messages.
    """
    try:
        yield
    except CredentialsRejectedError:
        raise
    except ProviderAuthError as exc:
        status = f" (HTTP {exc.status})" if exc.status else ""
        raise CredentialsRejectedError(
            f"{provider} refused the credentials{status}: {hint}",
            provider=exc.provider, code=exc.code, status=exc.status,
        ) from None
    except RateLimitedError:
        raise
    except TransientProviderError as exc:
        status = f"HTTP {exc.status}" if exc.status else "no answer"
        raise ProviderUnreachableError(
            f"{provider} could not be reached ({status}); nothing was changed, try again shortly",
            provider=exc.provider, code=exc.code, status=exc.status,
        ) from None
