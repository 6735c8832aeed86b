"""Reading the outcome: the calls in the database (until they settle), the texts the stub
carrier accepted, the records in the HubSpot stub; and the checks on them."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.faults.service import plain_pg_url

#: A call is settled when its text is decided for good ...
TEXT_FINAL = frozenset({"texted", "suppressed", "text_failed", "cancelled"})
#: ... and its CRM work is done or given up.
CRM_FINAL = frozenset({"done", "failed", "needs_reauth"})
#: The text's statuses the CRM logs (see connector.jobs.crm_sync).
LOGGED_TEXT_STATUSES = frozenset({"sent", "delivered", "ambiguous"})
CRM_TYPES = ("contacts", "deals", "calls", "communications", "tasks")


@dataclass(frozen=True)
class CallRow:
    """One call as the database has it, with its text-back message (if any)."""

    id: str
    caller: str | None
    state: str
    decision: str | None
    reason: str | None
    crm_state: str
    text_status: str | None
    send_attempts: int | None

    def settled(self, no_crm_reasons: frozenset[str]) -> bool:
        """Final text state and final CRM state (or a call the CRM never gets)."""
        crm_done = self.crm_state in CRM_FINAL or (
            self.state == "suppressed" and (self.reason in no_crm_reasons or self.caller is None)
        )
        return self.state in TEXT_FINAL and crm_done


_CALLS_SQL = """
SELECT c.id, c.caller, c.state, c.decision, c.reason, c.crm_state, m.status, m.send_attempts
FROM {schema}.calls c
LEFT JOIN {schema}.messages m
  ON m.account_id = c.account_id AND m.purpose_key = 'text_back:' || c.id
"""


def read_calls(base_url: str, schema: str) -> list[CallRow]:
    """Every call in the run's schema."""
    import psycopg

    with psycopg.connect(plain_pg_url(base_url), connect_timeout=5) as conn:
        rows = conn.execute(_CALLS_SQL.format(schema=schema)).fetchall()  # schema: our own name
    return [CallRow(*row) for row in rows]


def no_crm_reasons() -> frozenset[str]:
    """The decision reasons whose calls never reach the CRM (the workflow's own list)."""
    from connector.domain.policy import NO_CRM_REASONS

    return frozenset(NO_CRM_REASONS)


@dataclass
class Settling:
    """How the wait for the system to settle went."""

    settled: bool
    seconds: float
    rows: list[CallRow]


def wait_until_settled(read: Callable[[], list[CallRow]], timeout: float,
                       progress: Callable[[str], None], every: float = 15.0) -> Settling:
    """Poll the calls until every one is settled, or ``timeout`` passes.

    Called once every webhook has been answered: ``textback serve`` stores a call before it
    answers, so no call appears later (a call never stored is the first check's business).
    """
    skip_crm = no_crm_reasons()
    start = time.monotonic()
    last_note = start
    while True:
        rows = read()
        open_rows = [r for r in rows if not r.settled(skip_crm)]
        elapsed = time.monotonic() - start
        if not open_rows:
            return Settling(True, elapsed, rows)
        if elapsed > timeout:
            return Settling(False, elapsed, rows)
        if time.monotonic() - last_note >= every:
            last_note = time.monotonic()
            states = Counter(f"{r.state}/{r.crm_state}" for r in open_rows)
            progress(f"  settling, {elapsed:.0f} s: {len(rows)} calls, {len(open_rows)} open "
                     f"({', '.join(f'{k} {v}' for k, v in sorted(states.items()))})")
        time.sleep(1.0)


@dataclass(frozen=True)
class Check:
    """One assertion: what was expected, what was observed, and the offenders (masked)."""

    name: str
    expected: str
    observed: str
    passed: bool
    details: tuple[str, ...] = ()


@dataclass
class CrmCounts:
    """The HubSpot stub's records per caller and type, and those linked to no known caller."""

    per_caller: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    totals: Counter[str] = field(default_factory=Counter)
    unlinked: Counter[str] = field(default_factory=Counter)
    #: caller -> type -> the HubSpot record ids, to name the duplicates.
    ids: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def add(self, caller: str, kind: str, record_id: str) -> None:
        """Count one record of ``kind`` for ``caller``."""
        self.per_caller[caller][kind] += 1
        self.ids[caller][kind].append(record_id)


def crm_counts(records: Mapping[str, Sequence[Mapping[str, Any]]]) -> CrmCounts:
    """Count the records of each type per caller: contacts by phone, the rest by contact link."""
    counts = CrmCounts()
    owner: dict[str, str] = {}
    for contact in records.get("contacts", []):
        phone = contact.get("phone")
        counts.totals["contacts"] += 1
        if phone:
            owner[str(contact["id"])] = phone
            counts.add(phone, "contacts", str(contact["id"]))
        else:
            counts.unlinked["contacts"] += 1
    for kind in CRM_TYPES[1:]:
        for record in records.get(kind, []):
            counts.totals[kind] += 1
            phones = {owner[c] for c in record.get("contacts", []) if c in owner}
            if not phones:
                counts.unlinked[kind] += 1
            for phone in phones:
                counts.add(phone, kind, str(record["id"]))
    return counts


def expected_crm(row: CallRow) -> dict[str, int]:
    """The records one synced missed call should leave: one of each, a communication if texted."""
    texted = row.text_status in LOGGED_TEXT_STATUSES
    return {"contacts": 1, "deals": 1, "calls": 1, "communications": int(texted), "tasks": 1}


def run_checks(sent: Sequence[str], rows: Sequence[CallRow], sends: Sequence[str],
               records: Mapping[str, Sequence[Mapping[str, Any]]],
               mask: Callable[[str | None], str]) -> tuple[list[Check], CrmCounts]:
    """Every check of the suite. ``sent``: the callers whose calls were delivered; ``sends``:
    the ``To`` of every text the carrier accepted (a send whose connection then dropped counts)."""
    skip_crm = no_crm_reasons()
    by_caller = {r.caller: r for r in rows if r.caller}
    texts = Counter(sends)
    crm = crm_counts(records)
    checks = [
        _received(sent, rows, mask),
        _settled(rows, skip_crm, mask),
        _eligible(rows, mask),
        _texted_once(rows, texts, mask),
        _no_stray_texts(sent, by_caller, texts, mask),
        _state_matches_carrier(rows, texts, mask),
        _crm_not_failed(rows, mask),
        _crm_no_duplicates(crm, mask),
        _crm_complete(rows, crm, mask),
    ]
    return checks, crm


def _check(name: str, expected: str, observed: str, passed: bool,
           details: Sequence[str] = ()) -> Check:
    return Check(name, expected, observed, passed, tuple(details))


def _received(sent: Sequence[str], rows: Sequence[CallRow], mask: Callable[[str | None], str]
              ) -> Check:
    distinct = set(sent)
    received = Counter(r.caller for r in rows)
    missing = sorted(distinct - set(received))
    extra = sorted(c or "<none>" for c in received if c not in distinct)
    doubled = sorted(c or "<none>" for c, n in received.items() if n > 1)
    details = [f"never recorded: {mask(c)}" for c in missing]
    details += [f"recorded but never called: {mask(c)}" for c in extra]
    details += [f"recorded {received[c]} times: {mask(c)}" for c in doubled]
    return _check("calls received == distinct calls sent", str(len(distinct)), str(len(rows)),
                  len(rows) == len(distinct) and not details, details)


def _settled(rows: Sequence[CallRow], skip_crm: frozenset[str],
             mask: Callable[[str | None], str]) -> Check:
    stuck = [r for r in rows if not r.settled(skip_crm)]
    details = [f"stuck {r.state}/{r.crm_state} (text {r.text_status}, attempts "
               f"{r.send_attempts}): call {r.id} from {mask(r.caller)}" for r in stuck]
    return _check("no call stuck (all settled)", "0", str(len(stuck)), not stuck, details)


def _eligible(rows: Sequence[CallRow], mask: Callable[[str | None], str]) -> Check:
    not_texted = [r for r in rows if r.decision != "text"]
    details = [f"decided {r.decision} ({r.reason}): call {r.id} from {mask(r.caller)}"
               for r in not_texted]
    return _check("every call eligible (fresh mobile callers)", "0 not", str(len(not_texted)),
                  not not_texted, details)


def _texted_once(rows: Sequence[CallRow], texts: Counter[str],
                 mask: Callable[[str | None], str]) -> Check:
    eligible = [r for r in rows if r.decision == "text" and r.caller]
    wrong = [r for r in eligible if texts[r.caller or ""] != 1]
    twice = sum(1 for r in wrong if texts[r.caller or ""] > 1)
    details = [f"{texts[r.caller or '']} texts ({r.state}, reason {r.reason}, text "
               f"{r.text_status}, attempts {r.send_attempts}): call {r.id} to {mask(r.caller)}"
               for r in wrong]
    observed = f"{len(eligible) - len(wrong)} of {len(eligible)} ({twice} twice+, " \
               f"{len(wrong) - twice} never)"
    return _check("every eligible call texted exactly once", f"{len(eligible)} of {len(eligible)}",
                  observed, not wrong, details)


def _no_stray_texts(sent: Sequence[str], by_caller: Mapping[str, CallRow],
                    texts: Counter[str], mask: Callable[[str | None], str]) -> Check:
    called = set(sent)
    stray = sorted(to for to in texts if to not in by_caller or by_caller[to].decision != "text")
    details = [f"{texts[to]} texts to {mask(to)} "
               f"({'never called' if to not in called else 'not eligible'})" for to in stray]
    return _check("no text to a caller not eligible", "0", str(len(stray)), not stray, details)


def _state_matches_carrier(rows: Sequence[CallRow], texts: Counter[str],
                           mask: Callable[[str | None], str]) -> Check:
    wrong = [r for r in rows if (r.state == "texted") != (texts[r.caller or ""] > 0)]
    details = [f"state {r.state} but {texts[r.caller or '']} texts accepted: call {r.id} to "
               f"{mask(r.caller)}" for r in wrong]
    return _check("call state agrees with the carrier", "0 disagree", str(len(wrong)), not wrong,
                  details)


def _crm_not_failed(rows: Sequence[CallRow], mask: Callable[[str | None], str]) -> Check:
    failed = [r for r in rows if r.crm_state in ("failed", "needs_reauth")]
    details = [f"CRM {r.crm_state}: call {r.id} from {mask(r.caller)}" for r in failed]
    return _check("no CRM sync given up", "0", str(len(failed)), not failed, details)


def _crm_no_duplicates(crm: CrmCounts, mask: Callable[[str | None], str]) -> Check:
    dupes = [
        (kind, caller, n)
        for caller, kinds in sorted(crm.per_caller.items())
        for kind, n in sorted(kinds.items()) if n > 1
    ]
    details = [f"{n} {kind} for {mask(caller)} (HubSpot ids {', '.join(crm.ids[caller][kind])})"
               for kind, caller, n in dupes]
    per_type = Counter(kind for kind, _, _ in dupes)
    observed = ", ".join(f"{kind} {per_type[kind]}" for kind in CRM_TYPES if per_type[kind]) or "0"
    return _check("no CRM record duplicated (per caller)", "0", observed, not details, details)


def _crm_complete(rows: Sequence[CallRow], crm: CrmCounts,
                  mask: Callable[[str | None], str]) -> Check:
    details = []
    for row in rows:
        if row.crm_state != "done" or not row.caller:
            continue
        have = crm.per_caller.get(row.caller, Counter())
        for kind, want in expected_crm(row).items():
            if want and have[kind] == 0:
                details.append(f"no {kind} for call {row.id} from {mask(row.caller)}")
    details += [f"{n} {kind} linked to no contact" for kind, n in sorted(crm.unlinked.items())]
    return _check("no CRM record missing (synced calls)", "0", str(len(details)), not details,
                  details)
