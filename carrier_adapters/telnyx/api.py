"""Telnyx's Messaging API (``POST /v2/messages``) over ``requests``, with error classification.

One attempt per call, no retries here: the connector owns the single retry layer. Exception
messages carry the HTTP status and Telnyx's error code only, never its ``detail`` (it quotes
both phone numbers: "Messages cannot be sent from '{from}' to '{to}' ..."), the request body or
the API key.

References:

- Send a message: https://developers.telnyx.com/api-reference/messages/send-a-message
- Error body ``{"errors": [{"code", "title", "detail"}]}`` and general codes (``10009``
  authentication failed, ``10011`` too many requests):
  https://developers.telnyx.com/development/api-fundamentals/api-errors
- Messaging codes (``40300`` blocked by STOP, ``40001`` landline ...):
  https://developers.telnyx.com/docs/messaging/messages/error-codes
- Number lookup: https://developers.telnyx.com/api-reference/number-lookup/lookup-phone-number-data
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from carrier_adapters.errors import ErrorTable, json_code, request_api, request_json
from connector.kernel.errors import (
    TransientProviderError,
)
from connector.kernel.events import DeliveryStatus, SendResult

from .webhooks import CARRIER, DELIVERY_STATUSES

MESSAGES_PATH = "/v2/messages"
NUMBER_LOOKUP_PATH = "/v2/number_lookup"

#: Number lookup ``data.carrier.type`` in the connector's vocabulary (Twilio Lookup's, which
#: :data:`connector.domain.policy.UNTEXTABLE_LINE_TYPES` is written in). ``fixed line or mobile``
#: cannot be told apart, so it is not called a landline; ``unknown`` is no answer.
LINE_TYPES: Mapping[str, str] = {
    "fixed line": "landline",
    "mobile": "mobile",
    "voip": "voip",
    "fixed line or mobile": "fixedLineOrMobile",
    "toll free": "tollFree",
    "premium rate": "premium",
    "shared cost": "sharedCost",
    "personal number": "personal",
    "pager": "pager",
    "uan": "uan",
    "voicemail": "voicemail",
}

#: Telnyx codes meaning this recipient cannot be texted; the value is
#: :attr:`RecipientRejectedError.reason`. ``40300`` is the block rule a STOP created on the
#: messaging profile; Telnyx answers it with a 4xx whose status varies by validation stage, so
#: the code decides, not the status. ``40001`` (landline or non-routable) and ``40012``
#: (invalid destination) are delivery errors, normally seen in ``message.finalized``; mapped
#: here too in case the API reports them at once. ``40310`` is an invalid ``to`` (HTTP 400).
RECIPIENT_REJECTIONS: Mapping[str, str] = {
    "40300": "opted_out",
    "40001": "not_mobile",
    "40012": "invalid",
    "40310": "invalid",
}
#: Wait when a 429 comes without ``Retry-After``.
DEFAULT_RETRY_AFTER = 1.0
#: Telnyx's error body: ``{"errors": [{"code": "40300", "title": ..., "detail": ...}]}``
#: (https://developers.telnyx.com/docs/overview/errors).
ERRORS = ErrorTable(
    provider=CARRIER,
    code=json_code("errors", 0, "code"),
    recipient=RECIPIENT_REJECTIONS,
    auth=frozenset({"10009"}),  # authentication failed (invalid or missing API key)
    rate_limited=frozenset({"10011"}),  # too many requests
    default_wait=DEFAULT_RETRY_AFTER,
)


def to_send_result(message: Mapping[str, Any]) -> SendResult:
    """A :class:`SendResult` from the ``data`` of a send response (``OutboundMessagePayload``)."""
    recipients = message.get("to")
    first = recipients[0] if isinstance(recipients, list) and recipients else {}
    status = str(first.get("status") or "") if isinstance(first, dict) else ""
    parts = message.get("parts")
    return SendResult(
        message_id=str(message["id"]),
        status=DELIVERY_STATUSES.get(status, DeliveryStatus.UNKNOWN),
        segments=parts if isinstance(parts, int) and parts > 0 else None,
        raw=dict(message),
    )


class TelnyxRestClient:
    """The one Messaging call the adapter makes, with the Bearer API key and our timeouts.

    The API key never shows in ``repr``.
    """

    def __init__(self, *, session: requests.Session, base_url: str, api_key: str) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url
        self.messages_url = f"{base_url}{MESSAGES_PATH}"
        self.lookup_url = f"{base_url}{NUMBER_LOOKUP_PATH}"

    def __repr__(self) -> str:
        return f"<TelnyxRestClient {self.messages_url}>"

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        return request_api(self._session, method, url, ERRORS, headers=headers, **kwargs)

    def call_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request to ``path`` on the API and its JSON object (see :func:`request_json`)."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        return request_json(
            self._session, method, self.base_url + path, ERRORS, headers=headers, **kwargs
        )

    def create_message(self, body: Mapping[str, Any]) -> SendResult:
        """POST one message; a 2xx whose body we cannot read is an ambiguous failure."""
        response = self._request("POST", self.messages_url, json=dict(body))
        try:
            return to_send_result(response.json()["data"])
        except (ValueError, KeyError, TypeError, AttributeError):
            # Telnyx took the message (2xx) but we cannot tell its id: reconcile, never resend.
            raise TransientProviderError(
                f"telnyx: HTTP {response.status_code} without a readable message",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None

    def lookup_line_type(self, number: str) -> str | None:
        """``data.carrier.type`` of a carrier lookup (a paid request), in the connector's
        vocabulary (:data:`LINE_TYPES`); None when Telnyx does not know."""
        response = self._request(
            "GET", f"{self.lookup_url}/{quote(number)}", params={"type": "carrier"}
        )
        try:
            carrier = response.json()["data"]["carrier"]
            kind = carrier.get("type") if isinstance(carrier, dict) else None
        except (ValueError, KeyError, TypeError):
            return None
        return LINE_TYPES.get(str(kind).strip().lower()) if kind else None
