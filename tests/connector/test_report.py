"""The report's definitions on a known set of conversations, with the expected figures written out.

Acme (America/Chicago, CDT = UTC-5) over 2024-05-06..2024-05-07, business numbers B1 and B2:

=====  ======  ===========  ====  ==============  ===========================================
call   caller  local time   to    template        what happened
=====  ======  ===========  ====  ==============  ===========================================
c14    M       06 08:00     B1    general/en      delivered; M's reply comes after c15's text
c1     A       06 09:00     B1    general/en      delivered; reply 09:05 (and 09:20); human
                                                  text 09:15 -> 600 s; saved
c2     B       06 10:00     B1    general/en      delivered; reply 10:30; call back 10:32
                                                  -> 120 s; saved
c3     C       06 11:00     B2    general/es      sent (no report yet); reply 11:10; human text
                                                  12:10 -> 3600 s; saved
c7     G       06 12:00     B1    -               suppressed: cooldown
c4     D       06 20:00     B1    after_hours/en  undelivered (failed)
c15    M       07 08:30     B1    general/en      delivered; reply 08:40; nobody answers
c5     E       07 09:00     B1    general/en      delivered; STOP 09:02 (not a reply; opt-out)
c6     F       07 09:30     B2    general/en      delivered; reply 8 days later (too late)
c8     H       07 12:30     B1    -               suppressed: cooldown
c9     -       07 13:00     B1    -               suppressed: caller_withheld
c10    K       07 14:00     B2    general/en      cancelled: called_back
c11    J       07 15:00     B1    general/en      retry pending (intent, 1 attempt)
c13    L       07 17:00     B2    general/en      delivered; call back 17:05, reply 17:30:
                                                  saved, but no response time after the reply
c16    N       07 23:30     B1    -               suppressed: opted_out (04:30 UTC on the 8th)
=====  ======  ===========  ====  ==============  ===========================================

Outside the figures: c0 (05 23:30 local, 06 04:30 UTC), an opt-out on the 8th, an opt-in, and an
other account's call and reply.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from connector.cli import main
from connector.kernel import clock
from connector.reporting.report import build, compute, load, percentile, period_for
from connector.reporting.report_output import format_table, write_csv
from connector.storage.models import Call, CallActivity, ConsentEvent, Message
from tests.conftest import SECRET
from tests.connector.helpers import BUSINESS, add_account, missed, post, sandbox_account

TZ = ZoneInfo("America/Chicago")
B1, B2 = BUSINESS, "+14155550111"
A, B, C, D, E, F, G, H, K, J, L, M, N, Z = (f"+141555502{n:02d}" for n in range(14))


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A time on 2024-05-<day> in Chicago."""
    return datetime(2024, 5, day, hour, minute, tzinfo=TZ)


class Data:
    """Rows written straight into the database."""

    def __init__(self, session, account: str = "acme") -> None:  # type: ignore[no-untyped-def]
        self.s, self.account = session, account

    def call(self, cid: str, caller: str | None, at: datetime, called: str = B1, *,
             reason: str = "missed", state: str = "texted", template: str | None = "general/en"
             ) -> Call:
        scenario, language = template.split("/") if template else (None, None)
        decision = "text" if reason == "missed" or state == "cancelled" else "suppress"
        row = Call(id=cid, account_id=self.account, carrier="sandbox", event_id=cid,
                   caller=caller, called=called, outcome="no-answer", occurred_at=at,
                   state=state, decision=decision, reason=reason, scenario=scenario,
                   language=language)
        self.s.add(row)
        return row

    def text(self, call: Call, status: str, attempts: int = 1) -> None:
        self.s.add(Message(
            account_id=self.account, call_id=call.id, direction="outbound",
            purpose_key=f"text_back:{call.id}", customer=call.caller, business_number=call.called,
            body="Sorry we missed your call", status=status, send_attempts=attempts,
            created_at=call.occurred_at + timedelta(seconds=2),
            last_attempt_at=call.occurred_at + timedelta(seconds=5) if attempts else None))

    def inbound(self, customer: str, at: datetime, intent: str = "none") -> None:
        self.s.add(Message(
            account_id=self.account, direction="inbound", purpose_key=f"inbound:{customer}:{at}",
            customer=customer, business_number=B1, body="hi", intent=intent, status="received",
            created_at=at))

    def human(self, customer: str, at: datetime) -> None:
        self.s.add(Message(
            account_id=self.account, direction="outbound", purpose_key=f"human:{customer}:{at}",
            customer=customer, business_number=B1, body="On our way", status="sent",
            send_attempts=1, created_at=at))

    def callback(self, customer: str, at: datetime) -> None:
        self.s.add(CallActivity(account_id=self.account, carrier="sandbox",
                                event_id=f"cb:{customer}:{at}", customer=customer,
                                direction="outbound", at=at))

    def consent(self, number: str, at: datetime, action: str = "opt_out") -> None:
        self.s.add(ConsentEvent(account_id=self.account, number=number, action=action,
                                source="STOP", business_number=B1, at=at))


def write_conversations(runtime) -> None:  # type: ignore[no-untyped-def]
    """The table in the module docstring."""
    add_account(runtime, sandbox_account("acme", "s3cret"))
    add_account(runtime, sandbox_account("other", "s3cret"))
    with runtime.db.session() as s:
        d = Data(s)
        d.text(d.call("c14", M, local(6, 8)), "delivered")
        d.text(d.call("c1", A, local(6, 9)), "delivered")
        d.inbound(A, local(6, 9, 5))
        d.human(A, local(6, 9, 15))
        d.inbound(A, local(6, 9, 20))
        d.text(d.call("c2", B, local(6, 10)), "delivered")
        d.inbound(B, local(6, 10, 30))
        d.callback(B, local(6, 10, 32))
        d.text(d.call("c3", C, local(6, 11), B2, template="general/es"), "sent")
        d.inbound(C, local(6, 11, 10))
        d.human(C, local(6, 12, 10))
        d.call("c7", G, local(6, 12), reason="cooldown", state="suppressed", template=None)
        d.text(d.call("c4", D, local(6, 20), template="after_hours/en"), "undelivered")
        d.text(d.call("c15", M, local(7, 8, 30)), "delivered")
        d.inbound(M, local(7, 8, 40))
        d.text(d.call("c5", E, local(7, 9)), "delivered")
        d.inbound(E, local(7, 9, 2), intent="opt_out")
        d.consent(E, local(7, 9, 2))
        d.text(d.call("c6", F, local(7, 9, 30), B2), "delivered")
        d.inbound(F, local(15, 9, 30))
        d.call("c8", H, local(7, 12, 30), reason="cooldown", state="suppressed", template=None)
        d.call("c9", None, local(7, 13), reason="caller_withheld", state="suppressed",
               template=None)
        d.text(d.call("c10", K, local(7, 14), B2, reason="called_back", state="cancelled"),
               "cancelled", attempts=0)
        d.callback(K, local(7, 14, 5))
        d.text(d.call("c11", J, local(7, 15), state="decided"), "intent")
        d.text(d.call("c13", L, local(7, 17), B2), "delivered")
        d.callback(L, local(7, 17, 5))
        d.inbound(L, local(7, 17, 30))
        d.call("c16", N, local(7, 23, 30), reason="opted_out", state="suppressed", template=None)
        # Outside the figures.
        d.text(d.call("c0", Z, local(5, 23, 30)), "delivered")
        d.consent(A, local(8, 9))
        d.consent(B, local(7, 9), action="opt_in")
        other = Data(s, "other")
        other.text(other.call("o1", A, local(6, 9)), "delivered")
        other.inbound(A, local(6, 9, 1))
        other.human(A, local(6, 9, 2))


@pytest.fixture
def acme(runtime):  # type: ignore[no-untyped-def]
    write_conversations(runtime)
    return runtime


def report(runtime, by: str):  # type: ignore[no-untyped-def]
    with runtime.db.session() as s:
        return build(s, "acme", local(6, 0).date(), local(7, 0).date(), by)


def figures(row) -> dict:  # type: ignore[no-untyped-def]
    return {
        "missed": row.missed_calls, "texted": row.texted, "suppressed": row.suppressed,
        "pending": row.pending, "delivered": row.delivered, "failed": row.failed,
        "replied": row.replied, "saved": row.saved, "opt_outs": row.opt_outs,
        "median": row.median_response, "p90": row.p90_response,
    }


def test_account_total(acme):
    [row] = report(acme, "account").rows
    assert row.key == "acme"
    assert figures(row) == {
        "missed": 15, "texted": 9,
        "suppressed": {"cooldown": 2, "caller_withheld": 1, "called_back": 1, "opted_out": 1},
        "pending": 1, "delivered": 7, "failed": 1, "replied": 5, "saved": 4, "opt_outs": 1,
        "median": 600.0, "p90": 3000.0,  # of 120, 600 and 3600 s
    }
    assert row.suppressed_total == 5
    assert row.reply_rate == pytest.approx(5 / 9)
    assert sorted(row.response_seconds) == [120.0, 600.0, 3600.0]


def test_per_day_in_the_accounts_time_zone(acme):
    rep = report(acme, "day")
    day6, day7 = rep.rows
    assert (day6.key, day7.key) == ("2024-05-06", "2024-05-07")
    assert figures(day6) == {
        "missed": 6, "texted": 5, "suppressed": {"cooldown": 1}, "pending": 0, "delivered": 3,
        "failed": 1, "replied": 3, "saved": 3, "opt_outs": 0, "median": 600.0, "p90": 3000.0,
    }
    assert figures(day7) == {
        "missed": 9, "texted": 4,
        "suppressed": {"cooldown": 1, "caller_withheld": 1, "called_back": 1, "opted_out": 1},
        "pending": 1, "delivered": 4, "failed": 0, "replied": 2, "saved": 1, "opt_outs": 1,
        "median": None, "p90": None,
    }
    assert day6.reply_rate == pytest.approx(0.6) and day7.reply_rate == pytest.approx(0.5)
    assert rep.total.missed_calls == 15


def test_per_business_number(acme):
    b1, b2 = report(acme, "number").rows
    assert (b1.key, b2.key) == (B1, B2)
    assert figures(b1) == {
        "missed": 11, "texted": 6,
        "suppressed": {"cooldown": 2, "caller_withheld": 1, "opted_out": 1}, "pending": 1,
        "delivered": 5, "failed": 1, "replied": 3, "saved": 2, "opt_outs": 1,
        "median": 360.0, "p90": 552.0,  # of 120 and 600 s
    }
    assert figures(b2) == {
        "missed": 4, "texted": 3, "suppressed": {"called_back": 1}, "pending": 0,
        "delivered": 2, "failed": 0, "replied": 2, "saved": 2, "opt_outs": 0,
        "median": 3600.0, "p90": 3600.0,
    }


def test_per_template(acme):
    rows = {r.key: r for r in report(acme, "template").rows}
    assert list(rows) == ["-", "after_hours/en", "general/en", "general/es"]
    assert figures(rows["-"]) == {
        "missed": 4, "texted": 0,
        "suppressed": {"cooldown": 2, "caller_withheld": 1, "opted_out": 1}, "pending": 0,
        "delivered": 0, "failed": 0, "replied": 0, "saved": 0, "opt_outs": 0,
        "median": None, "p90": None,
    }
    assert figures(rows["general/en"]) == {
        "missed": 9, "texted": 7, "suppressed": {"called_back": 1}, "pending": 1,
        "delivered": 7, "failed": 0, "replied": 4, "saved": 3,
        "opt_outs": 1,  # E's STOP followed a general/en text
        "median": 360.0, "p90": 552.0,
    }
    assert (rows["general/es"].replied, rows["general/es"].median_response) == (1, 3600.0)
    assert (rows["after_hours/en"].texted, rows["after_hours/en"].failed) == (1, 1)
    assert rows["after_hours/en"].reply_rate == 0.0


def test_the_period_is_loaded_in_five_queries(acme):
    statements: list[str] = []

    def record(*args) -> None:  # type: ignore[no-untyped-def]
        statements.append(args[2])

    period = period_for("America/Chicago", local(6, 0).date(), local(7, 0).date())
    event.listen(acme.db.engine, "before_cursor_execute", record)
    try:
        with acme.db.session() as s:
            rows = load(s, "acme", period)
            facts = compute(rows, period)
    finally:
        event.remove(acme.db.engine, "before_cursor_execute", record)
    assert len(statements) == 5
    assert len(facts.calls) == 15 and len(facts.opt_outs) == 1


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0], 0.9) == 91.0


def test_table_and_csv(acme):
    rep = report(acme, "day")
    table = format_table(rep).splitlines()
    assert table[0] == "Acme Plumbing (acme): 2024-05-06 to 2024-05-07 (America/Chicago), by day"
    assert table[1].split()[:4] == ["day", "missed", "texted", "suppressed"]
    assert table[2].split()[:13] == ["2024-05-06", "6", "5", "1", "0", "3", "1", "3", "60.0%",
                                     "10m", "00s", "50m", "00s"]
    assert table[3].startswith("2024-05-07") and table[3].rstrip().endswith(
        "called_back 1, caller_withheld 1, cooldown 1, opted_out 1")
    assert table[4].startswith("total ") and " 55.6% " in table[4]
    rate_end = table[1].index("reply rate") + len("reply rate")  # numbers are right-aligned
    assert table[2].index("60.0%") + 5 == rate_end == table[4].index("55.6%") + 5

    out = io.StringIO()
    write_csv(rep, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["day"] for r in rows] == ["2024-05-06", "2024-05-07"]
    assert rows[0]["missed_calls"] == "6" and rows[0]["reply_rate"] == "0.6000"
    assert rows[0]["median_response_seconds"] == "600.0"
    assert rows[0]["p90_response_seconds"] == "3000.0" and rows[0]["responses_timed"] == "3"
    assert rows[1]["median_response_seconds"] == "" and rows[1]["suppressed_cooldown"] == "1"
    assert rows[1]["suppressed_called_back"] == "1" and rows[1]["opt_outs"] == "1"
    assert "suppressed_missed" not in rows[0]


@pytest.fixture
def cli_env(runtime, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", SECRET)
    monkeypatch.setenv("TEXTBACK_PUBLIC_URL", "https://hooks.example.test")
    monkeypatch.setenv("TEXTBACK_DEMO", "false")
    write_conversations(runtime)
    return runtime


def test_cli_prints_the_table(cli_env, capsys):
    assert main(["report", "acme", "--since", "2024-05-06", "--until", "2024-05-07",
                 "--by", "number"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("by number")
    assert lines[2].split()[:3] == [B1, "11", "6"] and lines[3].split()[:3] == [B2, "4", "3"]
    assert lines[4].split()[:3] == ["total", "15", "9"]


def test_cli_writes_csv_to_a_file_and_to_stdout(cli_env, capsys, tmp_path):
    path = tmp_path / "numbers.csv"
    assert main(["report", "acme", "--since", "2024-05-06", "--until", "2024-05-07",
                 "--by", "template", "--csv", str(path)]) == 0
    assert "wrote 4 row(s)" in capsys.readouterr().out
    rows = list(csv.DictReader(path.open()))
    assert [r["template"] for r in rows] == ["-", "after_hours/en", "general/en", "general/es"]
    assert rows[2]["texted"] == "7" and rows[2]["saved"] == "3"
    assert main(["report", "acme", "--since", "2024-05-06", "--until", "2024-05-07",
                 "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["account"] == "acme" and rows[0]["replied"] == "5"
    assert rows[0]["reply_rate"] == "0.5556"


def test_cli_errors_name_what_to_fix(cli_env, capsys):
    assert main(["report", "nobody", "--since", "2024-05-06"]) == 2
    assert "no account 'nobody'" in capsys.readouterr().err
    assert main(["report", "acme", "--since", "May 6"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["report", "acme", "--since", "2024-05-07", "--until", "2024-05-06"]) == 2
    assert "--until" in capsys.readouterr().err


def test_a_call_through_the_workflow_is_counted_as_texted(app, runtime, webhook_secret):
    add_account(runtime, sandbox_account("acme", webhook_secret))
    assert post(app.test_client(), "acme", "voice", missed(), webhook_secret).status_code == 200
    today = clock.today_in(TZ)
    with runtime.db.session() as s:
        row = build(s, "acme", today - timedelta(days=1)).total
    assert (row.missed_calls, row.texted, row.pending, row.suppressed_total) == (1, 1, 0, 0)
