"""App events: what happened with a caller, on their CRM contact's timeline, once each.

The CRM sync sends them alongside the records it writes (HubSpot's app events; a CRM without
them, or a connection that cannot send them, is skipped without a request). Each occurrence
carries our id (``<kind>:<call or message id>``) and is linked in ``crm_links`` once the CRM
has it, so a retried sync never sends it twice; the CRM keeps one occurrence per id as well.

- ``missed_call``: every call the CRM hears about, texted or not, with the reason when not
  (a workflow on "missed call not texted because landline" starts here).
- ``texted_back``: the text-back went out (which template, which language).
- ``customer_replied``: the caller answered the text, with the reply.
- ``opted_out``: the caller sent an opt-out keyword.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from connector.domain.optout import Intent
from connector.jobs.steps import call_with_retries, get_link, set_link
from connector.settings.account_settings import account_settings
from connector.storage.models import Account, Call, Message
from connector.storage.states import MessageStatus
from crm_adapters.base import AppEvent, CrmAdapter

log = logging.getLogger(__name__)

#: ``crm_links.object_type`` of a sent occurrence.
LINK_TYPE = "app_event"


def _send(session: Session, account: Account, crm: CrmAdapter, event: AppEvent) -> None:
    """Send ``event`` unless it was sent before; link it once the CRM has it."""
    if get_link(session, account.id, crm.name, LINK_TYPE, event.event_id) is not None:
        return
    session.commit()  # nothing of ours held open across the request
    try:
        call_with_retries(lambda: crm.send_app_event(event))
    except NotImplementedError:
        return  # this CRM, or this connection to it, has no app events
    set_link(session, account.id, crm.name, LINK_TYPE, event.event_id, event.kind)
    session.commit()
    log.info("app event sent crm=%s kind=%s", crm.name, event.kind)


def _owner(account: Account, call: Call | None) -> str:
    return (call.owner_id if call is not None else None) or \
        account_settings(account).crm_mapping.owner_id or ""


def call_events(session: Session, account: Account, crm: CrmAdapter, call: Call,
                text: Message | None, contact_id: str) -> None:
    """``missed_call`` for ``call`` and, once its text went, ``texted_back``."""
    texted = text is not None and text.status in (MessageStatus.SENT, MessageStatus.DELIVERED)
    business_number = (text.business_number if text is not None else "") or call.called or ""
    _send(session, account, crm, AppEvent(
        kind="missed_call", event_id=f"missed_call:{call.id}", contact_id=contact_id,
        occurred_at=call.occurred_at,
        properties={"business_number": business_number, "outcome": call.outcome,
                    "texted": "yes" if texted else "no",
                    "suppression_reason": "" if texted or call.decision == "text"
                    else (call.reason or ""),
                    "owner_id": _owner(account, call), "call_id": call.id}))
    if texted and text is not None:
        _send(session, account, crm, AppEvent(
            kind="texted_back", event_id=f"texted_back:{text.id}", contact_id=contact_id,
            occurred_at=text.last_attempt_at or text.created_at,
            properties={"business_number": text.business_number, "template": call.scenario or "",
                        "language": call.language or "", "owner_id": _owner(account, call),
                        "call_id": call.id}))


def message_events(session: Session, account: Account, crm: CrmAdapter, message: Message,
                   contact_id: str) -> None:
    """``customer_replied`` for a reply, ``opted_out`` for an opt-out keyword."""
    if message.direction != "inbound":
        return
    call = session.get(Call, message.call_id) if message.call_id else None
    if message.intent == Intent.OPT_OUT:
        _send(session, account, crm, AppEvent(
            kind="opted_out", event_id=f"opted_out:{message.id}", contact_id=contact_id,
            occurred_at=message.created_at,
            properties={"business_number": message.business_number,
                        "keyword": message.body.strip()[:40]}))
    elif message.intent in (None, Intent.NONE):
        _send(session, account, crm, AppEvent(
            kind="customer_replied", event_id=f"customer_replied:{message.id}",
            contact_id=contact_id, occurred_at=message.created_at,
            properties={"business_number": message.business_number, "reply_text": message.body,
                        "owner_id": _owner(account, call),
                        "call_id": call.id if call is not None else ""}))
