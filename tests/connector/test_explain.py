"""``textback explain``: the rules' facts read right (no ``?``, quiet hours the right way round)."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.reporting.explain import explain
from tests.connector.helpers import add_account, missed, post, sandbox_account


def _explain_one(app, runtime, secret, *, policy=None, **event):  # type: ignore[no-untyped-def]
    doc = sandbox_account("acme", secret)
    doc["policy"] = policy or {}
    add_account(runtime, doc)
    post(app.test_client(), "acme", "voice", missed("C1", **event), secret)
    return explain(runtime, "C1")


def rule_line(text: str, rule: str) -> str:
    """The trail line of one rule."""
    return next(line.strip() for line in text.splitlines() if f"] {rule}:" in line)


def test_a_call_that_rang_out_is_not_weighed_as_a_misdial(app, runtime, webhook_secret):
    text = _explain_one(app, runtime, webhook_secret)
    assert rule_line(text, "not a misdial") == (
        "[pass] not a misdial: no-answer: only a hang-up while ringing can be a misdial")
    assert "?" not in text
    assert "outcome: no-answer (the caller rang out with no answer)" in text


def test_a_hang_up_shows_its_ring_time_or_says_none_came(app, runtime, webhook_secret):
    text = _explain_one(app, runtime, webhook_secret, outcome="canceled", ring_seconds=1.5)
    assert rule_line(text, "not a misdial") == (
        "[STOP] not a misdial: hung up after 1.5 s of ringing; a hang-up under 3 s is a misdial")
    assert "decision: not texted, reason misdial" in text


def test_a_hang_up_without_a_ring_time(app, runtime, webhook_secret):
    text = _explain_one(app, runtime, webhook_secret, outcome="canceled")
    assert rule_line(text, "not a misdial") == (
        "[pass] not a misdial: hung up while ringing; the carrier sent no ring time, so not "
        "taken for a misdial")


def test_quiet_hours_read_the_right_way_round(app, runtime, webhook_secret, frozen_clock):
    # 03:26 in Los Angeles (the caller's zone): inside quiet hours, outside 08:00-21:00.
    frozen_clock.move_to(datetime(2026, 6, 15, 10, 26, tzinfo=UTC))
    text = _explain_one(app, runtime, webhook_secret)
    assert rule_line(text, "send time") == (
        "[pass] send time: delay 0:00:00; 03:26 in America/Los_Angeles, in quiet hours (texts "
        "go out 08:00-21:00); sent anyway: the customer called first")


def test_inside_the_sending_window_is_not_quiet_hours(app, runtime, webhook_secret, frozen_clock):
    frozen_clock.move_to(datetime(2026, 6, 15, 19, 0, tzinfo=UTC))  # 12:00 in Los Angeles
    text = _explain_one(app, runtime, webhook_secret)
    assert rule_line(text, "send time") == (
        "[pass] send time: delay 0:00:00; 12:00 in America/Los_Angeles, not in quiet hours "
        "(texts go out 08:00-21:00)")


def test_held_texts_say_when_they_go(app, runtime, webhook_secret, frozen_clock):
    frozen_clock.move_to(datetime(2026, 6, 15, 10, 26, tzinfo=UTC))
    text = _explain_one(app, runtime, webhook_secret,
                        policy={"quiet_hours": {"start": "08:00", "end": "21:00", "mode": "hold"}})
    assert rule_line(text, "send time") == (
        "[pass] send time: delay 0:00:00; 03:26 in America/Los_Angeles, in quiet hours (texts "
        "go out 08:00-21:00); held to 2026-06-15 08:00")


def test_times_are_in_the_accounts_zone_in_one_format(app, runtime, webhook_secret, frozen_clock):
    frozen_clock.move_to(datetime(2026, 6, 15, 19, 0, tzinfo=UTC))  # 14:00 in Chicago (CDT)
    text = _explain_one(app, runtime, webhook_secret)
    assert "to +14155550100 at Jun 15, 2:00 PM CDT" in text
    assert "; send at Jun 15, 2:00 PM CDT" in text
    assert "  trail (times in America/Chicago):\n    14:00:" in text
