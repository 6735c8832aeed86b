"""Dialpad's SMS API over ``requests``, with error classification.

One attempt per call and no retries here: the connector owns the single retry layer. Only the
HTTP status goes into exception messages (Dialpad's error text may quote the numbers).

References:

- Send SMS (``POST https://dialpad.com/api/v2/sms``, "on behalf of a user"; rate limit 100 a
  minute on tier 0): https://developers.dialpad.com/reference/smssend
- Authentication (``Authorization: Bearer <API key>``):
  https://developers.dialpad.com/docs/authentication-basics
- The request fields ``to_numbers``, ``text``, ``user_id``/``sender_group_id`` +
  ``sender_group_type``, ``from_number``, ``infer_country_code`` and the response's ``id`` and
  ``message_status`` are from the API reference's schema (*inferred*: the page was only seen in
  excerpts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from carrier_adapters.errors import ErrorTable, request_api, request_json
from connector.kernel.errors import TransientProviderError
from connector.kernel.events import DeliveryStatus, SendResult

from .webhooks import CARRIER, DELIVERY_STATUSES

#: 100 requests a minute: without ``Retry-After`` a throttled send waits for the window to move.
DEFAULT_RETRY_AFTER = 5.0
#: Dialpad's errors carry no code we act on, so the HTTP status decides.
ERRORS = ErrorTable(provider=CARRIER, default_wait=DEFAULT_RETRY_AFTER)


class DialpadRestClient:
    """``POST /api/v2/sms`` with the company API key (never in ``repr``)."""

    def __init__(self, *, session: requests.Session, base_url: str, api_key: str) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url
        self.sms_url = f"{base_url}/api/v2/sms"

    def __repr__(self) -> str:
        return "<DialpadRestClient>"

    def call_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request to ``path`` on the API and its JSON object."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        return request_json(self._session, method, self.base_url + path, ERRORS,
                            headers=headers, **kwargs)

    def send_sms(self, payload: Mapping[str, Any]) -> SendResult:
        """POST one SMS; a 2xx without a readable ``id`` is ambiguous."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        response = request_api(self._session, "POST", self.sms_url, ERRORS, headers=headers,
                               json=dict(payload))
        try:
            message = response.json()
            message_id = str(message.get("id") or "")
            if not message_id:
                raise ValueError("no message id")
        except (ValueError, AttributeError):
            # Dialpad took the text (2xx) but we cannot tell its id: reconcile, never resend.
            raise TransientProviderError(
                f"dialpad: HTTP {response.status_code} without a readable message id",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None
        return SendResult(
            message_id=message_id,
            status=DELIVERY_STATUSES.get(str(message.get("message_status") or ""), DeliveryStatus.UNKNOWN),
            raw=message,
        )
