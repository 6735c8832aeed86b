"""Plivo's Message API over ``requests``, with error classification.

One attempt per call and no retries here: the connector owns the single retry layer. Exception
messages carry the HTTP status only: Plivo's error body is ``{"api_id": ..., "error": "<free
text>"}`` and the text may quote the numbers, so it is never copied into an exception.

References:

- Send a message: https://www.plivo.com/docs/messaging/api/message/send-a-message
  (``POST /v1/Account/{auth_id}/Message/``, HTTP 202 ``{"message": "message(s) queued",
  "message_uuid": [...], "api_id": ...}``)
- List all messages: https://www.plivo.com/docs/messaging/api/message/list-all-messages
  (``GET`` with ``message_direction``, ``message_time__gte`` in UTC, ``limit`` <= 20, ``offset``;
  response ``{"meta": {...}, "objects": [...]}``)
- The Message object: https://www.plivo.com/docs/messaging/api/message/the-message-object
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

API_VERSION = "v1"
#: Wait when a 429 comes without ``Retry-After``. Plivo documents the message list as limited
#: to 20 requests a minute (one every 3 s).
DEFAULT_RETRY_AFTER = 5.0
#: Plivo's synchronous errors carry free text only (refusals tied to the
#: recipient come later, as ``ErrorCode`` in the status callback), so the HTTP status decides.
ERRORS = ErrorTable(provider=CARRIER, default_wait=DEFAULT_RETRY_AFTER)
#: How far before ``sent_after`` a message may have been created and still count as ours.
CLOCK_SKEW = timedelta(seconds=60)
#: Plivo's maximum page size for the message list.
PAGE_SIZE = 20
#: Pages read when reconciling before giving up (a busy account in a short window).
MAX_PAGES = 5


class PlivoRestClient:
    """The Message API calls the adapter needs, with Basic auth (Auth ID, Auth Token).

    The credentials never show in ``repr``.
    """

    def __init__(self, *, session: requests.Session, base_url: str, auth_id: str, auth_token: str) -> None:
        self._session = session
        self._auth = (auth_id, auth_token)
        self.account_url = f"{base_url}/{API_VERSION}/Account/{auth_id}/"
        self.messages_url = f"{self.account_url}Message/"

    def __repr__(self) -> str:
        return "<PlivoRestClient>"

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        return request_api(self._session, method, url, ERRORS, auth=self._auth, **kwargs)

    def call_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request to ``path`` under the account's URL and its JSON object."""
        return request_json(
            self._session, method, self.account_url + path, ERRORS, auth=self._auth, **kwargs
        )

    def send_message(self, payload: Mapping[str, Any]) -> SendResult:
        """POST one message; a 2xx without a readable ``message_uuid`` is ambiguous."""
        response = self._request("POST", self.messages_url, json=dict(payload))
        try:
            body = response.json()
            uuids = body["message_uuid"]
            message_id = str(uuids[0] if isinstance(uuids, list) else uuids)
            if not message_id:
                raise ValueError("empty message_uuid")
        except (ValueError, KeyError, TypeError, IndexError):
            # Plivo took the message (2xx) but we cannot tell its id: reconcile, never resend.
            raise TransientProviderError(
                f"plivo: HTTP {response.status_code} without a readable message_uuid",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None
        # One uuid per destination; we send to one. Plivo does not say how many units
        # (segments) the text takes until the status callback (``Units``).
        return SendResult(
            message_id=message_id,
            status=DeliveryStatus.QUEUED,
            raw=body if isinstance(body, dict) else {},
        )

    def find_message(self, *, to: str, from_: str, sent_after: datetime) -> SendResult | None:
        """The outbound message from ``from_`` to ``to`` created at or after ``sent_after`` less
        :data:`CLOCK_SKEW`, or None when Plivo lists none.

        Plivo's message records carry no text, so the match is on the two numbers, the
        direction and the time. Up to :data:`MAX_PAGES` pages are read; when there are more and
        none matched, a :class:`TransientProviderError` is raised rather than a None the
        connector would take for "never sent".
        """
        if sent_after.tzinfo is None:
            raise ValueError("sent_after must be an aware datetime")
        earliest = sent_after - CLOCK_SKEW
        params = {
            "message_direction": "outbound",
            "message_time__gte": earliest.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "limit": str(PAGE_SIZE),
        }
        want_to, want_from = to_e164(to), to_e164(from_)
        for page in range(MAX_PAGES):
            params["offset"] = str(page * PAGE_SIZE)
            response = self._request("GET", self.messages_url, params=params)
            try:
                body = response.json()
                objects = body.get("objects") or []
                has_next = bool((body.get("meta") or {}).get("next"))
            except (ValueError, AttributeError):
                raise TransientProviderError(
                    "plivo: message list without a readable body", provider=CARRIER
                ) from None
            for item in objects:
                if not isinstance(item, dict) or item.get("message_direction") != "outbound":
                    continue
                if to_e164(str(item.get("to_number") or "")) != want_to:
                    continue
                if to_e164(str(item.get("from_number") or "")) != want_from:
                    continue
                created = parse_time(item.get("message_time"))
                if created is None or created < earliest or not item.get("message_uuid"):
                    continue
                state = str(item.get("message_state") or "")
                return SendResult(
                    message_id=str(item["message_uuid"]),
                    status=DELIVERY_STATUSES.get(state, DeliveryStatus.UNKNOWN),
                    segments=item.get("units") if isinstance(item.get("units"), int) else None,
                    raw=item,
                )
            if not has_next:
                return None
        raise TransientProviderError(
            f"plivo: no match in the first {MAX_PAGES} pages of messages", provider=CARRIER
        )
