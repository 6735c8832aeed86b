"""JSON Web Tokens for the carriers, on PyJWT: HS256 webhook tokens in, RS256 tokens out.

Vonage signs its webhooks with an HS256 token in ``Authorization: Bearer`` and takes an RS256
application token on its API; Dialpad's webhook body *is* an HS256 token. The checks the
connector needs are stricter than a plain :func:`jwt.decode`, so :func:`verify_hs256` runs them
in this order:

1. the token's shape: three base64url parts, the signature in its one canonical spelling (its
   last character has spare bits, and a signature must not be variable without breaking it);
2. the MAC over the raw ``header.claims`` text, with PyJWT's HS256 in constant time, *before*
   either part is decoded: no JSON an outsider wrote is ever parsed;
3. only ``alg`` HS256 (never ``none``, never a public-key algorithm), both parts parsed with the
   nesting cap of :mod:`connector.kernel.safe_json` (an authentic part that cannot be read is a
   malformed webhook, a 400, not a forgery);
4. the required claims (``iat``, and ``exp`` where the carrier promises it) present and numbers,
   ``iat`` within a tolerance of now and ``exp`` not past (with leeway), now being
   :func:`connector.kernel.clock.timestamp`, the program's one clock.

PyJWT reference: https://pyjwt.readthedocs.io/en/stable/api.html
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_decode, base64url_encode

from connector.kernel import clock, safe_json
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
from connector.kernel.signing import require_fresh

#: Seconds an ``iat`` may lie either side of now: five minutes absorbs clock skew.
IAT_TOLERANCE = 300.0
#: Slack on ``exp`` for clock skew.
EXP_LEEWAY = 60.0

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)


def b64url_encode(raw: bytes) -> str:
    """Base64url without padding, as JWTs spell it."""
    return base64url_encode(raw).decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url_encode`; ``ValueError`` on anything else."""
    if not _B64URL.match(text):
        raise ValueError("not base64url")
    try:
        return base64url_decode(text)
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def _json_part(part: str, name: str) -> dict[str, Any]:
    """A header or claims object, parsed with the nesting cap once the MAC has matched."""
    try:
        raw = b64url_decode(part)
    except ValueError:
        raise MalformedWebhookError(f"{name} is not base64url") from None
    value = safe_json.loads(raw, what=name)
    if not isinstance(value, dict):
        raise MalformedWebhookError(f"{name} is not a JSON object")
    return value


def check_times(
    claims: Mapping[str, Any],
    *,
    what: str,
    required: Iterable[str] = ("iat", "exp"),
    now: float | None = None,
) -> None:
    """The ``required`` time claims are there and numbers; ``iat`` is within
    :data:`IAT_TOLERANCE` of now and ``exp`` (required or not, when present) not past."""
    current = clock.timestamp() if now is None else now
    for name in ("iat", "exp"):
        value = claims.get(name)
        if value is None:
            if name in required:
                raise WebhookVerificationError(f"{what} has no {name}")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WebhookVerificationError(f"{what} {name} is not a time")
    if "iat" in claims:
        require_fresh(float(claims["iat"]), tolerance=IAT_TOLERANCE, now=current)
    if "exp" in claims and current > float(claims["exp"]) + EXP_LEEWAY:
        raise WebhookVerificationError(f"{what} expired")


def verify_hs256(
    token: str,
    secret: str,
    *,
    what: str,
    required: Iterable[str] = ("iat", "exp"),
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of an HS256 ``token`` signed with ``secret``, checked as the module docstring
    says; ``what`` names the token in errors (``"dialpad: JWT"``). Raises
    :class:`WebhookVerificationError` for a forgery, a stale or expired token,
    :class:`MalformedWebhookError` for an authentic one that cannot be read."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL.match(part) for part in parts):
        raise WebhookVerificationError(f"{what} is not a JWT")
    try:
        given = b64url_decode(parts[2])
    except ValueError:
        raise WebhookVerificationError(f"{what} is not a JWT") from None
    if b64url_encode(given) != parts[2]:
        raise WebhookVerificationError(f"{what} signature is not canonical base64url")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not _HS256.verify(signing_input, secret.encode("utf-8"), given):
        raise WebhookVerificationError(f"{what} signature does not match")
    header = _json_part(parts[0], f"{what} header")
    if header.get("alg") != "HS256":
        raise WebhookVerificationError(f"{what} is not signed with HS256")
    claims = _json_part(parts[1], f"{what} claims")
    check_times(claims, what=what, required=required, now=now)
    return claims


def sign_rs256(claims: Mapping[str, Any], private_key: rsa.RSAPrivateKey) -> str:
    """A compact RS256 token carrying ``claims`` (header ``{"alg": "RS256", "typ": "JWT"}``)."""
    return jwt.encode(dict(claims), private_key, algorithm="RS256")
