"""Carrier adapters, keyed by the ``carrier.kind`` of the account file."""

from carrier_adapters.bandwidth import BandwidthCarrier
from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.plivo import PlivoCarrier
from carrier_adapters.sandbox import SandboxCarrier
from carrier_adapters.telnyx import TelnyxCarrier
from carrier_adapters.twilio import TwilioCarrier
from carrier_adapters.vonage import VonageCarrier

CARRIERS: dict[str, type[CarrierAdapter]] = {
    adapter.name: adapter
    for adapter in (
        SandboxCarrier, TwilioCarrier, TelnyxCarrier, VonageCarrier, PlivoCarrier, BandwidthCarrier
    )
}

__all__ = ["CARRIERS", "CallRouting", "CarrierAdapter"]
