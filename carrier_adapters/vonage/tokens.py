"""Vonage's JSON Web Tokens, by hand: HS256 webhook signatures in, RS256 application tokens out.

Incoming: Voice and Messages webhooks carry ``Authorization: Bearer <JWT>``, HS256 under the
account's *signature secret*, with the claims ``iat``, ``jti``, ``iss`` ("Vonage"),
``api_key``, ``application_id`` and ``payload_hash`` (SHA-256 hex of the body).
https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks and
https://developer.vonage.com/en/messages/concepts/signed-webhooks

Outgoing: an application token is RS256 under the application's private key with the claims
``application_id``, ``iat``, ``jti`` and ``exp`` (Vonage's SDKs give it 15 minutes).
https://developer.vonage.com/en/getting-started/concepts/authentication#json-web-tokens

Written against :mod:`hmac` and ``cryptography`` rather than PyJWT so the runtime needs no
extra dependency; the tests cross-check both directions with PyJWT.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connector.core import clock, safe_json
from connector.core.errors import MalformedWebhookError, WebhookVerificationError
from connector.core.signing import constant_time_equals, require_fresh

#: Seconds an ``iat`` may lie either side of now. Vonage does not document a lifetime for its
#: webhook tokens; five minutes matches the other carriers and absorbs clock skew.
IAT_TOLERANCE = 300.0
#: Slack on ``exp``, should a token carry one.
EXP_LEEWAY = 60.0
#: Lifetime of the application tokens we mint (Vonage's SDKs use 15 minutes).
APPLICATION_TOKEN_TTL = 15 * 60

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(raw: bytes) -> str:
    """Base64url without padding, as JWTs spell it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url_encode`; ``ValueError`` on anything else."""
    if not _B64URL.match(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise WebhookVerificationError("vonage: Authorization bearer token missing")
    return token.strip()


def verify_hs256(token: str, secret: str) -> dict[str, Any]:
    """The claims of an HS256 token signed with ``secret``; raises on anything else.

    Only ``alg`` HS256 is accepted (never ``none``, never a public-key algorithm). The MAC over
    the raw header and claims is compared in constant time *before* either is decoded, so no
    JSON an outsider wrote is parsed; both are then parsed with the nesting cap of
    :mod:`connector.core.safe_json`.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL.match(part) for part in parts):
        raise WebhookVerificationError("vonage: bearer token is not a JWT")
    try:
        given = b64url_decode(parts[2])
    except ValueError:
        raise WebhookVerificationError("vonage: bearer token is not a JWT") from None
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    expected = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, given):
        raise WebhookVerificationError("vonage: token signature does not match")
    header = _json_part(parts[0], "header")
    if header.get("alg") != "HS256":
        raise WebhookVerificationError("vonage: token is not signed with HS256")
    return _json_part(parts[1], "claims")


def _json_part(part: str, name: str) -> dict[str, Any]:
    """A JWT header or claims object, parsed with the nesting cap once the MAC has matched.

    The MAC proved the part authentic, so one that cannot be read is a malformed webhook
    (400), not a forgery.
    """
    try:
        raw = b64url_decode(part)
    except ValueError:
        raise MalformedWebhookError(f"vonage: the token's {name} is not base64url") from None
    value = safe_json.loads(raw, what=f"vonage: the token's {name}")
    if not isinstance(value, dict):
        raise MalformedWebhookError(f"vonage: the token's {name} is not a JSON object")
    return value


def check_times(claims: Mapping[str, Any], *, now: float | None = None) -> None:
    """``iat`` must be within :data:`IAT_TOLERANCE` of now; ``exp``, if any, not passed."""
    current = clock.timestamp() if now is None else now
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise WebhookVerificationError("vonage: token has no iat")
    require_fresh(float(iat), tolerance=IAT_TOLERANCE, now=current)
    exp = claims.get("exp")
    if exp is not None:
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise WebhookVerificationError("vonage: token exp is not a time")
        if current > float(exp) + EXP_LEEWAY:
            raise WebhookVerificationError("vonage: token expired")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def payload_hash_matches(body: bytes, given: str) -> bool:
    """True when ``given`` is the SHA-256 hex of the body Vonage sent.

    The raw bytes decide first. Vonage's support article describes the hash as taken over the
    JSON re-serialized without whitespace in the received key order, so that spelling is
    accepted too (parsed strictly: a duplicate key fails). Both compares are constant time.
    https://api.support.vonage.com/hc/en-us/articles/19033783342876
    """
    wanted = given.strip().lower()
    if constant_time_equals(hashlib.sha256(body).hexdigest(), wanted):
        return True
    try:
        document = safe_json.loads(body, what="vonage: body", object_pairs_hook=_no_duplicate_keys)
    except MalformedWebhookError:
        return False
    compact = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return constant_time_equals(hashlib.sha256(compact).hexdigest(), wanted)


@functools.lru_cache(maxsize=16)
def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    """The application's RSA private key from its PEM text; ``ValueError`` otherwise.

    Cached: ``cryptography`` checks an RSA key's consistency on every load, which costs tens
    of milliseconds, and the credential schema and the adapter both load it.
    """
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        raise ValueError("not a PEM private key without a passphrase") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("Vonage application keys are RSA keys")
    return key


def application_token(
    application_id: str, private_key: rsa.RSAPrivateKey, *, now: float | None = None
) -> str:
    """A fresh RS256 application JWT for the ``Authorization: Bearer`` header."""
    issued = int(clock.timestamp() if now is None else now)
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {
        "application_id": application_id,
        "iat": issued,
        "jti": str(uuid.uuid4()),
        "exp": issued + APPLICATION_TOKEN_TTL,
    }
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = private_key.sign(
        signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{b64url_encode(signature)}"
