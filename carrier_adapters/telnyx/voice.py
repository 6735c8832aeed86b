"""Telnyx voice: Call Control ``call.hangup`` events, TeXML callbacks, and the TeXML ``<Dial>``.

Telnyx has two voice products and an account uses one of them:

**Call Control** (JSON events). The business's Call Control application forwards the call with a
``transfer`` command; Telnyx then reports each leg's end with ``call.hangup``. We issue no
commands ourselves, so a new call (``call.initiated``) is not answered here (see
:func:`is_incoming_call`). What counts as missed is read from ``hangup_cause``:

- a leg that ended with ``timeout``/``no_answer`` (nobody picked up), ``user_busy``,
  ``call_rejected`` or ``not_found`` never got through: missed. That is the transfer's B-leg
  failing, and Telnyx keeps the caller's A-leg up afterwards;
- ``originator_cancel`` is the caller hanging up *before* the call was answered or bridged (a
  SIP CANCEL; after an answer the caller's hang-up is ``normal_clearing``): missed, canceled;
- ``normal_clearing`` and ``time_limit`` end a call that was answered: not missed. That also
  covers the A-leg the business's application hangs up after a failed transfer, whose miss
  the B-leg already reported;
- ``unspecified`` says nothing either way: recorded as ``UNKNOWN`` (the policy never texts it).

Both legs of a transferred call share ``call_session_id``, our event id, so the store keeps one
missed call whichever leg reports first. On the B-leg ``from`` is the original caller as long
as the transfer keeps Telnyx's default ``from``; ``to`` there is the forwarding target, not the
business number, and the connector then texts from the account's first number.
https://developers.telnyx.com/api-reference/callbacks/call-hangup and
https://developers.telnyx.com/api-reference/call-commands/transfer-call

**TeXML** (Twilio-style forms, signed with the same Ed25519 headers). Our answer to the new
call's instruction request is a ``<Dial action=...>``; the ``action`` request carries
``DialCallStatus`` and status callbacks carry ``CallStatus`` (``completed``, ``no-answer``,
``busy``, ``failed``, ``canceled``).
https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/dial and
https://developers.telnyx.com/api-reference/callbacks/texml-call-completed
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from carrier_adapters.base import CarrierAdapter
from carrier_adapters.dialect import VoiceMarkup
from connector.kernel.errors import MalformedWebhookError
from connector.kernel.events import AnsweredCall, CallOutcome, MissedCall
from connector.kernel.http import WebhookRequest
from connector.kernel.phone import to_e164
from connector.kernel.times import first_time, parse_time

from .webhooks import CARRIER, event_data, is_json, payload_of

#: Call Control ``call.hangup`` ``hangup_cause`` values (the full documented enum).
HANGUP_CAUSES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "timeout": CallOutcome.NO_ANSWER,  # the transfer's timeout_secs ran out
        "no_answer": CallOutcome.NO_ANSWER,
        "user_busy": CallOutcome.BUSY,
        "call_rejected": CallOutcome.REJECTED,
        "not_found": CallOutcome.FAILED,
        "originator_cancel": CallOutcome.CANCELED,
        "normal_clearing": CallOutcome.ANSWERED,
        "time_limit": CallOutcome.ANSWERED,  # only an answered call reaches its time limit
        "unspecified": CallOutcome.UNKNOWN,
    }
)
#: TeXML ``DialCallStatus``/``CallStatus`` values, as in Twilio's TwiML.
TEXML_STATUSES: Mapping[str, CallOutcome] = MappingProxyType(
    {
        "no-answer": CallOutcome.NO_ANSWER,
        "busy": CallOutcome.BUSY,
        "failed": CallOutcome.FAILED,
        "canceled": CallOutcome.CANCELED,
        "completed": CallOutcome.ANSWERED,
        "answered": CallOutcome.ANSWERED,
        "in-progress": CallOutcome.ANSWERED,
    }
)
#: Both tables, for :attr:`TelnyxCarrier.call_outcomes` (their keys do not overlap).
CALL_OUTCOMES: Mapping[str, CallOutcome] = MappingProxyType({**HANGUP_CAUSES, **TEXML_STATUSES})
#: TeXML statuses of a call that has not ended yet.
TEXML_NOT_ENDED = frozenset({"queued", "initiated", "ringing"})
#: Call Control events that can report a miss; every other ``call.*`` event is progress.
HANGUP_EVENT = "call.hangup"
MACHINE_DETECTION_EVENT = "call.machine.detection.ended"

#: TeXML: ``<Dial timeout>`` is 5 to 120 seconds (default 30) per Telnyx's Dial reference. It
#: documents TwiML compatibility but no limit on ``<Number>`` nouns; we keep Twilio's ten.
#: The ``action`` request is signed like every TeXML webhook and carries ``DialCallStatus``.
TEXML = VoiceMarkup(
    name="TeXML", content_type="text/xml", timeout_min=5, timeout_max=120, max_numbers=10
)


def is_incoming_call(adapter: CarrierAdapter, request: WebhookRequest) -> bool:
    """True for the TeXML instruction request of a new call, which we answer with ``<Dial>``.

    That request has ``CallSid`` and a live ``CallStatus`` (``ringing``, or ``in-progress``
    since TeXML answers the inbound leg before fetching instructions), and none of the fields
    of the other TeXML requests: no ``DialCallStatus`` (``<Dial action>``), no
    ``CallbackSource`` (status callbacks). Call Control's ``call.initiated`` is never one: a
    Call Control call is routed by REST commands, which this connector does not issue.
    """
    if is_json(request):
        return False
    form = request.form
    return (
        "CallSid" in form
        and (form.get("CallStatus") or "").strip().lower() in ("ringing", "in-progress")
        and "DialCallStatus" not in form
        and "CallbackSource" not in form
        and (form.get("Direction") or "inbound").startswith("inbound")
    )


def parse_call_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    """The missed call a Call Control event or TeXML callback reports, else None."""
    if is_json(request):
        return _call_control_event(adapter, request)
    return _texml_callback(adapter, request)


def _call_control_event(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    data = event_data(request)
    event_type = data.get("event_type")
    payload = payload_of(data)
    if event_type == HANGUP_EVENT:
        cause = str(payload.get("hangup_cause") or "").strip().lower()
        if not cause:
            raise MalformedWebhookError("telnyx: call.hangup lacks hangup_cause")
        outcome = adapter.call_outcome(cause)
        if outcome is CallOutcome.ANSWERED:
            return None
    elif event_type == MACHINE_DETECTION_EVENT and payload.get("result") == "machine":
        # Answering-machine detection on the transfer found the forwarded phone's voicemail.
        outcome = CallOutcome.VOICEMAIL
    else:
        return None
    return _missed_call(data, payload, outcome)


def _missed_call(
    data: Mapping[str, Any], payload: Mapping[str, Any], outcome: CallOutcome
) -> MissedCall:
    session = payload.get("call_session_id") or payload.get("call_leg_id")
    if not session:
        raise MalformedWebhookError("telnyx: call event lacks call_session_id")
    caller_raw = payload.get("from") if isinstance(payload.get("from"), str) else ""
    occurred = first_time(data.get("occurred_at"), rfc2822=True)
    started = parse_time(payload.get("start_time"), rfc2822=True)
    ring = (occurred - started).total_seconds() if started else None
    return MissedCall(
        carrier=CARRIER,
        event_id=str(session),
        caller=to_e164(caller_raw),
        called=to_e164(payload.get("to") if isinstance(payload.get("to"), str) else None),
        outcome=outcome,
        occurred_at=occurred,
        caller_raw=caller_raw or "",
        ring_seconds=ring if ring is not None and ring >= 0 else None,
        voicemail=outcome is CallOutcome.VOICEMAIL,
        raw=dict(data),
    )


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def _texml_callback(adapter: CarrierAdapter, request: WebhookRequest) -> MissedCall | None:
    form = request.form
    if "CallSid" not in form or "From" not in form:
        raise MalformedWebhookError("telnyx: TeXML callback lacks CallSid or From")
    if "DialCallStatus" in form:
        status = form["DialCallStatus"].strip().lower()
        duration = _seconds(form.get("DialCallDuration"))
    elif "CallStatus" in form:
        status = form["CallStatus"].strip().lower()
        duration = _seconds(form.get("CallDuration"))
    else:
        raise MalformedWebhookError("telnyx: TeXML callback lacks CallStatus and DialCallStatus")
    if status in TEXML_NOT_ENDED:
        return None
    outcome = adapter.call_outcome(status)
    if outcome is CallOutcome.ANSWERED:
        # TeXML callbacks also carry Call Control's HangupCause; a <Dial> that "completed"
        # because the caller cancelled it while it rang never connected anyone.
        cancelled = (form.get("HangupCause") or "").strip().lower() == "originator_cancel"
        if "DialCallStatus" not in form or not cancelled:
            return None
        outcome = CallOutcome.CANCELED
    caller_raw = form["From"]
    recording = _seconds(form.get("RecordingDuration"))
    return MissedCall(
        carrier=CARRIER,
        # A child leg names its parent; every callback about one call shares this id.
        event_id=form.get("ParentCallSid") or form["CallSid"],
        caller=to_e164(caller_raw),
        called=to_e164(form.get("To")),
        outcome=outcome,
        occurred_at=first_time(form.get("Timestamp"), rfc2822=True),
        caller_raw=caller_raw,
        ring_seconds=duration,
        voicemail=bool(recording) if recording is not None else bool(form.get("RecordingUrl")),
        attestation=form.get("ShakenStirAttestation") or None,
        raw=dict(form),
    )


def parse_answered_call(adapter: CarrierAdapter, request: WebhookRequest) -> AnsweredCall | None:
    """A TeXML call between the business and a customer that someone answered, else None.

    Two shapes count, as with Twilio's TwiML: the ``<Dial action>`` of a forwarded call that
    connected (``DialCallStatus`` ``completed``, not cancelled by the caller), and a status
    callback of an outbound call (``Direction`` ``outbound...``, the business calling back)
    that was picked up. Call Control events return None: ``call.answered`` and
    ``call.bridged`` do not say which party is the customer.
    """
    if is_json(request) or "CallSid" not in request.form:
        return None
    form = request.form
    dial_status = (form.get("DialCallStatus") or "").strip().lower()
    if dial_status in ("completed", "answered", "in-progress"):
        if (form.get("HangupCause") or "").strip().lower() == "originator_cancel":
            return None
        customer, direction = to_e164(form.get("From")), "inbound"
    elif (form.get("Direction") or "").startswith("outbound") and not dial_status:
        status = (form.get("CallStatus") or "").strip().lower()
        talked = (_seconds(form.get("CallDuration")) or 0) > 0
        if not (status == "in-progress" or (status == "completed" and talked)):
            return None
        customer, direction = to_e164(form.get("To")), "outbound"
    else:
        return None
    if customer is None:
        return None
    return AnsweredCall(
        carrier=CARRIER,
        event_id=f"{form['CallSid']}:{direction}",
        customer=customer,
        direction=direction,
        occurred_at=first_time(form.get("Timestamp"), rfc2822=True),
        # Our number: ``To`` of a call to the business, ``From`` of a call it placed.
        business_number=to_e164(form.get("From" if direction == "outbound" else "To")),
    )
