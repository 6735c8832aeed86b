"""Carrier adapters, keyed by the ``carrier.kind`` of the account file."""

from carrier_adapters.aircall import AircallCarrier
from carrier_adapters.bandwidth import BandwidthCarrier
from carrier_adapters.base import CallRouting, CarrierAdapter
from carrier_adapters.callrail import CallRailCarrier
from carrier_adapters.dialpad import DialpadCarrier
from carrier_adapters.plivo import PlivoCarrier
from carrier_adapters.quo import QuoCarrier
from carrier_adapters.ringcentral import RingCentralCarrier
from carrier_adapters.sandbox import SandboxCarrier
from carrier_adapters.telnyx import TelnyxCarrier
from carrier_adapters.twilio import TwilioCarrier
from carrier_adapters.vonage import VonageCarrier
from carrier_adapters.zoom import ZoomCarrier

CARRIERS: dict[str, type[CarrierAdapter]] = {
    adapter.name: adapter
    for adapter in (
        SandboxCarrier, TwilioCarrier, TelnyxCarrier, VonageCarrier, PlivoCarrier, BandwidthCarrier,
        # Call-event sources: they report missed calls; some text through their own API.
        RingCentralCarrier, QuoCarrier, AircallCarrier, DialpadCarrier, CallRailCarrier, ZoomCarrier,
    )
}

__all__ = ["CARRIERS", "CallRouting", "CarrierAdapter"]
