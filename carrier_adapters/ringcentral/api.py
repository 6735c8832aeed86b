"""RingCentral's SMS and message-store APIs over ``requests``, with JWT-flow tokens and error
classification.

One attempt per call and no retries here: the connector owns the single retry layer. Exception
messages carry the HTTP status and RingCentral's ``errorCode`` only, never its ``message`` (it
quotes the numbers, e.g. "Parameter [to] value [18882049692] is invalid").

References:

- JWT authorization flow (``POST /restapi/oauth/token``, ``grant_type`` jwt-bearer, Basic
  client credentials): https://developers.ringcentral.com/guide/authentication/jwt-flow
- Send an SMS (``POST /restapi/v1.0/account/~/extension/~/sms``, a message record back):
  https://developers.ringcentral.com/guide/messaging/sms/sending-sms
- Error codes (``errorCode`` in the body; ``MSG-*`` for messaging, ``CMN-301`` rate limited):
  https://developers.ringcentral.com/guide/basics/errors
- Rate limits (429 with ``Retry-After``; "if not returned ... retry in 30 seconds or later"):
  https://developers.ringcentral.com/guide/basics/rate-limits
- Message list (``GET .../message-store`` with ``messageType``, ``direction``, ``dateFrom``,
  ``phoneNumber``, ``page``, ``perPage``; ``records`` and ``navigation``):
  https://developers.ringcentral.com/api-reference/Message-Store/listMessages
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from carrier_adapters.errors import (
    ErrorTable,
    classify_error,
    error_code,
    first_code,
    json_code,
    request_api,
)
from connector.kernel.errors import (
    ProviderAuthError,
    ProviderError,
    TransientProviderError,
)
from connector.kernel.events import DeliveryStatus, SendResult
from connector.kernel.http import DEFAULT_TIMEOUT, CachedToken, json_object
from connector.kernel.phone import to_e164
from connector.kernel.times import parse_time

from .webhooks import CARRIER, DELIVERY_STATUSES

API_PREFIX = "/restapi/v1.0"
TOKEN_PATH = "/restapi/oauth/token"  # noqa: S105 - a URL path, not a secret
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: RingCentral: without ``Retry-After``, retry a 429 "in 30 seconds or later".
DEFAULT_RETRY_AFTER = 30.0
#: Renew the access token this long before RingCentral says it expires.
TOKEN_MARGIN = 60.0
DEFAULT_TOKEN_LIFETIME = 3600.0
CLOCK_SKEW = timedelta(seconds=60)
PAGE_SIZE = 100
MAX_PAGES = 3

#: ``errorCode`` values that mean this recipient cannot be texted (https://developers.ringcentral.com/guide/basics/errors):
#: MSG-240 not a US number, MSG-246 an extension number, MSG-247 a short number; MSG-243
#: "Phone number is blocked" is taken as an opt-out (the blocked number is the recipient in
#: RingCentral's example; *inferred*).
RECIPIENT_ERRORS: Mapping[str, str] = {
    "MSG-240": "invalid",
    "MSG-246": "invalid",
    "MSG-247": "invalid",
    "MSG-243": "opted_out",
}
#: 403 codes about the sending number or extension, not the credentials: fixing them is a
#: configuration change, so they are permanent rather than "re-authorise".
CONFIGURATION_ERRORS = frozenset({"MSG-241", "MSG-242", "MSG-304", "MSG-314", "MSG-330", "CMN-109"})
#: RingCentral answers 403 for some messaging refusals that are not about credentials, so the
#: ``errorCode`` (top level, or of the first of ``errors``) is read before the status decides.
ERRORS = ErrorTable(
    provider=CARRIER,
    code=first_code(json_code("errorCode"), json_code("errors", 0, "errorCode")),
    recipient=RECIPIENT_ERRORS,
    permanent=CONFIGURATION_ERRORS,
    default_wait=DEFAULT_RETRY_AFTER,
    code_label=" {code}",
)


class JwtToken(CachedToken):
    """A RingCentral JWT credential exchanged for cached access tokens.

    ``POST /restapi/oauth/token`` with the app's client id and secret as Basic auth and
    ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`` returns
    ``access_token`` and ``expires_in``. RingCentral asks apps to reuse the token (the auth API
    is rate limited) and to renew it before it expires rather than on a 401. Token failures
    happen before a text is sent, so they are never ambiguous.
    """

    def __init__(
        self, *, session: requests.Session, base_url: str, client_id: str, client_secret: str, jwt: str
    ) -> None:
        self._session = session
        self._url = base_url + TOKEN_PATH
        self._auth = (client_id, client_secret)
        self._jwt = jwt
        super().__init__()
        self.margin = TOKEN_MARGIN


    def _fetch(self) -> tuple[str, float]:
        try:
            response = self._session.post(
                self._url,
                auth=self._auth,
                data={"grant_type": JWT_GRANT, "assertion": self._jwt},
                headers={"Accept": "application/json"},
                timeout=DEFAULT_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TransientProviderError(
                f"ringcentral: token request {type(exc).__name__}", provider=CARRIER
            ) from None
        status = response.status_code
        if status in (400, 401, 403):  # OAU-* codes: the app or the JWT is refused
            raise ProviderAuthError(
                f"ringcentral: token request HTTP {status}",
                provider=CARRIER,
                code=error_code(response, ERRORS),
                status=status,
            )
        if not 200 <= status < 300:
            error = classify_error(response, ERRORS)
            if isinstance(error, TransientProviderError):
                error.ambiguous = False  # nothing was sent yet
            raise error
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TransientProviderError("ringcentral: token response unreadable", provider=CARRIER) from None
        return token, lifetime


def _record_result(record: Mapping[str, Any]) -> SendResult:
    status = str(record.get("messageStatus") or "")
    return SendResult(
        message_id=str(record["id"]),
        status=DELIVERY_STATUSES.get(status, DeliveryStatus.UNKNOWN),
        raw=dict(record),
    )


class RingCentralRestClient:
    """The SMS and message-store calls of one extension (``~``: the JWT's own user)."""

    def __init__(
        self, *, session: requests.Session, base_url: str, token: JwtToken, account_id: str,
        extension_id: str, verification_token: str = "",
    ) -> None:
        self._session = session
        self._token = token
        self.verification_token = verification_token
        self.restapi_url = f"{base_url}{API_PREFIX}"
        self.account_id, self.extension_id = account_id, extension_id
        self.account_url = f"{self.restapi_url}/account/{account_id}"
        prefix = f"{self.account_url}/extension/{extension_id}"
        self.sms_url = f"{prefix}/sms"
        self.messages_url = f"{prefix}/message-store"

    def __repr__(self) -> str:
        return "<RingCentralRestClient>"  # never the verification token

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._token.get()}", "Accept": "application/json"}
        try:
            return request_api(self._session, method, url, ERRORS, headers=headers, **kwargs)
        except ProviderError as exc:
            if exc.status == 401:  # the token expired early or was revoked: fetch a new one
                self._token.invalidate()
            raise

    def account_json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """``GET`` ``path`` under the account's URL and its JSON object."""
        return self.call_json("GET", f"/account/{self.account_id}{path}", **kwargs)

    def call_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request to ``path`` under ``/restapi/v1.0`` and its JSON object."""
        return json_object(self._request(method, self.restapi_url + path, **kwargs), CARRIER)

    def send_sms(self, *, to: str, from_: str, body: str) -> SendResult:
        """POST one SMS; a 2xx without a readable message ``id`` is ambiguous."""
        payload = {"from": {"phoneNumber": from_}, "to": [{"phoneNumber": to}], "text": body}
        response = self._request("POST", self.sms_url, json=payload)
        try:
            record = response.json()
            if not isinstance(record, dict) or not str(record.get("id") or ""):
                raise ValueError("no message id")
            return _record_result(record)
        except (ValueError, TypeError):
            # RingCentral took the message (2xx) but we cannot tell its id: reconcile.
            raise TransientProviderError(
                f"ringcentral: HTTP {response.status_code} without a readable message id",
                provider=CARRIER,
                status=response.status_code,
                ambiguous=True,
            ) from None

    def find_message(self, *, to: str, from_: str, body: str, sent_after: datetime) -> SendResult | None:
        """Our outbound SMS to ``to`` from ``from_`` with this text since ``sent_after`` (less
        :data:`CLOCK_SKEW`), or None.

        Message records carry the text in ``subject``, so the body is compared too. When more
        than :data:`MAX_PAGES` pages hold no match a :class:`TransientProviderError` is raised
        rather than a None the connector would take for "never sent".
        """
        if sent_after.tzinfo is None:
            raise ValueError("sent_after must be an aware datetime")
        earliest = sent_after - CLOCK_SKEW
        params: dict[str, str] = {
            "messageType": "SMS",
            "direction": "Outbound",
            "dateFrom": earliest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "phoneNumber": to,
            "perPage": str(PAGE_SIZE),
        }
        want_to, want_from = to_e164(to), to_e164(from_)
        for page in range(1, MAX_PAGES + 1):
            params["page"] = str(page)
            response = self._request("GET", self.messages_url, params=params)
            try:
                document = response.json()
                records = document.get("records") or []
                has_next = bool((document.get("navigation") or {}).get("nextPage"))
            except (ValueError, AttributeError):
                raise TransientProviderError(
                    "ringcentral: message list without a readable body", provider=CARRIER
                ) from None
            for record in records:
                if not isinstance(record, dict) or record.get("direction") != "Outbound":
                    continue
                recipients = [r for r in record.get("to") or [] if isinstance(r, dict)]
                sender = record.get("from")
                if not isinstance(sender, dict):
                    continue
                if not any(to_e164(str(r.get("phoneNumber") or "")) == want_to for r in recipients):
                    continue
                if to_e164(str(sender.get("phoneNumber") or "")) != want_from:
                    continue
                if record.get("subject") is not None and record.get("subject") != body:
                    continue
                created = parse_time(record.get("creationTime"))
                if created is None or created < earliest or not record.get("id"):
                    continue
                return _record_result(record)
            if not has_next:
                return None
        raise TransientProviderError(
            f"ringcentral: no match in the first {MAX_PAGES} pages of messages", provider=CARRIER
        )
