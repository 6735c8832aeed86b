"""Encryption of stored credentials with a key derived from ``TEXTBACK_SECRET_KEY``."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connector.kernel.errors import ConfigurationError

_INFO = b"textback stored credentials v1"


class CredentialBox:
    """Encrypts and decrypts credential dicts (Fernet: AES-128-CBC with HMAC-SHA256)."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"textback", info=_INFO
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def __repr__(self) -> str:
        return "CredentialBox(<key hidden>)"

    def seal(self, credentials: dict[str, Any]) -> str:
        """Encrypt a credential dict to a token safe to store."""
        return self._fernet.encrypt(json.dumps(credentials, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        """Decrypt a stored token; a wrong key is a configuration error, not a crash."""
        try:
            return json.loads(self._fernet.decrypt(token.encode()))  # type: ignore[no-any-return]
        except InvalidToken:
            raise ConfigurationError(
                "stored credentials cannot be decrypted: TEXTBACK_SECRET_KEY differs from the "
                "key they were stored with",
                field="TEXTBACK_SECRET_KEY",
            ) from None
