"""``textback explain CALL_ID``: what happened to a call and why, from its stored trail."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select

from connector.domain.templates import sms_encoding
from connector.jobs.crm_text import OUTCOME_WORDS, REASON_WORDS
from connector.kernel.times import format_time
from connector.runtime import Runtime
from connector.storage.models import Account, Call, CallEvent, CrmLink, Message
from connector.storage.states import Purpose


def explain(runtime: Runtime, call_id: str) -> str:
    """A readable account of one call: facts, decision and reason, text, CRM records, trail."""
    with runtime.db.session() as s:
        call = s.get(Call, call_id)
        if call is None:
            call = s.scalar(select(Call).where(Call.event_id == call_id))
        if call is None:
            raise LookupError(f"no call with id or carrier id {call_id!r}")
        account = s.get(Account, call.account_id)
        assert account is not None  # noqa: S101
        tz = ZoneInfo(account.timezone)
        text = s.scalar(
            select(Message).where(Message.purpose_key == Purpose.TEXT_BACK.key(call.id))
        )
        links = s.scalars(
            select(CrmLink).where(
                CrmLink.account_id == account.id,
                CrmLink.local_key.in_([call.id, call.caller or "", text.id if text else ""]),
            )
        ).all()
        events = s.scalars(
            select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.id)
        ).all()
        lines = [
            f"Call {call.id} ({call.carrier} {call.event_id}) for {account.name} [{account.id}]",
            f"  from {call.caller or repr(call.caller_raw) + ' (withheld or invalid)'}"
            f" to {call.called} at {format_time(call.occurred_at, tz)}",
            f"  outcome: {call.outcome}"
            + (f" (the caller {OUTCOME_WORDS[call.outcome]})" if call.outcome in OUTCOME_WORDS
               else "")
            + (f", rang {call.ring_seconds:.0f} s" if call.ring_seconds else "")
            + (", voicemail left" if call.voicemail else ""),
        ]
        if call.decision is None:
            lines.append("  decision: not made yet (state received)")
        elif call.decision == "text":
            lines.append("  decision: text the caller (the call was missed; nothing stood in the way)")
        else:
            lines.append(
                f"  decision: not texted, reason {call.reason}: "
                f"{REASON_WORDS.get(call.reason or '', '')}"
            )
        if call.decision_trace:
            lines.append("  rules, in order, with the facts they used:")
            for rule, passed, facts in call.decision_trace:
                lines.append(f"    [{'pass' if passed else 'STOP'}] {rule}: {facts}")
        if call.reason in ("called_back", "answered_later", "opted_out") and call.decision == "text":
            lines.append(f"  cancelled before sending: {REASON_WORDS.get(call.reason, '')}")
        if text is not None:
            lines.append(
                f"  text: {text.status}"
                + (f", carrier id {text.carrier_message_id}" if text.carrier_message_id else "")
                + (f", error {text.error_code}" if text.error_code else "")
                + f", {text.send_attempts} send attempt(s)"
            )
            lines.append(
                f"  template: {call.scenario} ({call.language}); {sms_encoding(text.body)}"
                + (f"; send at {format_time(call.send_at, tz)}" if call.send_at else "")
            )
        if call.line_type:
            lines.append(f"  line type: {call.line_type}")
        lines.append(f"  state: {call.state}; CRM: {call.crm_state}"
                     + (f" (last error: {call.last_error})" if call.last_error else ""))
        for link in links:
            lines.append(f"  CRM {link.crm} {link.object_type}: {link.crm_id}")
        lines.append(f"  trail (times in {account.timezone}):")
        for event in events:
            lines.append(
                f"    {event.at.astimezone(tz):%H:%M:%S} {event.step}"
                + (f": {event.detail}" if event.detail else "")
            )
        return "\n".join(lines)
