"""Dialpad: the one setup call this adapter makes, the credentials check.

``GET /api/v2/company`` with the company API key answers the company, or 401 for a wrong key
(https://developers.dialpad.com/reference/companyget).

Dialpad's events are not tied to a number: they come from a webhook (``POST /api/v2/webhooks``)
and subscriptions on it that target the company, an office, a department or a user, so there is
no number to point. Numbers are not listed: the setup page asks for the business number and
shows the webhook URL and the subscriptions to make.
"""

from __future__ import annotations

from .api import DialpadRestClient


def check_credentials(client: DialpadRestClient) -> None:
    """Read the company: a 401 means the API key is wrong."""
    client.call_json("GET", "/api/v2/company")
