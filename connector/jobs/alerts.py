"""Alerts to owners: by text from the business number (reply to it to answer the customer) and
by email through the deployment's SMTP server, per the owner's choice.

Alert texts are outbound message rows (``alert:...``) sent by the reply job; they are never
logged in the CRM. Emails are a job of their own, so no lane waits on the mail server (texts
least of all). Bodies are never logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.jobs.crm_text import local_time
from connector.jobs.routing import Owner
from connector.settings.account_settings import account_settings
from connector.storage.models import Account, Call, CrmLink, Message
from connector.storage.states import MessageStatus, Purpose

if TYPE_CHECKING:
    from connector.jobs.context import JobContext

log = logging.getLogger(__name__)
SMTP_TIMEOUT = 10.0


def record_link(session: Session, account: Account, customer: str) -> str | None:
    """A link to the customer's CRM record, when the account set ``crm.mapping.record_url``."""
    template = account_settings(account).crm_mapping.record_url
    if not template:
        return None
    contact_id = session.scalar(select(CrmLink.crm_id).where(
        CrmLink.account_id == account.id, CrmLink.object_type == "contact",
        CrmLink.local_key == customer))
    return template.replace("{contact_id}", contact_id) if contact_id else None


def alert_text(account: Account, call: Call, event: str, reply: str | None,
               link: str | None) -> str:
    """The words of an alert: who, what, and how to answer."""
    who = call.caller or "a caller"
    if event == "texted":
        head = f"Missed call from {who} at {local_time(account, call.occurred_at)}; we texted them."
    elif event == "reply":
        head = f'{who} replied: "{reply}"'
    else:
        head = f"No one has answered {who} yet (escalated to you)."
    tail = " Reply to this text to answer them."
    return f"[{account.name}] {head}{tail}" + (f" {link}" if link else "")


def raise_alert(runtime: JobContext, session: Session, account: Account, call: Call, owner: Owner,
                event: str, *, key: str, reply: str | None = None) -> None:
    """Alert ``owner`` about ``call`` by their channels; ``key`` makes each alert happen once."""
    link = record_link(session, account, call.caller or "")
    body = alert_text(account, call, event, reply, link)
    purpose = Purpose.ALERT.key(call.id, key, owner.id)
    if "sms" in owner.alerts and owner.mobile:
        exists = session.scalar(select(Message.id).where(
            Message.account_id == account.id, Message.purpose_key == purpose))
        if exists is None:
            numbers = account_settings(account).carrier.numbers
            from_number = call.called if call.called in numbers else numbers[0]
            alert = Message(account_id=account.id, call_id=call.id, direction="outbound",
                            purpose_key=purpose, customer=owner.mobile,
                            business_number=from_number, body=body, status=MessageStatus.INTENT,
                            crm_state="done")
            session.add(alert)
            session.commit()
            runtime.jobs.enqueue_reply(alert.id)
    if "email" in owner.alerts and owner.email:
        session.commit()
        runtime.jobs.enqueue_email(owner.email,
                                   f"[{account.name}] {event}: {call.caller or 'caller'}", body)


def send_email(runtime: JobContext, to: str, subject: str, body: str) -> bool:
    """Send one email through ``TEXTBACK_SMTP_URL``; False (logged) when it cannot."""
    url = runtime.settings.smtp_url
    if not url:
        log.warning("email alert skipped: TEXTBACK_SMTP_URL is not set")
        return False
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    message = EmailMessage()
    message["From"] = query["from"][0]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    try:
        smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with smtp_class(parts.hostname or "", parts.port or 0, timeout=SMTP_TIMEOUT) as smtp:
            if parts.scheme == "smtp" and query.get("starttls", ["false"])[0] == "true":
                smtp.starttls(context=ssl.create_default_context())
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("email alert failed: %s", type(exc).__name__)
        return False
    return True
