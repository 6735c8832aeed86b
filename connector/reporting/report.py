"""Numbers: what the text-back did for one account over a period (``textback report``).

The period is whole days in the account's time zone: from ``since`` 00:00 to the end of ``until``
(inclusive; default today). Every figure about a call is counted on that call's row, by the day,
business number and template of the call, even when the reply or response came later (a cohort
view); opt-outs are counted by their own time. Definitions:

missed calls
    ``Call`` rows whose ``occurred_at`` falls in the period (every stored call is a missed one;
    answered calls are only ``CallActivity``).
texted
    Calls whose text-back (the outbound ``Message`` keyed ``text_back:<call id>``) went to the
    carrier: ``send_attempts > 0`` and status not ``intent`` (a retry still to come) or
    ``cancelled``. Sent, delivered, ambiguous and failed sends all count.
suppressed (by reason)
    Calls the policy decided not to text (``decision == "suppress"``), by ``Call.reason``, plus
    calls whose pending text was cancelled (``state == "cancelled"``: ``called_back``,
    ``answered_later``, ``opted_out``) by their reason. ``pending`` is the rest: not decided yet,
    or waiting to send (held, delayed, retrying).
delivered / failed
    Texted calls whose text-back status is ``delivered`` or ``read`` / ``undelivered``,
    ``failed`` or ``canceled`` (the carrier's word). Neither while sent or ambiguous.
replied
    Texted calls whose customer (same number, same account) sent an inbound text that is not a
    keyword (intent ``none`` or unset) at or after the text-back was sent (its last send attempt),
    within :data:`REPLY_WINDOW`, and before the next text-back to that customer: a reply belongs
    to the latest text-back before it. Texts from the account's own owners (intent ``owner``) are
    never replies. **Reply rate** = replied / texted (none when nothing was texted).
time to first human response
    For replied calls: from the customer's first reply to the first human response at or after it
    and before the next text-back to that customer. A human response is an outbound ``Message``
    keyed ``human:...`` to that customer (at its ``created_at``, whatever its delivery) or an
    outbound ``CallActivity`` (the business called the customer back). Median and p90 over the
    calls that have one, by linear interpolation between closest ranks (numpy's default).
saved conversations
    Replied calls where a human responded: a ``human:`` text after the first reply, or a call back
    any time after the missed call (before the next text-back); or calls whose CRM lead moved
    past its first stage afterwards (a ``lead_moved`` step in the call's trail, recorded when the
    CRM reports the move: HubSpot's ``dealstage`` webhook today).
opt-outs
    ``ConsentEvent`` rows with action ``opt_out`` in the period (keywords and carrier opt-out
    codes alike). Per number: the event's business number. Per template: the template of the
    latest text-back (of a call in the period) to that customer before the opt-out, else ``-``.

Groupings: the account total, per business number (``Call.called``), per template
(``Call.scenario/Call.language``; ``-`` for calls never given a template) and per day (every day
of the period, empty ones too). Four queries load the period; the rest is pure Python.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, defer

from connector.domain.policy import Reason
from connector.kernel import clock
from connector.kernel.errors import ConfigurationError
from connector.storage.models import (
    Account,
    Call,
    CallActivity,
    CallEvent,
    ConsentEvent,
    Message,
)
from connector.storage.states import MessageStatus, Purpose

#: A customer's text counts as a reply to a text-back sent at most this long before it.
REPLY_WINDOW = timedelta(days=7)
GROUPINGS = ("account", "number", "template", "day")
NONE = "-"
TEXT_BACK, HUMAN = Purpose.TEXT_BACK.prefix, Purpose.HUMAN.prefix
NOT_SENT = frozenset({MessageStatus.INTENT, MessageStatus.CANCELLED})
DELIVERED = frozenset({MessageStatus.DELIVERED, MessageStatus.READ})
FAILED = frozenset({MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.CANCELED})
#: Suppression reasons in the policy's order: the CSV's ``suppressed_<reason>`` columns.
REASONS = tuple(r.value for r in Reason if r is not Reason.MISSED)


@dataclass(frozen=True)
class Period:
    """Whole local days ``since`` to ``until`` (inclusive) as the UTC range [start, end)."""

    since: date
    until: date
    tz: ZoneInfo
    start: datetime
    end: datetime

    def days(self) -> list[date]:
        """Every day of the period."""
        return [self.since + timedelta(days=i) for i in range((self.until - self.since).days + 1)]


def parse_day(text: str, option: str) -> date:
    """A ``YYYY-MM-DD`` command-line date; a ConfigurationError naming ``option`` otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"{option} takes a date like 2024-05-31, not {text!r}",
                                 field=option) from None


def period_for(timezone: str, since: date, until: date | None = None,
               now: datetime | None = None) -> Period:
    """The period from ``since`` to ``until``, both dates in the account's zone.

    Without ``until`` the period runs to now: to the end of today in the account's zone, so it
    never ends before it starts. ``since`` later than that today is a ConfigurationError that says
    what today is there (the date a person types may be their own zone's, or UTC's).
    """
    tz = ZoneInfo(timezone)
    today = (now or clock.now()).astimezone(tz).date()
    if since > today:
        raise ConfigurationError(
            f"--since {since} is later than today in the account's time zone ({today}, {timezone})",
            field="--since")
    if until is None:
        until = today
    elif until < since:
        raise ConfigurationError(f"--until {until} is before --since {since}", field="--until")
    start = datetime.combine(since, time(0), tz)
    end = datetime.combine(until + timedelta(days=1), time(0), tz)
    return Period(since, until, tz, start, end)


@dataclass(frozen=True)
class PeriodRows:
    """What one account's period is computed from."""

    calls: Sequence[Call]
    messages: Sequence[Message]  # text-backs of the calls; everything since start to their callers
    callbacks: Sequence[CallActivity]  # outbound, to the calls' callers, since start
    opt_outs: Sequence[ConsentEvent]
    lead_moves: Sequence[str] = ()  # ids of the period's calls whose CRM lead moved on


def load(session: Session, account_id: str, period: Period) -> PeriodRows:
    """Load the period's rows in five queries (message bodies left unloaded)."""
    in_period = (Call.account_id == account_id, Call.occurred_at >= period.start,
                 Call.occurred_at < period.end)
    callers = select(Call.caller).where(*in_period, Call.caller.is_not(None))
    calls = session.scalars(select(Call).where(*in_period).order_by(Call.occurred_at, Call.id))
    messages = session.scalars(
        select(Message).options(defer(Message.body)).where(
            Message.account_id == account_id,
            or_(Message.call_id.in_(select(Call.id).where(*in_period)),
                and_(Message.customer.in_(callers), Message.created_at >= period.start)),
        ))
    callbacks = session.scalars(select(CallActivity).where(
        CallActivity.account_id == account_id, CallActivity.direction == "outbound",
        CallActivity.customer.in_(callers), CallActivity.at >= period.start))
    opt_outs = session.scalars(select(ConsentEvent).where(
        ConsentEvent.account_id == account_id, ConsentEvent.action == "opt_out",
        ConsentEvent.at >= period.start, ConsentEvent.at < period.end))
    lead_moves = session.scalars(select(CallEvent.call_id).where(
        CallEvent.call_id.in_(select(Call.id).where(*in_period)), CallEvent.step == "lead_moved"))
    return PeriodRows(calls.all(), messages.all(), callbacks.all(), opt_outs.all(),
                      tuple(lead_moves.all()))


@dataclass(frozen=True)
class CallFate:
    """What became of one missed call, as the figures count it."""

    number: str
    template: str
    day: str
    texted: bool
    suppressed_reason: str | None
    delivered: bool
    failed: bool
    replied: bool
    human_responded: bool
    response_seconds: float | None
    lead_moved: bool = False


@dataclass(frozen=True)
class OptOutFate:
    """One opt-out and where it is counted."""

    number: str
    template: str
    day: str


@dataclass(frozen=True)
class Facts:
    """The period's calls and opt-outs, each reduced to what the figures need."""

    calls: list[CallFate]
    opt_outs: list[OptOutFate]


def texted(text: Message | None) -> bool:
    """Whether a text-back went to the carrier (see the module docstring)."""
    return text is not None and text.send_attempts > 0 and text.status not in NOT_SENT


def _sent_at(text: Message) -> datetime:
    return text.last_attempt_at or text.created_at


def _template(call: Call) -> str:
    return f"{call.scenario}/{call.language or NONE}" if call.scenario else NONE


def _suppression(call: Call) -> str | None:
    if call.decision == "suppress" or call.state == "cancelled":
        return call.reason or "unknown"
    return None


def _by_customer(items: Iterable[tuple[str, datetime]]) -> dict[str, list[datetime]]:
    times: dict[str, list[datetime]] = defaultdict(list)
    for customer, at in items:
        times[customer].append(at)
    return {k: sorted(v) for k, v in times.items()}


def _first(times: Sequence[datetime], start: datetime, end: datetime | None) -> datetime | None:
    """The first time in sorted ``times`` within [start, end) (end None: open)."""
    i = bisect_left(times, start)
    if i < len(times) and (end is None or times[i] < end):
        return times[i]
    return None


@dataclass(frozen=True)
class _Timeline:
    """Per customer, sorted: text-backs sent, replies, human texts, call backs."""

    sent: dict[str, list[datetime]]
    replies: dict[str, list[datetime]]
    human: dict[str, list[datetime]]
    callbacks: dict[str, list[datetime]]

    def next_text_after(self, customer: str, at: datetime) -> datetime | None:
        times = self.sent.get(customer, [])
        i = bisect_right(times, at)
        return times[i] if i < len(times) else None


def _timeline(rows: PeriodRows, texts: Iterable[Message]) -> _Timeline:
    def pick(test: Callable[[Message], bool]) -> dict[str, list[datetime]]:
        return _by_customer((m.customer, m.created_at) for m in rows.messages if test(m))

    return _Timeline(
        sent=_by_customer((m.customer, _sent_at(m)) for m in texts if texted(m)),
        replies=pick(lambda m: m.direction == "inbound" and m.intent in (None, "none")),
        human=pick(lambda m: m.direction == "outbound" and m.purpose_key.startswith(HUMAN)),
        callbacks=_by_customer((a.customer, a.at) for a in rows.callbacks),
    )


def _fate(call: Call, text: Message | None, line: _Timeline, tz: ZoneInfo) -> CallFate:
    sent = texted(text)
    replied_at = response_at = None
    human = False
    if text is not None and sent and call.caller:
        customer, sent_time = call.caller, _sent_at(text)
        window_end = line.next_text_after(customer, sent_time)
        reply_end = sent_time + REPLY_WINDOW
        if window_end is not None:
            reply_end = min(reply_end, window_end)
        replied_at = _first(line.replies.get(customer, []), sent_time, reply_end)
        if replied_at is not None:
            callbacks = line.callbacks.get(customer, [])
            responses = [_first(line.human.get(customer, []), replied_at, window_end),
                         _first(callbacks, replied_at, window_end)]
            response_at = min((r for r in responses if r is not None), default=None)
            human = response_at is not None or \
                _first(callbacks, call.occurred_at, window_end) is not None
    return CallFate(
        number=call.called or NONE, template=_template(call),
        day=call.occurred_at.astimezone(tz).date().isoformat(),
        texted=sent, suppressed_reason=_suppression(call),
        delivered=sent and text is not None and text.status in DELIVERED,
        failed=sent and text is not None and text.status in FAILED,
        replied=replied_at is not None, human_responded=human,
        response_seconds=(response_at - replied_at).total_seconds()
        if response_at is not None and replied_at is not None else None,
    )


def _opt_out_template(event: ConsentEvent, texts: Sequence[tuple[datetime, str]]) -> str:
    """The template of the latest text-back to the number at or before the opt-out."""
    i = bisect_right(texts, (event.at, "\uffff"))
    return texts[i - 1][1] if i else NONE


def compute(rows: PeriodRows, period: Period) -> Facts:
    """Reduce the loaded rows to one :class:`CallFate` per call and one per opt-out."""
    calls = {c.id: c for c in rows.calls}
    texts = {m.purpose_key.removeprefix(TEXT_BACK): m for m in rows.messages
             if m.direction == "outbound" and m.purpose_key.startswith(TEXT_BACK)}
    line = _timeline(rows, texts.values())
    moved = set(rows.lead_moves)
    fates = [dataclasses.replace(fate, lead_moved=True) if c.id in moved else fate
             for c, fate in ((c, _fate(c, texts.get(c.id), line, period.tz)) for c in rows.calls)]
    templates: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for call_id, text in texts.items():
        if call_id in calls and texted(text):
            templates[text.customer].append((_sent_at(text), _template(calls[call_id])))
    for entries in templates.values():
        entries.sort()
    opt_outs = [OptOutFate(number=e.business_number or NONE,
                           template=_opt_out_template(e, templates.get(e.number, [])),
                           day=e.at.astimezone(period.tz).date().isoformat())
                for e in rows.opt_outs]
    return Facts(fates, opt_outs)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class ReportRow:
    """The figures of one group: the account, a business number, a template or a day."""

    key: str
    missed_calls: int = 0
    texted: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    delivered: int = 0
    failed: int = 0
    replied: int = 0
    saved: int = 0
    opt_outs: int = 0
    response_seconds: list[float] = field(default_factory=list, repr=False)

    @property
    def suppressed_total(self) -> int:
        """Calls suppressed for any reason (cancelled ones included)."""
        return sum(self.suppressed.values())

    @property
    def reply_rate(self) -> float | None:
        """Replied / texted; None when nothing was texted."""
        return self.replied / self.texted if self.texted else None

    @property
    def median_response(self) -> float | None:
        """Median seconds from the first reply to the first human response."""
        return percentile(self.response_seconds, 0.5)

    @property
    def p90_response(self) -> float | None:
        """90th percentile seconds from the first reply to the first human response."""
        return percentile(self.response_seconds, 0.9)

    def add(self, fate: CallFate) -> None:
        """Count one call."""
        self.missed_calls += 1
        if fate.suppressed_reason is not None:
            self.suppressed[fate.suppressed_reason] = self.suppressed.get(
                fate.suppressed_reason, 0) + 1
        self.texted += fate.texted
        self.pending += not fate.texted and fate.suppressed_reason is None
        self.delivered += fate.delivered
        self.failed += fate.failed
        self.replied += fate.replied
        self.saved += (fate.replied and fate.human_responded) or fate.lead_moved
        if fate.response_seconds is not None:
            self.response_seconds.append(fate.response_seconds)


def _group(facts: Facts, key: Callable[[CallFate | OptOutFate], str],
           keys: Iterable[str] = ()) -> list[ReportRow]:
    rows = {k: ReportRow(k) for k in keys}
    for fate in facts.calls:
        rows.setdefault(key(fate), ReportRow(key(fate))).add(fate)
    for opt_out in facts.opt_outs:
        rows.setdefault(key(opt_out), ReportRow(key(opt_out))).opt_outs += 1
    return [rows[k] for k in sorted(rows)]


def by_account(facts: Facts, account_id: str) -> list[ReportRow]:
    """One row: the account's total."""
    return _group(facts, lambda _: account_id, [account_id])


def by_number(facts: Facts) -> list[ReportRow]:
    """A row per business number called (``-``: the carrier did not say)."""
    return _group(facts, lambda f: f.number)


def by_template(facts: Facts) -> list[ReportRow]:
    """A row per template (scenario/language); ``-`` for calls never given one."""
    return _group(facts, lambda f: f.template)


def by_day(facts: Facts, period: Period) -> list[ReportRow]:
    """A row per local day of the period, empty days included."""
    return _group(facts, lambda f: f.day, [d.isoformat() for d in period.days()])


@dataclass(frozen=True)
class Report:
    """An account's figures for a period, grouped one way, with the total."""

    account_id: str
    account_name: str
    period: Period
    by: str
    rows: list[ReportRow]
    total: ReportRow


def build(session: Session, account_id: str, since: date, until: date | None = None,
          by: str = "account", now: datetime | None = None) -> Report:
    """Load, compute and group the figures of one account (``textback report``)."""
    account = session.get(Account, account_id)
    if account is None:
        raise ConfigurationError(f"no account {account_id!r}", field="ACCOUNT")
    if by not in GROUPINGS:
        raise ConfigurationError(f"--by takes one of {', '.join(GROUPINGS)}", field="--by")
    period = period_for(account.timezone, since, until, now)
    facts = compute(load(session, account_id, period), period)
    groupings: dict[str, Callable[[], list[ReportRow]]] = {
        "account": lambda: by_account(facts, account_id), "number": lambda: by_number(facts),
        "template": lambda: by_template(facts), "day": lambda: by_day(facts, period),
    }
    total = by_account(facts, "total")[0]
    return Report(account_id, account.name, period, by, groupings[by](), total)
