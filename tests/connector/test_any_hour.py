"""The few behaviours that read the date, at the hours and in the machine zones where they broke.

A missed call is texted, counted in ``textback report`` (dates typed in the account's zone, no
``--until``) and drawn on the dashboard's last day, with the clock at each of 00:30, 05:59, 12:00
and 23:59 UTC and the machine's ``TZ`` at each end of the world's offsets. Between 00:00 and 06:00
UTC the account's zone (America/Chicago) is still on the previous day, which is where the report
used to end before it began. ``make test-clocks`` runs the whole suite the same way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.cli import main
from connector.kernel import clock
from connector.storage.users import add_user
from tests.conftest import SECRET, SUITE_INSTANT
from tests.connector.helpers import add_account, missed, post, sandbox_account

ACCOUNT_ZONE = ZoneInfo("America/Chicago")  # the zone of sandbox_account()
HOURS = ["00:30", "05:59", "12:00", "23:59"]
MACHINE_ZONES = ["Pacific/Kiritimati", "America/Adak"]  # UTC+14 and UTC-10 (-9 in summer)


@pytest.fixture(params=MACHINE_ZONES)
def machine_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process's ``TZ`` for one test, restored after it."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def cli(runtime, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", SECRET)
    monkeypatch.setenv("TEXTBACK_PUBLIC_URL", "https://hooks.example.test")
    monkeypatch.setenv("TEXTBACK_DEMO", "false")
    return runtime


def test_the_machine_zone_fixture_moves_local_time(machine_zone: str) -> None:
    # Guards the fixture itself: if TZ stopped reaching the C library, every case below would
    # silently run in the default zone.
    assert time.strftime("%Z", time.localtime()) in {"+14", "HST", "HDT"}


@pytest.mark.parametrize("at", HOURS)
def test_a_missed_call_is_texted_reported_and_charted_at_any_hour(
        app, cli, webhook_secret, frozen_clock, machine_zone, at, capsys):  # type: ignore[no-untyped-def]
    hour, minute = (int(part) for part in at.split(":"))
    frozen_clock.move_to(SUITE_INSTANT.replace(hour=hour, minute=minute))
    today = clock.today_in(ACCOUNT_ZONE)
    add_account(cli, sandbox_account("acme", webhook_secret))
    assert post(app.test_client(), "acme", "voice", missed(), webhook_secret).status_code == 200

    # The report: --since today in the account's zone, no --until.
    assert main(["report", "acme", "--since", today.isoformat(), "--csv", "-"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    figures = dict(zip(header.split(","), row.split(","), strict=True))
    assert (figures["missed_calls"], figures["texted"]) == ("1", "1")
    assert main(["report", "acme", "--since", today.isoformat()]) == 0
    title = capsys.readouterr().out.splitlines()[0]
    assert f": {today} to {today} (America/Chicago)" in title

    # The UTC date typed as --since: fine when it is today (or earlier) in the account's zone,
    # otherwise a one-line error that says what today is there.
    utc_today = clock.now().date()
    code = main(["report", "acme", "--since", utc_today.isoformat()])
    err = capsys.readouterr().err
    if utc_today > today:
        assert code == 2 and f"later than today in the account's time zone ({today}" in err
    else:
        assert code == 0 and err == ""

    # The dashboard's last bar is today in the account's zone, with the call on it.
    with cli.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", "correct horse battery", "acme")
    client = app.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "dana@acme.test", "password": "correct horse battery",
                                "csrf": token})
    page = client.get("/dashboard").get_data(as_text=True)
    missed_chart = page.split('data-series="missed_calls"')[1].split("</figure>")[0]
    days = re.findall(r'data-value="(\d+)" data-day="([0-9-]+)"', missed_chart)
    assert days[-1] == ("1", today.isoformat())
    assert f'data-day="{today + timedelta(days=1)}"' not in page


def test_since_in_the_future_says_so(cli, frozen_clock, capsys):  # type: ignore[no-untyped-def]
    frozen_clock.move_to(datetime(2026, 6, 15, 3, 0, tzinfo=UTC))  # 22:00 on the 14th in Chicago
    add_account(cli, sandbox_account("acme", "secret"))
    assert main(["report", "acme", "--since", "2026-06-15"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("textback: --since 2026-06-15 is later than today in the account's "
                           "time zone (2026-06-14, America/Chicago)")
    assert main(["report", "acme", "--since", "2026-06-14"]) == 0
