"""Render every CRM's app definition into ``{relative path: text}`` and write them to a folder."""

from __future__ import annotations

from pathlib import Path

from connector.kernel.errors import ConfigurationError
from connector.marketplace import developer_centres, hubspot
from connector.marketplace.listing import Listing
from connector.marketplace.urls import AppUrls

#: The public URL the committed ``manifests/`` are rendered for (the README's example).
EXAMPLE_PUBLIC_URL = "https://textback.example.com"


def render(public_url: str = EXAMPLE_PUBLIC_URL, *, support_email: str | None = None,
           support_url: str | None = None) -> dict[str, str]:
    """Every file of ``manifests/`` for the deployment at ``public_url``, by relative path."""
    listing = Listing.for_url(public_url, support_email=support_email, support_url=support_url)
    urls = AppUrls(listing.public_url)
    files = {"README.md": _readme(listing)}
    files.update({f"hubspot/{p}": text for p, text in hubspot.project(urls, listing).items()})
    files.update({f"jobber/{p}": text for p, text in developer_centres.jobber(urls).items()})
    files.update({f"housecallpro/{p}": text
                  for p, text in developer_centres.housecallpro(urls).items()})
    return dict(sorted(files.items()))


def write(files: dict[str, str], out: Path) -> list[Path]:
    """Write ``files`` under ``out`` (made when missing); return the paths written."""
    written = []
    for relative, text in files.items():
        path = out / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}",
                                     field="--out") from None
        written.append(path)
    return written


def _readme(listing: Listing) -> str:
    return f"""# manifests

The app definitions textback registers with each CRM's developer centre, for the deployment at
{listing.public_url}. They are rendered from the code (scopes from the CRM adapters, URLs from the
web routes, webhook topics from what the adapters act on), so do not edit them by hand: run

    textback manifests render --public-url https://your-textback.example --out manifests

and use the folder it writes. The committed copy is rendered for `{EXAMPLE_PUBLIC_URL}`; a test
fails when it differs from what the code renders.

- `hubspot/`: a HubSpot developer project (upload it with the HubSpot CLI).
- `jobber/`: what Jobber's Developer Center asks for, to copy into the app's settings.
- `housecallpro/`: what Housecall Pro's partner app and webhook settings ask for.

Each folder's README says how to register the app.
"""
