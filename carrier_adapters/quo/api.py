"""Quo's messages API over ``requests``, with error classification.

One attempt per call and no retries here: the connector owns the single retry layer. Quo's
error bodies (``{message, docs, title, errors, trace}``) carry no error codes and may echo the
input, so only the HTTP status goes into exception messages.

References:

- Send a text message (``POST /v1/messages``, header ``Authorization: <API key>`` without
  "Bearer", JSON ``{content, from, to: [E.164]}``, 202 with ``{"data": {id, status, ...}}``):
  https://www.quo.com/docs/mdx/api-reference/messages/send-a-text-message and
  https://www.quo.com/docs/mdx/api-reference/send-your-first-message
- List messages (``GET /v1/messages`` scoped by ``phoneNumberId`` and ``participants``, with
  ``createdAfter``, ``maxResults``, ``pageToken``; ``{data, nextPageToken}``):
  https://www.quo.com/docs/mdx/api-reference/messages/list-messages
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from carrier_adapters.errors import ErrorTable, request_api, request_json
from connector.kernel.errors import TransientProviderError
from connector.kernel.events import DeliveryStatus, SendResult
from connector.kernel.phone import to_e164
from connector.kernel.times import parse_time

from .webhooks import CARRIER, DELIVERY_STATUSES

#: Wait when a 429 comes without ``Retry-After`` (Quo documents no value; *inferred*).
DEFAULT_RETRY_AFTER = 1.0
#: Quo's errors carry no code we act on, so the HTTP status decides.
ERRORS = ErrorTable(provider=CARRIER, default_wait=DEFAULT_RETRY_AFTER)
CLOCK_SKEW = timedelta(seconds=60)
PAGE_SIZE = 50
MAX_PAGES = 3


def _result(message: Mapping[str, Any]) -> SendResult:
    return SendResult(
        message_id=str(message["id"]),
        status=DELIVERY_STATUSES.get(str(message.get("status") or ""), DeliveryStatus.UNKNOWN),
        raw=dict(message),
    )


class QuoRestClient:
    """The messages calls, authenticated with the workspace API key (never in ``repr``)."""

    def __init__(self, *, session: requests.Session, base_url: str, api_key: str) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url
        self.messages_url = f"{base_url}/v1/messages"

    def __repr__(self) -> str:
        return "<QuoRestClient>"

    def _request(self, method: str, **kwargs: Any) -> requests.Response:
        return request_api(self._session, method, self.messages_url, ERRORS,
                           headers={"Authorization": self._api_key}, **kwargs)

    def call_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request to ``path`` on the API and its JSON object."""
        return request_json(self._session, method, self.base_url + path, ERRORS,
                            headers={"Authorization": self._api_key}, **kwargs)

    def send_message(self, *, to: str, from_: str, body: str) -> SendResult:
        """POST one text; a 2xx without a readable ``data.id`` is ambiguous."""
        response = self._request("POST", json={"content": body, "from": from_, "to": [to]})
        try:
            message = response.json()["data"]
            if not isinstance(message, dict) or not str(message.get("id") or ""):
                raise ValueError("no message id")
            return _result(message)
        except (ValueError, KeyError, TypeError):
            # Quo took the text (2xx) but we cannot tell its id: reconcile, never resend.
            raise TransientProviderError(
                f"quo: HTTP {response.status_code} without a readable message id",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None

    def find_message(
        self, *, phone_number_id: str, to: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """Our outgoing text to ``to`` with this body since ``sent_after`` (less
        :data:`CLOCK_SKEW`) in the conversation of ``phone_number_id``, or None.

        After :data:`MAX_PAGES` pages without a match a :class:`TransientProviderError` is
        raised rather than a None the connector would take for "never sent".
        """
        if sent_after.tzinfo is None:
            raise ValueError("sent_after must be an aware datetime")
        earliest = sent_after - CLOCK_SKEW
        params: dict[str, str] = {
            "phoneNumberId": phone_number_id,
            "participants": to,
            "createdAfter": earliest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "maxResults": str(PAGE_SIZE),
        }
        want_to = to_e164(to)
        for _ in range(MAX_PAGES):
            response = self._request("GET", params=params)
            try:
                document = response.json()
                messages = document.get("data") or []
                next_token = document.get("nextPageToken")
            except (ValueError, AttributeError):
                raise TransientProviderError(
                    "quo: message list without a readable body", provider=CARRIER
                ) from None
            for message in messages:
                if not isinstance(message, dict) or message.get("direction") != "outgoing":
                    continue
                to_field = message.get("to")
                recipients: list[Any] = to_field if isinstance(to_field, list) else [to_field]
                if not any(to_e164(str(r or "")) == want_to for r in recipients):
                    continue
                if message.get("text") is not None and message.get("text") != body:
                    continue
                created = parse_time(message.get("createdAt"))
                if created is None or created < earliest or not message.get("id"):
                    continue
                return _result(message)
            if not next_token:
                return None
            params["pageToken"] = str(next_token)
        raise TransientProviderError(
            f"quo: no match in the first {MAX_PAGES} pages of messages", provider=CARRIER
        )
