"""Aircall's messaging API over ``requests``, with error classification.

One attempt per call and no retries here: the connector owns the single retry layer. Only the
HTTP status goes into exception messages (Aircall's ``{"error", "troubleshoot"}`` text may quote
the input).

References:

- Sending SMS with the Public API: the number is first configured for API messaging
  (``POST /v1/numbers/{id}/messages/configuration`` with a ``callbackUrl``), then
  ``POST /v1/numbers/{id}/messages/send``; the response is the message
  (``{id, status: "pending", direction, created_at, raw_digits, number, ...}``):
  https://developer.aircall.io/tutorials/sending-sms-messages-with-aircall-api and
  https://support.aircall.io/hc/en-gb/articles/20566418489757
- Basic auth with the API ID and token: https://developer.aircall.io/api-references/#basic-auth
- Rate limit (429; ``X-AircallApi-Reset`` holds the Unix time the window resets):
  https://developer.aircall.io/api-references/#rate-limiting
"""

from __future__ import annotations

from typing import Any

import requests

from carrier_adapters.errors import ErrorTable, request_api, request_json
from connector.kernel import clock
from connector.kernel.errors import TransientProviderError
from connector.kernel.events import DeliveryStatus, SendResult

from .webhooks import CARRIER, DELIVERY_STATUSES

#: Aircall counts requests per minute: without a reset header, wait a minute.
DEFAULT_RETRY_AFTER = 60.0
RESET_HEADER = "X-AircallApi-Reset"


def _retry_after(response: requests.Response) -> str | None:
    """``Retry-After`` if Aircall sent one, else seconds until ``X-AircallApi-Reset``."""
    if response.headers.get("Retry-After"):
        return response.headers["Retry-After"]
    try:
        wait = float(response.headers.get(RESET_HEADER, "")) - clock.timestamp()
    except ValueError:
        return None
    return f"{wait:.3f}" if wait > 0 else None


#: Aircall's errors carry no code of their own: the HTTP status decides.
ERRORS = ErrorTable(provider=CARRIER, retry_after=_retry_after, default_wait=DEFAULT_RETRY_AFTER)


class AircallRestClient:
    """``messages/send`` for one Aircall number, with Basic auth (never in ``repr``)."""

    def __init__(
        self, *, session: requests.Session, base_url: str, api_id: str, api_token: str, number_id: str
    ) -> None:
        self._session = session
        self._auth = (api_id, api_token)
        self.base_url = base_url
        self.send_url = f"{base_url}/v1/numbers/{number_id}/messages/send"

    def __repr__(self) -> str:
        return "<AircallRestClient>"

    def call_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request to ``path`` on the API and its JSON object."""
        return request_json(self._session, method, self.base_url + path, ERRORS,
                            auth=self._auth, **kwargs)

    def send_message(self, *, to: str, body: str) -> SendResult:
        """POST one text; a 2xx without a readable ``id`` is ambiguous."""
        response = request_api(self._session, "POST", self.send_url, ERRORS, auth=self._auth,
                               json={"to": to, "body": body})
        try:
            message: Any = response.json()
            if isinstance(message.get("message"), dict):  # tolerate a wrapped response
                message = message["message"]
            message_id = str(message.get("id") or "")
            if not message_id:
                raise ValueError("no message id")
        except (ValueError, AttributeError):
            # Aircall took the text (2xx) but we cannot tell its id: reconcile, never resend.
            raise TransientProviderError(
                f"aircall: HTTP {response.status_code} without a readable message id",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None
        return SendResult(
            message_id=message_id,
            status=DELIVERY_STATUSES.get(str(message.get("status") or ""), DeliveryStatus.UNKNOWN),
            raw=message,
        )
