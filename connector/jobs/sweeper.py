"""Queue jobs and the periodic sweeper, registered on the runtime's Huey instance."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from huey import crontab
from sqlalchemy import or_, select

from connector.domain.policy import NO_CRM_REASONS
from connector.jobs import alerts, conversation, crm_sync, replies, workflow_text
from connector.jobs import text_back as workflow
from connector.jobs.queue import PRIORITY_CRM, PRIORITY_TEXT
from connector.kernel import clock
from connector.storage import nonces
from connector.storage.models import Call, Message
from connector.storage.states import (
    CRM_SYNCABLE_STATES,
    CRM_UNFINISHED_STATES,
    CallState,
    CrmState,
    MessageStatus,
    Purpose,
)

if TYPE_CHECKING:
    from connector.jobs.context import JobContext

log = logging.getLogger(__name__)

#: Work older than this is left alone by the sweeper (and shown by ``explain``).
SWEEP_HORIZON = timedelta(days=3)
#: A row untouched for this long, not leased, and not finished is considered stalled.
STALL_AFTER = timedelta(seconds=60)


class Jobs:
    """The job handles; ``enqueue_*`` put work on the queue, the database already holds it."""

    def __init__(self, runtime: JobContext) -> None:
        self.runtime = runtime
        huey, crm = runtime.huey, runtime.crm_huey  # the texts lane and the CRM lane
        self._text_back = huey.task(priority=PRIORITY_TEXT, name="text_back")(
            lambda call_id: workflow.send_text_back(runtime, call_id)
        )
        self._crm_sync = crm.task(priority=PRIORITY_CRM, name="crm_sync")(
            lambda call_id: crm_sync.sync_call(runtime, call_id)
        )
        self._message_sync = crm.task(priority=PRIORITY_CRM, name="message_sync")(
            lambda message_id: crm_sync.sync_message(runtime, message_id)
        )
        self._reply = huey.task(priority=PRIORITY_TEXT, name="send_reply")(
            lambda message_id: replies.send_reply(runtime, message_id)
        )
        self._workflow_text = huey.task(priority=PRIORITY_TEXT, name="workflow_text")(
            lambda message_id: workflow_text.run(runtime, message_id)
        )
        self._reply_received = huey.task(priority=PRIORITY_TEXT, name="reply_received")(
            lambda message_id: conversation.reply_received(runtime, message_id)
        )
        # Mail waits on its server: never in the texts lane; first in the CRM lane.
        self._email = crm.task(priority=PRIORITY_TEXT, name="email")(
            lambda to, subject, body: alerts.send_email(runtime, to, subject, body)
        )
        self._escalation = huey.task(priority=PRIORITY_TEXT, name="escalate")(
            lambda timer_id: conversation.fire(runtime, timer_id)
        )
        self._sweep = crm.periodic_task(crontab(minute="*"), name="sweep")(
            lambda: sweep(runtime)
        )

    def enqueue_text_back(
        self, call_id: str, *, delay: float | None = None, eta: datetime | None = None
    ) -> None:
        """Decide about and text back a missed call (now, after ``delay`` s, or at ``eta``)."""
        if eta is not None:
            self._text_back.schedule(args=(call_id,), eta=eta)
        elif delay:
            self._text_back.schedule(args=(call_id,), delay=delay)
        else:
            self._text_back(call_id)

    def enqueue_crm_sync(self, call_id: str) -> None:
        """Write a missed call into the CRM."""
        self._crm_sync(call_id)

    def enqueue_message_sync(self, message_id: str) -> None:
        """Log a reply, or note a delivery failure, in the CRM."""
        self._message_sync(message_id)

    def enqueue_escalation(self, timer_id: int, *, eta: datetime) -> None:
        """Fire an escalation timer at its due time (the sweeper covers a lost job)."""
        self._escalation.schedule(args=(timer_id,), eta=eta)

    def enqueue_reply(self, message_id: str) -> None:
        """Send a compliance reply (opt-out or opt-in confirmation, help)."""
        self._reply(message_id)

    def enqueue_reply_received(self, message_id: str) -> None:
        """Alert the owner about a customer's reply and start the escalation clock."""
        self._reply_received(message_id)

    def enqueue_email(self, to: str, subject: str, body: str) -> None:
        """Send an alert email through ``TEXTBACK_SMTP_URL``."""
        self._email(to, subject, body)

    def enqueue_workflow_text(self, message_id: str) -> None:
        """Send a text a CRM workflow asked for and complete the workflow's run."""
        self._workflow_text(message_id)


def sweep(runtime: JobContext) -> int:
    """Re-enqueue unfinished work: a crash between commit and enqueue loses nothing.

    Returns how many jobs it enqueued.
    """
    now = clock.now()
    horizon = now - SWEEP_HORIZON
    stalled = now - STALL_AFTER
    count = 0
    with runtime.db.session() as s:
        not_leased = or_(Call.lease_until.is_(None), Call.lease_until < now)
        due = or_(Call.next_attempt_at.is_(None), Call.next_attempt_at <= now)
        texts = s.scalars(
            select(Call.id).where(
                or_(
                    Call.state.in_((CallState.RECEIVED, CallState.DECIDED))
                    & (Call.updated_at < stalled),
                    (Call.state == CallState.SCHEDULED) & (Call.send_at < stalled),
                ),
                Call.created_at > horizon,
                not_leased,
                due,
            )
        ).all()
        crm = s.scalars(
            select(Call.id).where(
                Call.state.in_(CRM_SYNCABLE_STATES),
                Call.crm_state.in_(CRM_UNFINISHED_STATES),
                # A held text's CRM records are written; its sync finishes once the text goes.
                ~((Call.state == CallState.SCHEDULED) & (Call.crm_state == CrmState.WAITING_TEXT)),
                Call.reason.not_in(NO_CRM_REASONS),
                Call.caller.is_not(None),
                Call.created_at > horizon,
                Call.updated_at < stalled,
                not_leased,
                due,
            )
        ).all()
        free = or_(Message.lease_until.is_(None), Message.lease_until < now)
        messages = s.scalars(
            select(Message.id).where(
                Message.crm_state.in_((CrmState.PENDING, CrmState.RETRY, CrmState.FAILURE_NOTE)),
                or_(
                    Message.direction == "inbound",
                    Message.crm_state == CrmState.FAILURE_NOTE,
                    or_(Message.purpose_key.startswith(Purpose.REPLY.prefix),
                        Message.purpose_key.startswith(Purpose.WORKFLOW.prefix))
                    & (Message.status == MessageStatus.SENT),
                ),
                Message.created_at > horizon,
                Message.updated_at < stalled,
                free,
            )
        ).all()
        reply_ids = s.scalars(
            select(Message.id).where(
                Message.purpose_key.startswith(Purpose.REPLY.prefix),
                Message.status == MessageStatus.INTENT,
                Message.send_attempts == 0,
                Message.created_at > horizon,
                Message.updated_at < stalled,
                free,
            )
        ).all()
        workflow_ids = workflow_text.unfinished(s, horizon, stalled)
    for call_id in texts:
        runtime.jobs.enqueue_text_back(call_id)
    for call_id in crm:
        runtime.jobs.enqueue_crm_sync(call_id)
    for message_id in messages:
        runtime.jobs.enqueue_message_sync(message_id)
    for message_id in reply_ids:
        runtime.jobs.enqueue_reply(message_id)
    for message_id in workflow_ids:
        runtime.jobs.enqueue_workflow_text(message_id)
    count = len(texts) + len(crm) + len(messages) + len(reply_ids) + len(workflow_ids)
    count += conversation.poll_completed_tasks(runtime)  # before firing: done tasks don't escalate
    count += conversation.fire_due(runtime)
    with runtime.db.session() as s:
        nonces.purge_expired(s)
        s.commit()
    if count:
        log.info("sweeper re-enqueued %d job(s)", count)
    return count
