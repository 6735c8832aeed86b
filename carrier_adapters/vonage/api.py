"""Vonage's Messages API (``POST /v1/messages``) over ``requests``, with error classification.

One attempt per call, no retries here: the connector owns the single retry layer. Exception
messages carry the HTTP status and Vonage's error code only, never the ``detail`` text, the
request body or credentials.

References:

- Send a message, ``POST https://api.nexmo.com/v1/messages``, answered ``202
  {"message_uuid"}``: https://developer.vonage.com/en/messages/overview
- Authentication: an application JWT (application id and private key, the application's
  webhooks) or Basic with the API key and secret (account-level webhooks); the account's
  "API type" must be Messages API:
  https://developer.vonage.com/en/messages/guides/sms-migration-to-messages
- Errors are RFC 7807 (``type``, ``title``, ``detail``, ``instance``), the code in the
  ``type`` URL's fragment: https://developer.vonage.com/en/api-errors/messages and
  https://developer.vonage.com/en/api-errors
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

from carrier_adapters.errors import ErrorTable, request_api
from connector.kernel.errors import (
    TransientProviderError,
)
from connector.kernel.events import DeliveryStatus, SendResult

from .webhooks import CARRIER, error_code

MESSAGES_PATH = "/v1/messages"

#: Messages API codes meaning this recipient cannot be texted; the value is
#: :attr:`RecipientRejectedError.reason`. ``1050`` "Number barred: the number you are trying
#: to submit to is blacklisted" is where Vonage keeps numbers that opted out; ``1040`` "Invalid
#: message: for example, due to an unrecognised prefix for the phone number".
RECIPIENT_REJECTIONS: Mapping[str, str] = {
    "1050": "opted_out",
    "1040": "invalid",
}
#: Wait when a 429 comes without ``Retry-After``.
DEFAULT_RETRY_AFTER = 1.0
#: Messages API errors are RFC 7807 documents; the code is the ``type`` URL's fragment
#: (:func:`.webhooks.error_code`). A 402 (low balance) is permanent until someone tops the
#: account up.
ERRORS = ErrorTable(
    provider=CARRIER,
    code=error_code,
    recipient=RECIPIENT_REJECTIONS,
    auth=frozenset({"unauthorized"}),  # the generic RFC 7807 code for refused credentials
    #: ``1000`` "Throttled: you have exceeded the submission capacity allowed on this account".
    rate_limited=frozenset({"1000"}),
    default_wait=DEFAULT_RETRY_AFTER,
)


class VonageRestClient:
    """The one Messages call the adapter makes.

    ``authorization`` returns the ``Authorization`` header value for each request (a fresh
    application JWT, or Basic); nothing secret shows in ``repr``.
    """

    def __init__(
        self, *, session: requests.Session, base_url: str, authorization: Callable[[], str]
    ) -> None:
        self._session = session
        self._authorization = authorization
        self.messages_url = f"{base_url}{MESSAGES_PATH}"

    def __repr__(self) -> str:
        return f"<VonageRestClient {self.messages_url}>"

    def send_message(self, body: Mapping[str, Any]) -> SendResult:
        """POST one message. The answer is ``202 {"message_uuid"}``: the text is queued; a 2xx
        without a readable id is an ambiguous failure (reconcile, never resend)."""
        headers = {"Authorization": self._authorization(), "Accept": "application/json"}
        response = request_api(self._session, "POST", self.messages_url, ERRORS, headers=headers,
                               json=dict(body))
        try:
            payload = response.json()
            message_id = payload["message_uuid"]
            if not isinstance(message_id, str) or not message_id:
                raise TypeError("message_uuid")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TransientProviderError(
                f"vonage: HTTP {response.status_code} without a readable message_uuid",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None
        return SendResult(message_id=message_id, status=DeliveryStatus.QUEUED, raw=dict(payload))
