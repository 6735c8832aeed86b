"""Bandwidth's Messaging v2 API over ``requests``: authentication, sends, message search and
error classification.

One attempt per call and no retries here: the connector owns the single retry layer. Exception
messages carry the HTTP status and Bandwidth's error ``type`` only, never its ``description``
(it may quote numbers), the request body or credentials.

References:

- Create Message: https://dev.bandwidth.com/apis/messaging/#operation/createMessage
  (``POST /api/v2/users/{accountId}/messages``, HTTP 202 with the Message object; errors are
  ``{"type", "description", "fieldErrors"}``; https://dev.bandwidth.com/docs/messaging/errors/)
- List Messages: https://dev.bandwidth.com/docs/messaging/getMessage/ (message records hold
  no text: "Bandwidth does not store text message content")
- Credentials: https://dev.bandwidth.com/docs/account/credentials/ (OAuth 2.0 client
  credentials; legacy API users with Basic auth are deprecated,
  https://dev.bandwidth.com/docs/account/credentials/legacy)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from carrier_adapters.errors import ErrorTable, json_code, request_api
from connector.kernel.errors import (
    ProviderAuthError,
    ProviderError,
    TransientProviderError,
)
from connector.kernel.events import DeliveryStatus, SendResult
from connector.kernel.http import (
    DEFAULT_TIMEOUT,
    CachedToken,
    classify_status,
    json_object,
)
from connector.kernel.times import parse_time

from .webhooks import CARRIER

#: Bandwidth's OAuth 2.0 token endpoint (its OpenAPI ``securitySchemes``); a URL, not a secret.
DEFAULT_TOKEN_URL = "https://api.bandwidth.com/api/v1/oauth2/token"  # noqa: S105
#: A token is renewed this long before it expires (Bandwidth's own SDKs use 60 s).
TOKEN_MARGIN = 60.0
#: Token lifetime assumed when the token response gives none.
DEFAULT_TOKEN_LIFETIME = 3600.0
#: Wait when a 429 comes without ``Retry-After``: Bandwidth's 429 on sends means the account's
#: message queue (about 15 minutes of traffic) is full, so a one-second retry would not help.
DEFAULT_RETRY_AFTER = 60.0
CLOCK_SKEW = timedelta(seconds=60)
PAGE_SIZE = 100
MAX_PAGES = 5
#: List Messages ``messageStatus`` values, as our delivery statuses.
LIST_STATUSES: Mapping[str, DeliveryStatus] = {
    "RECEIVED": DeliveryStatus.QUEUED,  # "Bandwidth has received your request to send"
    "ACCEPTED": DeliveryStatus.QUEUED,
    "QUEUED": DeliveryStatus.QUEUED,
    "SENDING": DeliveryStatus.QUEUED,
    "SENT": DeliveryStatus.SENT,
    "DELIVERED": DeliveryStatus.DELIVERED,
    "FAILED": DeliveryStatus.FAILED,
    "UNDELIVERED": DeliveryStatus.UNDELIVERED,
}


def _rejected_recipient(response: requests.Response) -> str | None:
    """``invalid`` when a 400's ``fieldErrors`` blame the ``to`` field, else None.

    Delivery refusals (opt-out 4775, landline or invalid 4720...) come later in
    ``message-failed`` callbacks; at send time only such a 400 is about the recipient.
    """
    if response.status_code != 400:
        return None
    try:
        errors = response.json().get("fieldErrors") or []
    except (ValueError, AttributeError):
        return None
    blamed = any(isinstance(e, dict) and str(e.get("fieldName", "")).startswith("to") for e in errors)
    return "invalid" if blamed else None


#: Bandwidth's error body names a ``type`` (``request-validation``, ``unauthorized``...).
ERRORS = ErrorTable(
    provider=CARRIER,
    code=json_code("type"),
    recipient_check=_rejected_recipient,
    default_wait=DEFAULT_RETRY_AFTER,
    code_label=", {code}",
)


class OAuthToken(CachedToken):
    """Bandwidth API credentials (client id and secret) turned into cached bearer tokens.

    ``POST {token_url}`` with the client id and secret as Basic auth and
    ``grant_type=client_credentials`` returns ``access_token`` and ``expires_in``. The token is
    shared by the threads using this adapter and renewed :data:`TOKEN_MARGIN` seconds early.
    Failures here happen before any text is sent, so they are never ambiguous.
    """

    def __init__(
        self, *, session: requests.Session, token_url: str, client_id: str, client_secret: str
    ) -> None:
        self._session = session
        self._url = token_url
        self._auth = (client_id, client_secret)
        super().__init__()
        self.margin = TOKEN_MARGIN


    def _fetch(self) -> tuple[str, float]:
        try:
            response = self._session.post(
                self._url,
                auth=self._auth,
                data={"grant_type": "client_credentials"},
                timeout=DEFAULT_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TransientProviderError(
                f"bandwidth: token request {type(exc).__name__}", provider=CARRIER
            ) from None
        status = response.status_code
        if status in (400, 401, 403):  # invalid_client and the like: the credentials are wrong
            raise ProviderAuthError(
                f"bandwidth: token request HTTP {status}", provider=CARRIER, status=status
            )
        if not 200 <= status < 300:
            error = classify_status(CARRIER, status, f"bandwidth: token request HTTP {status}")
            if isinstance(error, TransientProviderError):
                error.ambiguous = False  # nothing was sent yet
            raise error
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TransientProviderError("bandwidth: token response unreadable", provider=CARRIER) from None
        return token, lifetime


class BandwidthRestClient:
    """The two Messaging v2 calls the adapter needs.

    ``auth`` is an :class:`OAuthToken` (API credentials) or a ``(username, password)`` pair
    (legacy API user, HTTP Basic). Neither shows in ``repr``.
    """

    def __init__(
        self,
        *,
        session: requests.Session,
        base_url: str,
        account_id: str,
        auth: OAuthToken | tuple[str, str],
    ) -> None:
        self._session = session
        self._auth = auth
        self.messages_url = f"{base_url}/api/v2/users/{account_id}/messages"

    def __repr__(self) -> str:
        return f"<BandwidthRestClient {self.messages_url}>"

    def _request(self, method: str, **kwargs: Any) -> requests.Response:
        headers: dict[str, str] = {}
        basic: tuple[str, str] | None = None
        if isinstance(self._auth, OAuthToken):
            headers["Authorization"] = f"Bearer {self._auth.get()}"
        else:
            basic = self._auth
        try:
            return request_api(self._session, method, self.messages_url, ERRORS, auth=basic,
                               headers=headers, **kwargs)
        except ProviderError as exc:
            if exc.status == 401 and isinstance(self._auth, OAuthToken):
                self._auth.invalidate()  # expired early or revoked: fetch a new token
            raise

    def list_messages(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET`` the message list with ``params`` and its JSON object."""
        return json_object(self._request("GET", params=dict(params)), CARRIER)

    def create_message(self, payload: Mapping[str, Any]) -> SendResult:
        """POST one message; a 2xx without a readable ``id`` is an ambiguous failure."""
        response = self._request("POST", json=dict(payload))
        try:
            body = response.json()
            message_id = str(body["id"])
            if not message_id:
                raise ValueError("empty id")
        except (ValueError, KeyError, TypeError):
            # Bandwidth accepted the message (2xx) but we cannot tell its id: reconcile.
            raise TransientProviderError(
                f"bandwidth: HTTP {response.status_code} without a readable message id",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None
        segments = body.get("segmentCount")
        return SendResult(
            message_id=message_id,
            status=DeliveryStatus.QUEUED,  # 202 Accepted: queued for sending
            segments=segments if isinstance(segments, int) else None,
            raw=body,
        )

    def find_message(self, *, to: str, from_: str, sent_after: datetime) -> SendResult | None:
        """The outbound message from ``from_`` to ``to`` received by Bandwidth at or after
        ``sent_after`` less :data:`CLOCK_SKEW`, or None when the search finds none.

        Message records hold no text, so the match is on the numbers, the direction and the
        time. When more pages remain after :data:`MAX_PAGES` without a match, a
        :class:`TransientProviderError` is raised rather than a misleading None.
        """
        if sent_after.tzinfo is None:
            raise ValueError("sent_after must be an aware datetime")
        earliest = sent_after - CLOCK_SKEW
        params = {
            "sourceTn": from_,
            "destinationTn": to,
            "messageDirection": "OUTBOUND",
            "fromDateTime": earliest.astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "limit": str(PAGE_SIZE),
        }
        for _ in range(MAX_PAGES):
            response = self._request("GET", params=params)
            try:
                body = response.json()
                messages = body.get("messages") or []
                next_token = (body.get("pageInfo") or {}).get("nextPageToken")
            except (ValueError, AttributeError):
                raise TransientProviderError(
                    "bandwidth: message list without a readable body", provider=CARRIER
                ) from None
            for item in messages:
                if not isinstance(item, dict) or item.get("messageDirection") != "OUTBOUND":
                    continue
                if item.get("sourceTn") != from_ or item.get("destinationTn") != to:
                    continue
                received = parse_time(item.get("receiveTime"))
                if received is None or received < earliest or not item.get("messageId"):
                    continue
                segments = item.get("segmentCount")
                return SendResult(
                    message_id=str(item["messageId"]),
                    status=LIST_STATUSES.get(str(item.get("messageStatus")), DeliveryStatus.UNKNOWN),
                    segments=segments if isinstance(segments, int) else None,
                    raw=item,
                )
            if not next_token:
                return None
            params["pageToken"] = str(next_token)
        raise TransientProviderError(
            f"bandwidth: no match in the first {MAX_PAGES} pages of messages", provider=CARRIER
        )

