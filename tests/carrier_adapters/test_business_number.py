"""Answered calls and delivery reports carry the business's own number, read by the parser.

The webhook view binds an event to an account by that number when the carrier's signature does
not cover the URL (see ``CarrierAdapter.business_number``), so a parser that stopped filling it
would let a correctly signed event for one account be stored under another.
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.kernel.errors import ConnectorError
from connector.kernel.events import AnsweredCall, MessageStatusUpdate
from tests.connector.test_webhook_forgeries import contract_for, scenarios, url

#: Carriers whose answered-call payloads name our number (Bandwidth and Plivo report no
#: answered calls; see their adapters).
NAME_OURS_ON_ANSWER = ("aircall", "callrail", "dialpad", "quo", "ringcentral", "sandbox",
                       "telnyx", "twilio", "vonage", "zoom")
#: Carriers whose delivery reports name the number we sent from (call-event sources send no
#: texts; RingCentral's message-store events carry no delivery reports).
NAME_OURS_ON_REPORT = ("aircall", "bandwidth", "dialpad", "plivo", "quo", "telnyx", "twilio",
                       "vonage")


def _events(name: str, kind: str) -> list[Any]:
    contract = contract_for(name)
    adapter = contract.adapter_class(contract.credentials())
    events = []
    for scenario in scenarios(contract, kind):
        try:
            body, content_type = contract.scenario_body(kind, scenario)
        except pytest.skip.Exception:
            continue
        request = contract.sign_body(url(name, "acme", kind), body, content_type)
        try:
            event = (adapter.parse_answered_call(request) if kind == "voice"
                     else adapter.parse_status(request))
        except ConnectorError:
            continue
        if event is not None:
            events.append((event, adapter.business_number(event, request)))
    return events


@pytest.mark.parametrize("name", NAME_OURS_ON_ANSWER)
def test_an_answered_call_names_our_number(name: str) -> None:
    answered = [(e, bound) for e, bound in _events(name, "voice") if isinstance(e, AnsweredCall)]
    named = [(e, bound) for e, bound in answered if e.business_number]
    assert named, f"{name}: no answered-call fixture names our number"
    for event, bound in named:
        assert event.business_number.startswith("+")
        assert event.business_number != event.customer
        assert bound == event.business_number  # what the webhook view binds by


@pytest.mark.parametrize("name", NAME_OURS_ON_REPORT)
def test_a_delivery_report_names_the_number_we_sent_from(name: str) -> None:
    reports = [(e, bound) for e, bound in _events(name, "status")
               if isinstance(e, MessageStatusUpdate)]
    named = [(e, bound) for e, bound in reports if e.business_number]
    assert named, f"{name}: no delivery-report fixture names our number"
    for event, bound in named:
        assert event.business_number.startswith("+")
        assert bound == event.business_number
