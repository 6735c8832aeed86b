"""What every CRM's app definition shares: the app's name and description, who supports the
deployment, and how a JSON manifest is written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connector.kernel.errors import ConfigurationError
from connector.marketplace.urls import AppUrls

#: The app's name in every CRM.
APP_NAME = "textback"
APP_DESCRIPTION = (
    "Texts back every caller your business missed, within seconds, and keeps the whole "
    "conversation in your CRM: the caller as a contact, the missed call and every text on their "
    "timeline, a follow-up task for a named owner and the lead in your pipeline. Replies alert "
    "the owner; STOP, HELP and START are honoured at once."
)


@dataclass(frozen=True)
class Listing:
    """Who supports the deployment, as the CRMs' listings show it.

    Defaults come from the public URL: ``support@`` its host, and the deployment's own address
    for documentation and support.
    """

    public_url: str
    support_email: str
    support_url: str
    documentation_url: str

    @classmethod
    def for_url(cls, public_url: str, *, support_email: str | None = None,
                support_url: str | None = None) -> Listing:
        """The listing of the deployment at ``public_url``, with the given support details."""
        urls = AppUrls(public_url)
        host = urlsplit(urls.public_url).hostname or ""
        email = support_email or f"support@{host}"
        if "@" not in email.strip("@") or any(c.isspace() for c in email):
            raise ConfigurationError(f"{email!r} is not an email address", field="--support-email")
        support = support_url or urls.public_url + "/"
        if urlsplit(support).scheme not in ("https", "http") or not urlsplit(support).hostname:
            raise ConfigurationError(f"{support!r} is not an absolute URL", field="--support-url")
        return cls(urls.public_url, email, support, support)


def as_json(document: Any) -> str:
    """A manifest file's text: two-space JSON in the order written, ending with a newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
