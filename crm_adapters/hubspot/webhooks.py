"""HubSpot request signature v3 for the webhooks HubSpot sends to ``/webhooks/crm/hubspot``.

``X-HubSpot-Signature-v3`` is base64(HMAC-SHA256(client_secret, method + URI + body + timestamp))
where the timestamp is ``X-HubSpot-Request-Timestamp`` in epoch milliseconds; requests older than
five minutes are rejected. The URI is the full https URL HubSpot called, with a few
percent-encoded characters decoded first, and the body is the raw bytes as received.
https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation
"""

from __future__ import annotations

import re

from connector.core import clock
from connector.core.errors import WebhookVerificationError
from connector.core.http import WebhookRequest
from connector.core.signing import constant_time_equals, hmac_base64, require_fresh

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
#: HubSpot's limit on a request's age.
MAX_AGE_SECONDS = 300.0

# HubSpot's validation guide says to decode these percent-escapes in the URI before hashing
# (HubSpot signs the decoded form). The list is its guide's table as third-party verifiers
# reproduce it; a URL without them (ours have none) is unaffected.
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def signed_uri(url: str) -> str:
    """The URI as HubSpot hashes it: ``url`` with the listed escapes decoded."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], url)


def signature_v3(client_secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """The expected ``X-HubSpot-Signature-v3`` value for a request."""
    message = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    return hmac_base64(client_secret, message)


def verify_v3(request: WebhookRequest, client_secret: str, *, now: float | None = None) -> None:
    """Raise :class:`WebhookVerificationError` unless ``request`` carries a valid v3 signature.

    Fails closed: no secret, a missing header, a malformed or stale timestamp all reject.
    """
    if not client_secret:
        raise WebhookVerificationError("hubspot: no client_secret configured for webhooks")
    given = request.headers.get(SIGNATURE_HEADER)
    stamp = request.headers.get(TIMESTAMP_HEADER)
    if not given or not stamp:
        raise WebhookVerificationError("hubspot: signature v3 headers missing")
    try:
        millis = int(stamp.strip())
    except ValueError:
        raise WebhookVerificationError("hubspot: malformed request timestamp") from None
    require_fresh(
        millis / 1000.0, tolerance=MAX_AGE_SECONDS, now=clock.timestamp() if now is None else now
    )
    expected = signature_v3(client_secret, request.method, request.url, request.body, stamp.strip())
    if not constant_time_equals(expected, given.strip()):
        raise WebhookVerificationError("hubspot: signature v3 does not match")
