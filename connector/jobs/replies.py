"""Sending the texts that are not text-backs: compliance replies to a keyword (opt-out and
opt-in confirmations, HELP), owners' replies relayed to a customer, and alerts to owners.

Each is written first as an outbound message row (the intent) and sent here once. A compliance
confirmation goes out even to a number that just opted out: the one the rules allow.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from connector.jobs.steps import Lease, call_with_retries, release_lease, take_lease
from connector.kernel import clock
from connector.kernel.errors import ProviderError, TransientProviderError
from connector.storage.models import Account, Message
from connector.storage.states import MessageStatus, Purpose

if TYPE_CHECKING:
    from connector.jobs.context import JobContext

log = logging.getLogger(__name__)
#: A compliance reply not yet sent, claimed by one worker.
_REPLY_LEASE = Lease(Message, Message.status == MessageStatus.INTENT, Message.send_attempts == 0)


def send_reply(runtime: JobContext, message_id: str) -> None:
    """Job: send one compliance reply; an ambiguous failure is never re-sent."""
    with runtime.db.session() as session:
        # Claimed and read in one statement: a reply another worker sent a moment ago is never
        # taken on a stale reading.
        message = take_lease(session, _REPLY_LEASE, message_id)
        if message is None:
            return
        try:
            account = session.get(Account, message.account_id)
            assert account is not None  # noqa: S101
            carrier = runtime.sms_carrier_for(account)
            message.send_attempts += 1
            message.last_attempt_at = clock.now()
            session.commit()
            try:
                result = call_with_retries(
                    lambda: carrier.send_sms(
                        to=message.customer, from_=message.business_number, body=message.body,
                        status_callback_url=runtime.webhook_url(carrier.name, account.id,
                                                                "status"),
                    ),
                    retry_ambiguous=False,
                )
            except TransientProviderError as exc:
                message.status = (MessageStatus.AMBIGUOUS if exc.ambiguous
                                  else MessageStatus.FAILED)
                message.error_code = exc.code
            except ProviderError as exc:
                message.status, message.error_code = "failed", exc.code
            else:
                message.status = MessageStatus.SENT
                message.carrier_message_id = result.message_id
                message.segments = result.segments
            session.commit()
        finally:
            release_lease(session, _REPLY_LEASE, message_id)
        to_crm = (message.status == MessageStatus.SENT
                  and not message.purpose_key.startswith(Purpose.ALERT.prefix))
    if to_crm:  # compliance replies and relayed owner replies go on the record; alerts do not
        runtime.jobs.enqueue_message_sync(message_id)
