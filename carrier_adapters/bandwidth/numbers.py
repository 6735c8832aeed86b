"""Bandwidth: the one setup call this adapter can make, the credentials check.

The Messaging API credentials (OAuth 2.0 client credentials, or a legacy API user) are checked
with one page of one message from the account's message list
(``GET /api/v2/users/{accountId}/messages``, https://dev.bandwidth.com/apis/messaging-apis/messaging/#tag/Messages/operation/listMessages);
a client-credentials refusal at the token endpoint is reported the same way.

Numbers and their Applications live in Bandwidth's Dashboard (Numbers) API, an XML API on
another host whose access is granted to API users separately from messaging, so this adapter
neither lists numbers nor points the Applications' callback URLs: the setup page shows the URLs
to paste into the Voice and Messaging Applications.
"""

from __future__ import annotations

from .api import BandwidthRestClient


def check_credentials(client: BandwidthRestClient) -> None:
    """One outbound message of the list: a 401 or 403 means the credentials are refused."""
    client.list_messages({"messageDirection": "OUTBOUND", "limit": "1"})
