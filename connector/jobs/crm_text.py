"""The words the connector writes into CRM records: task bodies, titles and notes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from connector.storage.models import Account, Call, Message
from connector.storage.states import CARRIER_HAS_TEXT, MessageStatus

OUTCOME_WORDS = {
    "no-answer": "rang out with no answer",
    "busy": "got a busy line",
    "failed": "could not be connected",
    "canceled": "hung up while it was ringing",
    "rejected": "was rejected",
    "voicemail": "went to voicemail",
    "after-hours": "called after hours",
    "unknown": "ended in a state the carrier did not explain",
}
REASON_WORDS = {
    "missed": "the call was missed and nothing stood in the way",
    "caller_withheld": "the caller ID was withheld",
    "internal_number": "the caller is on the team",
    "blocklisted": "the number is on the blocklist",
    "country_not_texted": "the account does not text that country",
    "unknown_outcome": "the call's outcome was unclear",
    "outcome_not_texted": "the account does not text this kind of missed call",
    "misdial": "the caller hung up too soon to be a real call",
    "likely_spam": "it looks like spam or a robocall",
    "opted_out": "this number has opted out of texts",
    "burst": "they called several times in a row; one text covers them",
    "cooldown": "we already texted this number recently",
    "in_conversation": "a team member is already talking with them",
    "automation_paused": "a team member paused automated texts to this caller",
    "landline": "the number is a landline: call them back",
    "no_business_number": "the account has no number to text from",
    "called_back": "the business called them back first",
    "answered_later": "they called again and someone answered",
}


def local_time(account: Account, when: datetime) -> str:
    """A time in the account's zone, for people."""
    return when.astimezone(ZoneInfo(account.timezone)).strftime("%a %d %b %Y %H:%M %Z")


def call_title(call: Call) -> str:
    """The call activity's title."""
    if call.reason == "likely_spam":
        return "Likely spam call (not texted)"
    return f"Missed call ({OUTCOME_WORDS.get(call.outcome, call.outcome)})"


def task_subject(call: Call) -> str:
    """The follow-up task's subject."""
    if call.reason == "landline":
        return f"Call back {call.caller}: missed call from a landline (not texted)"
    return f"Call back {call.caller}: missed call"


def text_line(account: Account, call: Call, text: Message | None) -> str:
    """What happened to the text-back, in one line."""
    if text is None:
        return f"Not texted: {REASON_WORDS.get(call.reason or '', call.reason)}."
    if text.status in CARRIER_HAS_TEXT:
        return f'Texted at {local_time(account, text.updated_at)}: "{text.body}"'
    if text.status == MessageStatus.INTENT and call.state == "scheduled" and call.send_at is not None:
        return f'Text scheduled for {local_time(account, call.send_at)}: "{text.body}"'
    if text.status == MessageStatus.CANCELLED:
        return f"The pending text was cancelled: {REASON_WORDS.get(call.reason or '', '')}."
    return f"The text-back failed ({text.error_code or 'carrier error'})."


def task_body(account: Account, call: Call, text: Message | None) -> str:
    """What the rep reads on the follow-up task: who, when, what happened, what we texted."""
    lines = [
        f"Missed call from {call.caller or call.caller_raw or 'a withheld number'} "
        f"to {call.called or 'the business line'} at {local_time(account, call.occurred_at)}.",
        f"What happened: the caller {OUTCOME_WORDS.get(call.outcome, call.outcome)}"
        + (f" (rang {call.ring_seconds:.0f} s)" if call.ring_seconds else "")
        + ("; a voicemail was left." if call.voicemail else "."),
        text_line(account, call, text),
        f"textback call {call.id}",
    ]
    return "\n".join(lines)
