"""The TwiML family of voice markup: one builder for every carrier that speaks a dialect of it.

Twilio's TwiML, Telnyx's TeXML, Plivo XML and Bandwidth's BXML answer a call the same way: a
``<Response>`` holding verbs, one of which rings other numbers (``<Dial><Number>`` or
``<Transfer><PhoneNumber>``) and reports how that ended to a URL of ours. They differ in names,
bounds and spelling, which a :class:`VoiceMarkup` records; the replies are built here once.

- TwiML ``<Dial>``: https://www.twilio.com/docs/voice/twiml/dial
- TeXML ``<Dial>``: https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/dial
- Plivo XML ``<Dial>``: https://www.plivo.com/docs/voice/xml/dial
- BXML ``<Transfer>``: https://dev.bandwidth.com/docs/voice/bxml/transfer
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from xml.etree import ElementTree as ET

from carrier_adapters.base import CallRouting
from connector.kernel.http import WebhookReply


def _as_is(number: str) -> str:
    return number


@dataclass(frozen=True)
class VoiceMarkup:
    """One dialect: the names of its ringing verb and its attributes, and their bounds."""

    #: The dialect's name, for error messages (``TwiML``, ``TeXML``...).
    name: str
    content_type: str
    #: The verb that rings the forwarding numbers, and the noun of each number.
    dial_verb: str = "Dial"
    number_noun: str = "Number"
    #: Attributes of the verb: where the outcome is reported, with which method, and the ring
    #: timeout in seconds.
    action_attribute: str = "action"
    method_attribute: str = "method"
    timeout_attribute: str = "timeout"
    #: The timeout the dialect accepts (inclusive); None: no upper bound.
    timeout_min: int = 1
    timeout_max: int | None = None
    #: How many numbers the verb may ring at once; None: no documented limit.
    max_numbers: int | None = None
    #: Further attributes every ringing verb carries (``answerOnBridge``, ``redirect``).
    dial_attributes: Mapping[str, str] = field(default_factory=dict)
    #: How a number is spelled in the noun (Plivo drops the ``+``).
    number_format: Callable[[str], str] = _as_is
    #: The reply type (BXML's hides its body from ``repr``: it may carry credentials).
    reply_type: type[WebhookReply] = WebhookReply

    def reply(self, response: ET.Element) -> WebhookReply:
        """``response`` serialised with an XML declaration, as the dialect's reply."""
        body = ET.tostring(response, encoding="UTF-8", xml_declaration=True)
        return self.reply_type(body, self.content_type)

    def timeout(self, seconds: int) -> int:
        """``seconds`` held within the dialect's bounds."""
        held = max(int(seconds), self.timeout_min)
        return held if self.timeout_max is None else min(held, self.timeout_max)

    def dial(
        self,
        routing: CallRouting,
        *,
        attributes: Mapping[str, str] | None = None,
        number_attributes: Mapping[str, str] | None = None,
    ) -> WebhookReply:
        """Ring every number of ``routing`` at once; the carrier reports the outcome to
        ``routing.action_url``. ``attributes`` add to the verb's, ``number_attributes`` go on
        each number's noun."""
        if not routing.forward_to:
            raise ValueError("routing.forward_to is empty: there is nothing to dial")
        if self.max_numbers is not None and len(routing.forward_to) > self.max_numbers:
            raise ValueError(f"{self.name} rings at most {self.max_numbers} numbers at once")
        response = ET.Element("Response")
        verb = ET.SubElement(
            response,
            self.dial_verb,
            {
                self.action_attribute: routing.action_url,
                self.method_attribute: "POST",
                self.timeout_attribute: str(self.timeout(routing.ring_timeout_seconds)),
                **self.dial_attributes,
                **(attributes or {}),
            },
        )
        for number in routing.forward_to:
            noun = ET.SubElement(verb, self.number_noun, dict(number_attributes or {}))
            noun.text = self.number_format(number)
        return self.reply(response)

    def hangup(self) -> WebhookReply:
        """``<Response><Hangup/></Response>``: end the call (ignored on status callbacks)."""
        return self._hangup

    def empty(self) -> WebhookReply:
        """An empty ``<Response/>``: acknowledge the webhook and do nothing more."""
        return self._empty

    # The two replies that never change are serialised once per dialect: they answer every
    # missed call and every text, the webhooks' busiest path.

    @cached_property
    def _hangup(self) -> WebhookReply:
        response = ET.Element("Response")
        ET.SubElement(response, "Hangup")
        return self.reply(response)

    @cached_property
    def _empty(self) -> WebhookReply:
        return self.reply(ET.Element("Response"))
