"""Constant-time signature helpers shared by the carrier and CRM adapters."""

from __future__ import annotations

import base64
import hashlib
import hmac

from connector.kernel import clock
from connector.kernel.errors import WebhookVerificationError


def constant_time_equals(expected: str | bytes, given: str | bytes | None) -> bool:
    """Compare two secrets in constant time; a missing value never matches."""
    if given is None:
        return False
    a = expected.encode() if isinstance(expected, str) else expected
    b = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(a, b)


def hmac_base64(key: str | bytes, message: bytes, digest: str = "sha256") -> str:
    """Base64 of HMAC(key, message) with the named hash."""
    k = key.encode() if isinstance(key, str) else key
    return base64.b64encode(hmac.new(k, message, getattr(hashlib, digest)).digest()).decode()


def hmac_hex(key: str | bytes, message: bytes, digest: str = "sha256") -> str:
    """Hex of HMAC(key, message) with the named hash."""
    k = key.encode() if isinstance(key, str) else key
    return hmac.new(k, message, getattr(hashlib, digest)).hexdigest()


def require_fresh(timestamp: float, *, tolerance: float = 300.0, now: float | None = None) -> None:
    """Raise WebhookVerificationError when ``timestamp`` (Unix seconds) is outside the tolerance."""
    current = clock.timestamp() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook timestamp outside the allowed window")
