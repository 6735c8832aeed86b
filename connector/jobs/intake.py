"""What the webhook views store before they answer: quick, idempotent writes, no provider calls.

Each function returns whether the event was new, so a re-delivered webhook enqueues nothing.
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    TextClause,
    bindparam,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain.optout import Intent, classify, normalise
from connector.jobs.compose import compose
from connector.jobs.conversation import latest_call, mark_human_response
from connector.jobs.routing import Owner, owner_by_mobile
from connector.kernel import clock
from connector.kernel.events import AnsweredCall, InboundMessage, MessageStatusUpdate, MissedCall
from connector.storage.consent import record_opt_out
from connector.storage.db import execute_native
from connector.storage.models import (
    ATTESTATION_LENGTH,
    Account,
    Call,
    CallActivity,
    ConsentEvent,
    Message,
    OptOut,
    UTCDateTime,
    WebhookReceipt,
    new_id,
)
from connector.storage.states import FAILED_DELIVERY, FINAL_DELIVERY, MessageStatus, Purpose

_CALL_COLUMNS = (
    "id", "account_id", "carrier", "event_id", "caller", "caller_raw", "called", "outcome",
    "occurred_at", "ring_seconds", "voicemail", "attestation", "state", "crm_state", "attempts",
    "created_at", "updated_at",
)
#: The most calls one ``INSERT`` writes (17 parameters each: far below either database's limit).
MAX_CALLS_PER_INSERT = 64
_UTC_COLUMNS = ("occurred_at", "created_at", "updated_at")
_UTC = UTCDateTime()


@functools.lru_cache(maxsize=2 * MAX_CALLS_PER_INSERT)
def _insert_calls(rows: int, returning: bool = True) -> TextClause:
    """``INSERT INTO calls ... VALUES (...) x rows ON CONFLICT DO NOTHING [RETURNING id]``.

    Written as SQL (valid on SQLite and PostgreSQL alike) so the hot path skips statement
    compilation; row ``n``'s parameters are the column names suffixed ``_n``, and the typed bind
    parameters keep the UTC handling of the models.
    """
    values = ", ".join(
        "(" + ", ".join(f":{c}_{n}" for c in _CALL_COLUMNS) + ")" for n in range(rows))
    return text(
        f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES {values} "  # noqa: S608 - constants
        "ON CONFLICT (account_id, carrier, event_id) DO NOTHING"
        + (" RETURNING id" if returning else "")
    ).bindparams(
        *(bindparam(f"{c}_{n}", type_=UTCDateTime()) for c in _UTC_COLUMNS for n in range(rows)),
        *(bindparam(f"voicemail_{n}", type_=Boolean()) for n in range(rows)),
    )


@functools.lru_cache(maxsize=MAX_CALLS_PER_INSERT)
def _insert_calls_native(rows: int) -> str:
    """The webhooks' ``INSERT`` of :func:`_insert_calls` (no ``RETURNING``) with PostgreSQL's
    own placeholders: row ``n``'s parameters are ``$(17n + 1)`` to ``$(17n + 17)``, in the
    order of the columns."""
    width = len(_CALL_COLUMNS)
    values = ", ".join(
        "(" + ", ".join(f"${n * width + i}" for i in range(1, width + 1)) + ")"
        for n in range(rows))
    return (f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES {values} "  # noqa: S608
            "ON CONFLICT (account_id, carrier, event_id) DO NOTHING")


def _native_params(rows: list[dict[str, object]], dialect: Dialect) -> list[object]:
    """The rows' values in the order of :func:`_insert_calls_native`'s placeholders; times
    converted as the models' :class:`UTCDateTime` converts them."""
    return [_UTC.process_bind_param(row[c], dialect)  # type: ignore[arg-type]
            if c in _UTC_COLUMNS else row[c] for row in rows for c in _CALL_COLUMNS]


def _insert_params(chunk: list[dict[str, object]]) -> dict[str, object]:
    return {f"{column}_{n}": value for n, row in enumerate(chunk) for column, value in row.items()}


def _call_row(account: Account, event: MissedCall, now: datetime) -> dict[str, object]:
    return {
        "id": new_id(), "account_id": account.id, "carrier": event.carrier,
        "event_id": event.event_id, "caller": event.caller, "caller_raw": event.caller_raw[:64],
        "called": event.called, "outcome": event.outcome.value, "occurred_at": event.occurred_at,
        "ring_seconds": event.ring_seconds, "voicemail": event.voicemail,
        "attestation": (event.attestation or "")[:ATTESTATION_LENGTH] or None,
        "state": "received", "crm_state": "pending", "attempts": 0,
        "created_at": now, "updated_at": now,
    }


def record_missed_call(session: Session, account: Account, event: MissedCall) -> tuple[str, bool]:
    """Store the missed call once per provider call id; later callbacks only fill gaps.

    Returns the call's id and whether this event created it.
    """
    return record_missed_calls(session, [(account, event)])[0]


def record_missed_calls(
    session: Session, calls: list[tuple[Account, MissedCall]]
) -> list[tuple[str, bool]]:
    """:func:`record_missed_call` for many calls at once: each call's id and whether it is new.

    One ``INSERT ... ON CONFLICT DO NOTHING`` per :data:`MAX_CALLS_PER_INSERT` calls (the
    webhook hot path: no savepoint, no ORM flush, one round trip); the calls already there (a
    re-delivered callback, or the same call twice in the list) are read back together and their
    gaps filled.
    """
    now = clock.now()
    rows = [_call_row(account, event, now) for account, event in calls]
    created: set[str] = set()
    for start in range(0, len(rows), MAX_CALLS_PER_INSERT):
        chunk = rows[start:start + MAX_CALLS_PER_INSERT]
        created.update(str(i) for i in
                       session.execute(_insert_calls(len(chunk)), _insert_params(chunk)).scalars())
    stored = _stored_calls(session, [
        (account, event) for (account, event), row in zip(calls, rows, strict=True)
        if row["id"] not in created])
    results = []
    for (account, event), row in zip(calls, rows, strict=True):
        if row["id"] in created:
            results.append((str(row["id"]), True))
            continue
        call = stored.get((account.id, event.carrier, event.event_id))
        assert call is not None  # noqa: S101 - the conflict says it is there
        _fill_gaps(call, event)
        results.append((call.id, False))
    return results


def _stored_calls(session: Session, calls: list[tuple[Account, MissedCall]]
                  ) -> dict[tuple[str, str, str], Call]:
    """The stored rows of ``calls``, by account id, carrier and event id: one ``SELECT`` per
    :data:`MAX_CALLS_PER_INSERT` calls (a batch's re-delivered callbacks are read together)."""
    keys = sorted({(account.id, event.carrier, event.event_id) for account, event in calls})
    found: dict[tuple[str, str, str], Call] = {}
    for start in range(0, len(keys), MAX_CALLS_PER_INSERT):
        chunk = keys[start:start + MAX_CALLS_PER_INSERT]
        where: tuple[ColumnElement[bool], ...]
        if len(chunk) == 1:  # the usual case: plain equalities cost less than an IN of tuples
            [(account_id, carrier, event_id)] = chunk
            where = (Call.account_id == account_id, Call.carrier == carrier,
                     Call.event_id == event_id)
        else:
            where = (tuple_(Call.account_id, Call.carrier, Call.event_id).in_(chunk),)
        for call in session.scalars(select(Call).where(*where)):
            found[(call.account_id, call.carrier, call.event_id)] = call
    return found


def insert_new_missed_calls(
    connection: Connection, calls: list[tuple[Account, MissedCall]]
) -> list[tuple[str, bool] | None]:
    """The webhooks' fast path: the calls as one ``INSERT`` statement on ``connection``, which
    must be in autocommit mode (the statement is its own transaction: one round trip to the
    database, no ``BEGIN`` or ``COMMIT``; on SQLite the write lock is held for that statement
    alone).

    Returns ``(id, True)`` for each call the statement stored, and None for a call it did not
    (one already there, or a second copy in ``calls``): :func:`record_missed_calls` settles
    those, in a transaction.
    """
    if len(calls) > MAX_CALLS_PER_INSERT:
        return [None] * len(calls)
    now = clock.now()
    rows = [_call_row(account, event, now) for account, event in calls]
    if connection.dialect.name == "postgresql":
        # Up to 1,088 parameters: sent as they are, not parsed again on every execution.
        stored = execute_native(connection, _insert_calls_native(len(rows)),
                                _native_params(rows, connection.dialect))
    else:
        stored = connection.execute(_insert_calls(len(rows), returning=False),
                                    _insert_params(rows)).rowcount
    ids = [str(row["id"]) for row in rows]
    if stored == len(rows):
        new = set(ids)
    else:  # some were there already: the ids just made that the table holds are the new ones
        new = set(connection.scalars(select(Call.id).where(Call.id.in_(ids))))
    return [(call_id, True) if call_id in new else None for call_id in ids]


def _fill_gaps(call: Call, event: MissedCall) -> None:
    if call.state != "received":
        return
    if event.voicemail and not call.voicemail:
        call.voicemail = True
    if call.ring_seconds is None and event.ring_seconds is not None:
        call.ring_seconds = event.ring_seconds
    if call.outcome == "unknown" and event.outcome.value != "unknown":
        call.outcome = event.outcome.value


def record_inbound(
    session: Session,
    account: Account,
    event: InboundMessage,
    business_number: str,
    *,
    carrier_confirms: bool,
) -> tuple[Message | None, bool, list[str]]:
    """Store a customer's text; STOP, START and HELP are honoured here, before anything else.

    Returns the message, whether it was new, and the ids of compliance replies to send (none
    when the carrier answers these keywords itself).
    """
    if event.sender is None:
        return None, False, []
    key = Purpose.INBOUND.key(event.carrier, event.event_id)
    existing = session.scalar(
        select(Message).where(Message.account_id == account.id, Message.purpose_key == key)
    )
    if existing is not None:
        return existing, False, []
    business = event.recipient or business_number
    owner = owner_by_mobile(account, event.sender)
    if owner is not None:
        return _relay_owner_reply(session, account, event, key, business, owner)
    intent = _intent(event)
    message = Message(
        account_id=account.id,
        direction="inbound",
        purpose_key=key,
        customer=event.sender,
        business_number=business,
        body=event.body,
        intent=intent.value,
        status=MessageStatus.RECEIVED,
        carrier_message_id=event.event_id,
    )
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return None, False, []
    keyword = normalise(event.body)[:40] or (event.opt_out_type or "")
    reply_scenario: str | None = None
    if intent is Intent.OPT_OUT:
        if record_opt_out(session, account.id, event.sender, keyword or "STOP", business):
            reply_scenario = "opt_out_confirmation"
    elif intent is Intent.OPT_IN:
        opted = session.get(OptOut, (account.id, event.sender))
        if opted is not None:  # "yes" from a subscribed customer is just a reply
            session.delete(opted)
            session.add(ConsentEvent(account_id=account.id, number=event.sender,
                                     action="opt_in", source=keyword, business_number=business))
            reply_scenario = "opt_in_confirmation"
    elif intent is Intent.HELP:
        session.add(ConsentEvent(account_id=account.id, number=event.sender, action="help",
                                 source=keyword, business_number=business))
        reply_scenario = "help"
    replies: list[str] = []
    if reply_scenario and not carrier_confirms:
        session.flush()
        body, _ = compose(session, account, event.sender, business, reply_scenario, clock.now())
        reply = Message(
            account_id=account.id, direction="outbound", purpose_key=Purpose.REPLY.key(message.id),
            customer=event.sender, business_number=business, body=body, status=MessageStatus.INTENT,
        )
        session.add(reply)
        session.flush()
        replies.append(reply.id)
    return message, True, replies


def _relay_owner_reply(session: Session, account: Account, event: InboundMessage, key: str,
                       business: str, owner: Owner) -> tuple[Message | None, bool, list[str]]:
    """An owner answered an alert text: relay their words to that alert's customer.

    The customer is the one in the latest alert this account sent to this owner from this
    business number; nothing else is considered, so a reply can never reach another account's
    customer. With no alert to answer, the text is kept and nothing is sent.
    """
    alert = session.scalar(
        select(Message).where(
            Message.account_id == account.id, Message.direction == "outbound",
            Message.purpose_key.startswith(Purpose.ALERT.prefix), Message.customer == event.sender,
            Message.business_number == business,
        ).order_by(Message.created_at.desc()).limit(1))
    call = session.get(Call, alert.call_id) if alert is not None and alert.call_id else None
    inbound = Message(
        account_id=account.id, direction="inbound", purpose_key=key, customer=event.sender or "",
        business_number=business, body=event.body, intent="owner", status=MessageStatus.RECEIVED,
        carrier_message_id=event.event_id, crm_state="done", call_id=call.id if call else None,
    )
    session.add(inbound)
    session.flush()
    if call is None or call.caller is None:
        return inbound, True, []
    relay = Message(
        account_id=account.id, call_id=call.id, direction="outbound",
        purpose_key=Purpose.HUMAN.key(inbound.id), customer=call.caller, business_number=business,
        body=event.body, status=MessageStatus.INTENT,
    )
    session.add(relay)
    session.flush()
    mark_human_response(session, call, clock.now(), f"{owner.name} replied by text")
    return inbound, True, [relay.id]


def _intent(event: InboundMessage) -> Intent:
    # Twilio's Advanced Opt-Out names the keyword class it matched; trust it when present.
    carrier_says = {"STOP": Intent.OPT_OUT, "START": Intent.OPT_IN, "HELP": Intent.HELP}
    return carrier_says.get((event.opt_out_type or "").upper()) or classify(event.body)


def record_answered_call(session: Session, account: Account, event: AnsweredCall) -> bool:
    """Remember an answered call (it cancels a pending text); False when seen before."""
    try:
        with session.begin_nested():
            session.add(CallActivity(
                account_id=account.id, carrier=event.carrier, event_id=event.event_id[:200],
                customer=event.customer, direction=event.direction, at=event.occurred_at,
            ))
    except IntegrityError:
        return False
    if event.direction == "outbound":  # the business called the customer back: a human answered
        call = latest_call(session, account.id, event.customer, event.occurred_at)
        if call is not None:
            mark_human_response(session, call, event.occurred_at, "the business called back")
    return True


def record_status(session: Session, account: Account, event: MessageStatusUpdate,
                  opt_out_codes: frozenset[str] = frozenset()) -> Message | None:
    """Apply a delivery report to our message; returns the message when it newly failed.

    A failure whose code means "opted out with the carrier" also opts the number out here.
    """
    receipt = WebhookReceipt(
        account_id=account.id, provider=event.carrier, kind="status", event_id=event.event_id[:200]
    )
    try:
        with session.begin_nested():
            session.add(receipt)
    except IntegrityError:
        return None  # seen before
    message = session.scalar(
        select(Message).where(
            Message.account_id == account.id,
            Message.carrier_message_id == event.message_id,
            Message.direction == "outbound",
        )
    )
    if message is None:
        return None
    if message.status in FINAL_DELIVERY and not event.status.is_final:
        return None  # late, out-of-order report of an earlier state
    previously_failed = message.status in FAILED_DELIVERY
    message.status = MessageStatus(event.status.value)
    message.error_code = event.error_code
    if event.error_code and event.error_code in opt_out_codes:
        record_opt_out(session, account.id, message.customer, f"carrier:{event.error_code}",
                       message.business_number)
    if event.status.is_failure and not previously_failed:
        message.crm_state = "failure_note"
        return message
    return None
