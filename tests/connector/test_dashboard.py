"""The dashboard: the same figures as ``textback report`` for the chosen period, a chart per
series with labelled axes and values on hover, the period picker and the account switcher.

The data is the report tests' known set of conversations (Acme, 2024-05-06 and 07, Chicago)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.kernel import clock
from connector.reporting.dashboard import dashboard, nice_top
from connector.reporting.report import Report, ReportRow, build, period_for
from connector.storage.users import add_user
from tests.browser import check_page
from tests.connector.helpers import add_account, sandbox_account
from tests.connector.test_report import write_conversations

PASSWORD = "correct horse battery"
PERIOD = "since=2024-05-01&until=2024-05-14"


def sign_in(client, email: str = "dana@acme.test") -> None:  # type: ignore[no-untyped-def]
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"email": email, "password": PASSWORD, "csrf": token})
    assert answer.status_code == 302


@pytest.fixture
def acme(runtime):  # type: ignore[no-untyped-def]
    write_conversations(runtime)
    with runtime.db.session() as s:
        add_user(s, "dana@acme.test", "Dana", PASSWORD, ["acme", "other"])
    return runtime


def figure(page: str, key: str) -> str:
    found = re.search(rf'data-figure="{key}"><p class="label">[^<]*</p><p class="value">([^<]*)<',
                      page)
    assert found, f"no {key} figure on the page"
    return found.group(1)


def test_the_figures_are_the_reports(app, acme):
    client = app.test_client()
    sign_in(client)
    page = client.get(f"/dashboard?account=acme&{PERIOD}").get_data(as_text=True)
    with acme.db.session() as s:
        total = build(s, "acme", date(2024, 5, 1), date(2024, 5, 14), "account").total
    assert figure(page, "missed_calls") == str(total.missed_calls) == "16"
    assert figure(page, "texted") == str(total.texted)
    assert figure(page, "replied") == str(total.replied)
    assert figure(page, "saved") == str(total.saved)
    assert figure(page, "opt_outs") == str(total.opt_outs)
    assert figure(page, "median_response") == "10m 00s"  # 120, 600 and 3600 s
    assert "p90 50m 00s, over 3 replies answered" in page
    assert f"reply rate {total.replied / total.texted:.0%} of texted" in page
    # The day rows, and the command that prints the same figures.
    assert re.search(r"<th scope=\"row\">2024-05-06</th><td>6</td>", page)
    assert "textback report acme --since 2024-05-01 --until 2024-05-14 --by day" in page


def test_charts_have_labelled_axes_and_a_value_per_day():
    board_days = [f"2024-05-{d:02d}" for d in range(1, 15)]
    rows = [ReportRow(day, missed_calls=3 if day == "2024-05-06" else 0) for day in board_days]
    rows[5].texted = 2
    report = Report("acme", "Acme", period_for("America/Chicago", date(2024, 5, 1),
                                               date(2024, 5, 14)), "day", rows, ReportRow("total"))
    board = dashboard(report)
    missed = board.charts[0]
    assert [c.key for c in board.charts] == ["missed_calls", "texted", "replied", "saved"]
    assert board.y_title == "Calls per day" and board.x_title == "Day (America/Chicago)"
    assert [t.label for t in missed.y_ticks] == ["0", "1", "2", "3"]
    assert missed.x_ticks[0].label == "May 1" and missed.x_ticks[-1].label == "May 14"
    assert missed.bars[5].tip == "Mon May 6: 3 missed calls" and missed.bars[5].height == 100
    assert board.charts[1].bars[5].tip == "Mon May 6: 2 calls texted back"
    assert board.charts[2].total == 0  # drawn as "None in this period", not a gap
    response = next(f for f in board.figures if f.key == "median_response")
    assert (response.value, response.detail) == ("-", "no reply answered by a person yet")


@pytest.mark.parametrize("peak,top,step", [(0, 1, 1), (4, 4, 1), (5, 5, 1), (6, 6, 2), (9, 10, 2),
                                           (11, 15, 5), (41, 50, 10), (101, 150, 50)])
def test_the_y_axis_ends_on_a_round_number(peak, top, step):
    assert nice_top(peak) == (top, step)


@pytest.mark.parametrize("query,message", [
    ("since=yesterday", "From takes a date like 2026-05-31, not &#39;yesterday&#39;"),
    ("since=2024-05-10&until=2024-05-01", "To (2024-05-01) is before From (2024-05-10)"),
    ("since=2099-01-01", "From (2099-01-01) is after today ({today} in the account"),
    ("since=2020-01-01&until=2024-01-01", "at most 366 days"),
])
def test_a_bad_period_is_named_and_the_last_30_days_shown(app, acme, query, message):
    today = clock.today_in(ZoneInfo("America/Chicago"))
    client = app.test_client()
    sign_in(client)
    answer = client.get(f"/dashboard?account=acme&{query}")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert message.format(today=today) in page and "Showing the last 30 days" in page
    assert f'value="{today - timedelta(days=29)}"' in page and f'value="{today}"' in page


def test_the_switcher_lists_the_users_accounts_only(app, acme, webhook_secret):
    add_account(acme, sandbox_account("third", webhook_secret, name="Zed Heating"))
    client = app.test_client()
    sign_in(client)
    page = client.get("/dashboard?account=other").get_data(as_text=True)
    assert '<label for="account-switcher">Account</label>' in page
    assert '<option value="other" selected>' in page and '<option value="acme"' in page
    assert "third" not in page
    assert client.get("/dashboard?account=third").status_code == 404
    # The choice is remembered by the next page.
    assert '<option value="other" selected>' in client.get("/conversations").get_data(as_text=True)


def test_dashboard_in_the_browser(app, acme, live_server, browser):
    page = browser.new_page()
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", "dana@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server}/dashboard?account=acme&{PERIOD}")
    chart = page.locator('figure.chart[data-series="missed_calls"]')
    assert chart.locator(".y-title").inner_text() == "Calls per day"
    assert chart.locator(".x-title").inner_text() == "Day (America/Chicago)"
    bar = chart.locator('.bar[data-day="2024-05-06"]')
    assert not bar.locator(".tip").is_visible()
    bar.hover()  # the day's value shows above the chart
    assert bar.locator(".tip").is_visible()
    assert bar.locator(".tip").inner_text() == "Mon May 6: 6 missed calls"
    check_page(page, "dashboard")
    page.select_option("#account-switcher", "other")
    page.wait_for_url("**/dashboard?account=other*")
    assert page.locator("#account-switcher").input_value() == "other"
