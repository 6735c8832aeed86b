"""The call context we hand Vonage in the ``connect`` action's ``eventUrl``.

The events of the forwarded leg (``unanswered``, ``busy`` ...) describe that leg: ``from`` is
the number we dialled from (the business number) and ``to`` the forwarding target. The caller
is not in them, and the adapter keeps no state. So the NCCO that forwards the call puts the
caller, the number they called and the caller's leg id in the ``eventUrl``, sealed with Fernet
(AES-128-CBC plus HMAC-SHA256, from ``cryptography``) under a key derived from the signature
secret:

- sealed, so no phone number appears in the URL, in Vonage's logs or in our access logs;
- authenticated, because Vonage's JWT covers the body but not the URL: a token we did not make
  fails verification (403) like a bad signature.

https://developer.vonage.com/en/voice/voice-api/ncco-reference#connect
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connector.kernel.errors import WebhookVerificationError
from connector.kernel.http import WebhookRequest

#: Query parameter that carries the sealed context.
PARAM = "tb_ctx"
#: How long a sealed context is honoured: a call, its longest connect (two hours) and Vonage's
#: retries fit well inside a day.
TTL_SECONDS = 24 * 3600
_INFO = b"textback/vonage/call-context/v1"


@dataclass(frozen=True, repr=False)
class CallContext:
    """Who called which number, and the caller's leg (``uuid`` of the answer webhook)."""

    caller: str
    called: str
    leg: str

    def __repr__(self) -> str:
        return f"CallContext(leg={self.leg!r})"


def _fernet(signature_secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        signature_secret.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(context: CallContext, signature_secret: str) -> str:
    """The context as an opaque, authenticated token."""
    plain = json.dumps(
        {"c": context.caller, "d": context.called, "u": context.leg}, separators=(",", ":")
    )
    return _fernet(signature_secret).encrypt(plain.encode("utf-8")).decode("ascii")


def open_sealed(token: str, signature_secret: str) -> CallContext:
    """The context in ``token``; :class:`WebhookVerificationError` when we did not seal it
    (or sealed it more than :data:`TTL_SECONDS` ago)."""
    try:
        plain = _fernet(signature_secret).decrypt(token.encode("ascii"), ttl=TTL_SECONDS)
        data = json.loads(plain)
    except (InvalidToken, ValueError, UnicodeError):
        raise WebhookVerificationError("vonage: call context in the URL is not ours") from None
    if not isinstance(data, dict):
        raise WebhookVerificationError("vonage: call context in the URL is not ours")
    return CallContext(
        caller=str(data.get("c") or ""), called=str(data.get("d") or ""),
        leg=str(data.get("u") or ""),
    )


def with_context(url: str, token: str) -> str:
    """``url`` with the sealed context added to its query string."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), (PARAM, token)])
    return urlunsplit(parts._replace(query=query))


def from_request(request: WebhookRequest, signature_secret: str) -> CallContext | None:
    """The context in the request URL, None when there is none; raises when it is forged."""
    query: Mapping[str, str] = request.query
    token = query.get(PARAM)
    if token is None:
        return None
    return open_sealed(token, signature_secret)
