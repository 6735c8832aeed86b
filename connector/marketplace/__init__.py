"""The marketplace app definitions in ``manifests/``, rendered from the code.

``textback manifests render`` writes, for a deployment's public URL, what each CRM's developer
centre needs to know about the app: the HubSpot developer project (:mod:`.hubspot`), and the
Jobber and Housecall Pro app settings an admin copies from (:mod:`.developer_centres`). Scopes
come from each adapter's declaration, URLs from the web app's routes and webhook topics from
each adapter's :class:`~crm_adapters.base.WebhookSpec`, so the committed files cannot drift from
what the code asks for and accepts.
"""

from connector.marketplace.listing import Listing
from connector.marketplace.render import EXAMPLE_PUBLIC_URL, render, write

__all__ = ["EXAMPLE_PUBLIC_URL", "Listing", "render", "write"]
