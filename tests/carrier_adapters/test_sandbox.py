"""The built-in sandbox carrier passes the carrier contract suite."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from carrier_adapters.base import CarrierAdapter
from carrier_adapters.provisioning import webhook_urls
from carrier_adapters.sandbox import (
    DEFAULT_OWNED_NUMBERS,
    SIGNATURE_HEADER,
    MemoryOutbox,
    SandboxCarrier,
)
from connector.kernel import clock
from connector.kernel.errors import CredentialsRejectedError
from connector.kernel.events import CallOutcome, DeliveryStatus
from connector.kernel.http import WebhookRequest
from connector.kernel.signing import hmac_hex
from tests.contracts.carrier_contract import (
    CallSourceContract,
    CarrierContract,
    DeliveryReportContract,
    InboundMessagingContract,
    SendingContract,
    SignsBodyContract,
)
from tests.contracts.carrier_setup_contract import CarrierSetupContract

SECRET = "sandbox-test-secret"
URL = "https://textback.example.com/webhooks/sandbox/acme/{kind}"

PAYLOADS: dict[str, dict[str, Any]] = {
    "call_no_answer": {"call_id": "C1", "from": "+12025550143", "to": "+12025550100",
                       "outcome": "no-answer"},
    "call_busy": {"call_id": "C2", "from": "+12025550143", "to": "+12025550100",
                  "outcome": "busy"},
    "call_canceled": {"call_id": "C3", "from": "+12025550143", "to": "+12025550100",
                      "outcome": "canceled", "ring_seconds": 7},
    "call_answered": {"call_id": "C4", "from": "+12025550143", "to": "+12025550100",
                      "outcome": "answered"},
    "call_strange": {"call_id": "C5", "from": "+12025550143", "to": "+12025550100",
                     "outcome": "teleported"},
    "sms_reply": {"message_id": "M1", "from": "+12025550143", "to": "+12025550100",
                  "body": "Need a plumber"},
    "status_delivered": {"message_id": "SB1", "status": "delivered"},
    "status_failed": {"message_id": "SB2", "status": "failed", "error_code": "30006"},
    "status_strange": {"message_id": "SB3", "status": "vaporised"},
}


class TestSandboxContract(
    CarrierContract, CallSourceContract, InboundMessagingContract, DeliveryReportContract,
    SendingContract, SignsBodyContract, CarrierSetupContract,
):
    adapter_class = SandboxCarrier
    owned_numbers = DEFAULT_OWNED_NUMBERS
    checks_over_network = False
    secret_credentials = frozenset({"webhook_secret"})
    call_scenarios = {
        "call_no_answer": CallOutcome.NO_ANSWER,
        "call_busy": CallOutcome.BUSY,
        "call_canceled": CallOutcome.CANCELED,
        "call_answered": None,
        "call_strange": CallOutcome.UNKNOWN,
    }
    unknown_call_scenario = "call_strange"
    inbound_scenarios = {
        "sms_reply": {"sender": "+12025550143", "recipient": "+12025550100",
                      "body": "Need a plumber"},
    }
    status_scenarios = {
        "status_delivered": {"status": DeliveryStatus.DELIVERED, "message_id": "SB1"},
        "status_failed": {"status": DeliveryStatus.FAILED, "error_code": "30006"},
        "status_strange": {"status": DeliveryStatus.UNKNOWN},
    }
    unknown_status_scenario = "status_strange"
    signature_headers = (SIGNATURE_HEADER,)

    def credentials(self) -> Mapping[str, Any]:
        return {"webhook_secret": SECRET}

    def _request(self, kind: str, scenario: str, secret: str) -> WebhookRequest:
        body = json.dumps(PAYLOADS[scenario]).encode()
        return WebhookRequest.build(
            url=URL.format(kind=kind),
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: hmac_hex(secret, body)},
            body=body,
        )

    def signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return self._request(kind, scenario, SECRET)

    def wrongly_signed_request(self, kind: str, scenario: str) -> WebhookRequest:
        return self._request(kind, scenario, "another-secret")

    def sign_body(self, url: str, body: bytes, content_type: str) -> WebhookRequest:
        headers = {"Content-Type": content_type, SIGNATURE_HEADER: hmac_hex(SECRET, body)}
        return WebhookRequest.build(url=url, headers=headers, body=body)

    def stub_send(self, http, adapter: CarrierAdapter, status: int, body: Any,  # type: ignore[no-untyped-def]
                  headers: Mapping[str, str] | None = None) -> None:
        # The sandbox sends nothing over HTTP (no TransportFailureContract): failures are
        # queued on its outbox instead.
        assert isinstance(adapter, SandboxCarrier)
        outbox = adapter.outbox
        assert isinstance(outbox, MemoryOutbox)
        if status >= 300:
            outbox.fail_next(status)

    def success_send(self) -> tuple[int, Any, Mapping[str, Any]]:
        return 201, None, {"status": DeliveryStatus.SENT, "segments": 1}

    def error_body(self, status: int) -> Any:
        return None

    def http_attempts(self, http, adapter: CarrierAdapter) -> int:  # type: ignore[no-untyped-def]
        return 1

    def stub_account(self, http, adapter: CarrierAdapter) -> None:  # type: ignore[no-untyped-def]
        pass  # the sandbox owns DEFAULT_OWNED_NUMBERS and keeps settings on its outbox

    def stub_refused(self, http, adapter: CarrierAdapter) -> CarrierAdapter:  # type: ignore[no-untyped-def]
        return SandboxCarrier({"webhook_secret": "too-short"})


def test_sent_texts_are_recorded_and_found_for_reconciliation():
    adapter = SandboxCarrier({"webhook_secret": SECRET})
    result = adapter.send_sms(to="+12025550143", from_="+12025550100", body="hi")
    sent = adapter.outbox.sent_messages()
    assert [m["id"] for m in sent] == [result.message_id]

    found = adapter.find_sent_message(
        to="+12025550143", from_="+12025550100", body="hi",
        sent_after=clock.now().replace(year=2000),
    )
    assert found is not None and found.message_id == result.message_id
    assert adapter.find_sent_message(
        to="+12025550143", from_="+12025550100", body="other", sent_after=clock.now().replace(year=2000)
    ) is None


def test_sandbox_numbers_come_from_the_credentials_and_keep_their_settings():
    outbox = MemoryOutbox()
    adapter = SandboxCarrier(
        {"webhook_secret": SECRET, "owned_numbers": ["(202) 555-0100"]}, outbox=outbox
    )
    urls = webhook_urls("https://textback.example.com", "sandbox", "acme")
    changes = adapter.point_webhooks("+12025550100", urls)
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("voice_url", None, urls.voice), ("sms_url", None, urls.sms),
        ("status_url", None, urls.status),
    ]
    # Another adapter on the same outbox (another request of the same account) sees them.
    again = SandboxCarrier({"webhook_secret": SECRET, "owned_numbers": ["+12025550100"]},
                           outbox=outbox)
    [number] = again.list_numbers()
    assert number.e164 == "+12025550100"
    assert (number.voice_url, number.sms_url, number.status_url) == (
        urls.voice, urls.sms, urls.status
    )


def test_sandbox_refuses_a_short_secret_with_the_fix():
    with pytest.raises(CredentialsRejectedError, match="at least 16 characters"):
        SandboxCarrier({"webhook_secret": "s"}).check_credentials()
