"""Twilio's REST API (2010-04-01 Messages resource) over ``requests``, with error classification.

One attempt per call and no retries here: the connector owns the single retry layer. Exception
messages carry the HTTP status and Twilio's numeric error code only, never Twilio's ``message``
text (it often quotes the phone number), the request body or credentials.

References:

- Message resource: https://www.twilio.com/docs/messaging/api/message-resource
- Error codes: https://www.twilio.com/docs/api/errors (the error body is JSON with ``code``,
  ``message``, ``more_info`` and ``status``)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from carrier_adapters.errors import ErrorTable, json_code, request_api, request_json
from connector.kernel.errors import (
    TransientProviderError,
)
from connector.kernel.events import DeliveryStatus, SendResult
from connector.kernel.times import parse_time

from .webhooks import CARRIER, DELIVERY_STATUSES

API_VERSION = "2010-04-01"

#: Twilio error codes meaning this recipient cannot be texted; the value is
#: :attr:`RecipientRejectedError.reason`.
#: 21610 https://www.twilio.com/docs/api/errors/21610 (recipient replied STOP)
#: 21614 https://www.twilio.com/docs/api/errors/21614 ('To' is not a mobile number)
#: 21635 https://www.twilio.com/docs/api/errors/21635 ('To' is a landline)
#: 30006 https://www.twilio.com/docs/api/errors/30006 (landline or unreachable carrier)
#: 21211 https://www.twilio.com/docs/api/errors/21211 (invalid 'To' number)
RECIPIENT_REJECTIONS: Mapping[str, str] = {
    "21610": "opted_out",
    "21614": "not_mobile",
    "21635": "not_mobile",
    "30006": "not_mobile",
    "21211": "invalid",
}
#: Wait when a 429 comes without ``Retry-After``; Twilio says a 429 is safe to retry after a
#: short back-off.
DEFAULT_RETRY_AFTER = 1.0
#: Twilio's error body is JSON with ``code``, ``message``, ``more_info`` and ``status``.
ERRORS = ErrorTable(
    provider=CARRIER,
    code=json_code("code"),
    recipient=RECIPIENT_REJECTIONS,
    #: 20003 https://www.twilio.com/docs/api/errors/20003 (authentication failed)
    auth=frozenset({"20003"}),
    #: 20429 https://www.twilio.com/docs/api/errors/20429 (too many concurrent requests)
    rate_limited=frozenset({"20429"}),
    default_wait=DEFAULT_RETRY_AFTER,
)
#: How far before ``sent_after`` a message may have been created and still count as ours:
#: the clocks of this machine and Twilio's differ a little.
CLOCK_SKEW = timedelta(seconds=60)
#: Messages list page size when reconciling; the newest page is enough for a recent send.
RECONCILE_PAGE_SIZE = 50
#: Lookup v2 lives on its own host: https://www.twilio.com/docs/lookup/v2-api
LOOKUPS_BASE_URL = "https://lookups.twilio.com"
#: Messaging Services live on their own host too:
#: https://www.twilio.com/docs/messaging/api/service-resource
MESSAGING_BASE_URL = "https://messaging.twilio.com"


def _segments(value: Any) -> int | None:
    try:
        return int(value)  # Twilio sends the count as a string ("1")
    except (TypeError, ValueError):
        return None


def to_send_result(message: Mapping[str, Any]) -> SendResult:
    """A :class:`SendResult` from a Message resource (JSON)."""
    return SendResult(
        message_id=str(message["sid"]),
        status=DELIVERY_STATUSES.get(str(message.get("status", "")), DeliveryStatus.UNKNOWN),
        segments=_segments(message.get("num_segments")),
        raw=dict(message),
    )


class TwilioRestClient:
    """The two Messages calls the adapter needs, with Basic auth and our timeouts.

    ``auth`` is ``(AccountSid, AuthToken)`` or ``(ApiKeySid, ApiKeySecret)``; it never shows
    in ``repr``.
    """

    def __init__(
        self,
        *,
        session: requests.Session,
        base_url: str,
        account_sid: str,
        auth: tuple[str, str],
        lookups_base_url: str = LOOKUPS_BASE_URL,
        messaging_base_url: str = MESSAGING_BASE_URL,
        messaging_service_sid: str | None = None,
    ) -> None:
        self._session = session
        self._auth = auth
        self.base_url = base_url
        self.messaging_url = messaging_base_url
        self.messaging_service_sid = messaging_service_sid
        self.account_url = f"{base_url}/{API_VERSION}/Accounts/{account_sid}"
        self.messages_url = f"{self.account_url}/Messages.json"
        self.lookups_url = f"{lookups_base_url}/v2/PhoneNumbers"

    def __repr__(self) -> str:
        return f"<TwilioRestClient {self.messages_url}>"

    def _request(self, method: str, url: str | None = None, **kwargs: Any) -> requests.Response:
        return request_api(self._session, method, url or self.messages_url, ERRORS,
                           auth=self._auth, **kwargs)

    def call_json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """One request to ``url`` and its JSON object (see :func:`request_json`)."""
        return request_json(self._session, method, url, ERRORS, auth=self._auth, **kwargs)

    def create_message(self, form: Mapping[str, str]) -> SendResult:
        """POST one message; a 2xx whose body we cannot read is an ambiguous failure."""
        response = self._request("POST", data=dict(form))
        try:
            payload = response.json()
            return to_send_result(payload)
        except (ValueError, KeyError, TypeError, AttributeError):
            # Twilio took the message (2xx) but we cannot tell its SID: reconcile, never resend.
            raise TransientProviderError(
                f"twilio: HTTP {response.status_code} without a readable message",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None

    def find_message(
        self, *, to: str, from_: str, body: str, sent_after: datetime
    ) -> SendResult | None:
        """The newest message to ``to`` from ``from_`` with exactly ``body``, created at or
        after ``sent_after`` less :data:`CLOCK_SKEW`; None when the first page has none."""
        if sent_after.tzinfo is None:
            raise ValueError("sent_after must be an aware datetime")
        earliest = sent_after - CLOCK_SKEW
        response = self._request(
            "GET", params={"To": to, "From": from_, "PageSize": str(RECONCILE_PAGE_SIZE)}
        )
        try:
            messages = response.json().get("messages") or []
        except (ValueError, AttributeError):
            raise TransientProviderError(
                "twilio: Messages list without a readable body", provider=CARRIER
            ) from None
        for message in messages:
            if not isinstance(message, dict) or message.get("body") != body:
                continue
            created = parse_time(message.get("date_created"), rfc2822=True)
            if created is not None and created >= earliest and message.get("sid"):
                return to_send_result(message)
        return None

    def lookup_line_type(self, number: str) -> str | None:
        """Lookup v2 ``line_type_intelligence.type`` (``mobile``, ``landline``, ``fixedVoip`` ...).

        https://www.twilio.com/docs/lookup/v2-api/line-type-intelligence ; None when Twilio
        does not know (it reports an ``error_code`` instead, e.g. 60601 for Canadian numbers
        without approval).
        """
        response = self._request(
            "GET", f"{self.lookups_url}/{quote(number)}",
            params={"Fields": "line_type_intelligence"},
        )
        try:
            info = response.json().get("line_type_intelligence") or {}
        except (ValueError, AttributeError):
            return None
        kind = info.get("type") if isinstance(info, dict) else None
        return str(kind) if kind else None
