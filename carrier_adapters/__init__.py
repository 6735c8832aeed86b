"""Carrier adapters, keyed by the ``carrier.kind`` of the account file."""

from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.sandbox import SandboxCarrier
from carrier_adapters.twilio import TwilioCarrier

CARRIERS: dict[str, type[CarrierAdapter]] = {
    SandboxCarrier.name: SandboxCarrier,
    TwilioCarrier.name: TwilioCarrier,
}

__all__ = ["CARRIERS", "CallRouting", "CarrierAdapter"]
