"""Jobber's access tokens: JWTs whose claims say when they expire and whose account they are.

With Refresh Token Rotation on (required for the App Marketplace) every refresh returns a new
refresh token and invalidates the one sent; for apps created after 2024-01-02 the old one stops
working at once, so two workers refreshing with one token log the installation out. Renewal is
the shared :class:`~crm_adapters.oauth_tokens.TokenKeeper`'s, under the installation's lock.
https://developer.getjobber.com/docs/building_your_app/refresh_token_rotation

The access token is a JWT whose ``exp`` claim is its expiry (about 60 minutes); we read it without
verifying the signature (only Jobber can) and renew :data:`REFRESH_SKEW_SECONDS` early.
https://developer.getjobber.com/docs/building_your_app/app_authorization#step-4-application-requests-access-token
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jwt

from crm_adapters.base import OAuthTokens

#: Renew when the access token has less than this many seconds left.
REFRESH_SKEW_SECONDS = 60.0


def jwt_claims(token: str) -> Mapping[str, Any]:
    """The payload of a JWT, unverified; an empty mapping when ``token`` is not a JWT.

    Only Jobber holds the key its tokens are signed with, and the token came straight from its
    token endpoint, so the signature is not checked, and neither are the claims (an expired
    token still says when it expired).
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def jwt_expiry(token: str) -> datetime | None:
    """When a JWT access token expires (its ``exp`` claim), or None when it carries none."""
    exp = jwt_claims(token).get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return datetime.fromtimestamp(float(exp), tz=UTC)


def expires_at(tokens: OAuthTokens) -> datetime | None:
    """The access token's expiry: the JWT's ``exp``, else what the store recorded."""
    return jwt_expiry(tokens.access_token) or tokens.expires_at
