"""Vonage's JSON Web Tokens: HS256 webhook signatures in, RS256 application tokens out.

Incoming: Voice and Messages webhooks carry ``Authorization: Bearer <JWT>``, HS256 under the
account's *signature secret*, with the claims ``iat``, ``jti``, ``iss`` ("Vonage"),
``api_key``, ``application_id`` and ``payload_hash`` (SHA-256 hex of the body).
https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks and
https://developer.vonage.com/en/messages/concepts/signed-webhooks

Outgoing: an application token is RS256 under the application's private key with the claims
``application_id``, ``iat``, ``jti`` and ``exp`` (Vonage's SDKs give it 15 minutes).
https://developer.vonage.com/en/getting-started/concepts/authentication#json-web-tokens

Both go through :mod:`carrier_adapters.jwt_tokens` (PyJWT), which checks the MAC before it
decodes anything and reads the time from :mod:`connector.kernel.clock`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from carrier_adapters import jwt_tokens
from connector.kernel import clock, safe_json
from connector.kernel.errors import MalformedWebhookError, WebhookVerificationError
from connector.kernel.signing import constant_time_equals

#: Lifetime of the application tokens we mint (Vonage's SDKs use 15 minutes).
APPLICATION_TOKEN_TTL = 15 * 60

def verify_hs256(token: str, secret: str, *, now: float | None = None) -> dict[str, Any]:
    """The claims of a webhook token signed with the signature secret; raises on anything else.

    ``iat`` is required and must be within five minutes of now (Vonage documents no lifetime
    for its webhook tokens; five minutes matches the other carriers); ``exp``, should a token
    carry one, must not be past.
    """
    return jwt_tokens.verify_hs256(
        token, secret, what="vonage: bearer token", required=("iat",), now=now
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise WebhookVerificationError("vonage: Authorization bearer token missing")
    return token.strip()


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
    claims = {
        "application_id": application_id,
        "iat": issued,
        "jti": str(uuid.uuid4()),
        "exp": issued + APPLICATION_TOKEN_TTL,
    }
    return jwt_tokens.sign_rs256(claims, private_key)
