"""What the setup pages ask a carrier: do these credentials work, which numbers does the account
own, where do their webhooks point, and where must textback's URLs go.

The values here are plain data; each adapter fills them from its carrier's API
(:meth:`~carrier_adapters.base.CarrierAdapter.check_credentials`,
:meth:`~carrier_adapters.base.CarrierAdapter.list_numbers`,
:meth:`~carrier_adapters.base.CarrierAdapter.point_webhooks`). Where a carrier's API cannot
point a number at textback, :meth:`~carrier_adapters.base.CarrierAdapter.webhook_settings` says
which URL to paste into which of the carrier's settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote

from connector.kernel.phone import mask

#: What a number can do, in the words :attr:`OwnedNumber.capabilities` uses.
NUMBER_CAPABILITIES = ("voice", "sms", "mms")

#: How textback learns of missed calls on a number: ``forward`` when the number's voice
#: webhook asks textback how to answer (textback rings the ``forward_to`` phones and watches
#: the result), ``watch`` when the business keeps its own call flow and only the number's call
#: status reports come to textback.
CallHandling = Literal["forward", "watch"]


@dataclass(frozen=True)
class WebhookUrls:
    """textback's three webhook URLs for one account and carrier (``voice``, ``sms``, ``status``)."""

    voice: str
    sms: str
    status: str

    def for_kind(self, kind: str) -> str:
        """The URL of ``kind`` (``voice``, ``sms`` or ``status``)."""
        if kind not in ("voice", "sms", "status"):
            raise ValueError(f"unknown webhook kind {kind!r}")
        url: str = getattr(self, kind)
        return url


def webhook_urls(public_url: str, carrier: str, account_id: str) -> WebhookUrls:
    """The exact URLs the carrier ``carrier`` must call for account ``account_id``.

    ``public_url`` is ``TEXTBACK_PUBLIC_URL`` (the https address carriers reach textback at);
    the path is ``/webhooks/<carrier>/<account id>/<kind>``, the route the webhook view serves.
    """
    base = public_url.rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ValueError("public_url must be an http(s) URL")
    prefix = f"{base}/webhooks/{quote(carrier, safe='')}/{quote(account_id, safe='')}"
    return WebhookUrls(voice=f"{prefix}/voice", sms=f"{prefix}/sms", status=f"{prefix}/status")


@dataclass(frozen=True)
class OwnedNumber:
    """A phone number the carrier account owns, as its API lists it.

    ``capabilities`` holds some of :data:`NUMBER_CAPABILITIES`. The three URL fields are where
    the number's voice, messaging and status webhooks point now, where the carrier's API shows
    them (None when unset or not shown). ``carrier_id`` is the carrier's own id of the number
    (Twilio's ``PN...`` SID, Telnyx's numeric id), which :meth:`point_webhooks` may need.
    """

    e164: str
    friendly_name: str = ""
    capabilities: frozenset[str] = frozenset()
    voice_url: str | None = None
    sms_url: str | None = None
    status_url: str | None = None
    carrier_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"OwnedNumber({mask(self.e164)}, capabilities={sorted(self.capabilities)}, "
            f"carrier_id={self.carrier_id!r})"
        )

    def points_at(self, urls: WebhookUrls) -> bool:
        """True when the number's messaging webhook, and its voice or status webhook, are
        textback's (the carrier then reports this number's calls and texts to us)."""
        ours = {urls.voice, urls.sms, urls.status}
        calls = self.voice_url in ours or self.status_url == urls.voice
        return calls and self.sms_url in ours


@dataclass(frozen=True)
class WebhookChange:
    """One carrier setting :meth:`point_webhooks` wrote: its name in the carrier's API, the
    value before and the value after."""

    field: str
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        """False when the setting already held the value."""
        return self.before != self.after


@dataclass(frozen=True)
class WebhookField:
    """A setting in the carrier's console that takes one of textback's URLs.

    ``where`` names it as the carrier's console does; ``kind`` is the URL it takes;
    ``calls`` limits it to one way of handling calls (None: always).
    """

    where: str
    kind: Literal["voice", "sms", "status"]
    method: str = "POST"
    note: str = ""
    calls: CallHandling | None = None


@dataclass(frozen=True)
class WebhookSetting:
    """What to paste where: the carrier's setting, the exact URL and the HTTP method."""

    where: str
    url: str
    method: str = "POST"
    note: str = ""


#: Where most carriers take the URLs; adapters with their own console words override it.
GENERIC_WEBHOOK_FIELDS: tuple[WebhookField, ...] = (
    WebhookField("The number's voice / call events webhook", "voice"),
    WebhookField("The number's inbound messages webhook", "sms"),
    WebhookField(
        "The delivery status callback (textback sets it on each text it sends)",
        "status",
        note="Only where the carrier has no per-message setting.",
    ),
)


class SetupCalls(Protocol):
    """A carrier's setup calls as functions of its REST client (a ``numbers`` module).

    An adapter that sets :attr:`~carrier_adapters.base.CarrierAdapter.setup_calls` to one and
    returns its client from ``setup_client()`` gets ``check_credentials`` from the base class,
    with the carrier's errors turned into what the setup page shows, and ``list_numbers`` and
    ``point_webhooks`` too when the module has ``list_numbers(client)`` and
    ``point_webhooks(client, number, urls, calls)`` functions (:func:`setup_call`).
    """

    def check_credentials(self, client: Any) -> None:
        """Raise unless the credentials work."""


def setup_call(calls: SetupCalls | None, name: str) -> Callable[..., Any] | None:
    """The module's function ``name`` (``check_credentials``, ``list_numbers``,
    ``point_webhooks``), None when it has none."""
    found = getattr(calls, name, None)
    return found if callable(found) else None
