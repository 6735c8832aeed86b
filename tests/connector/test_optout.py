"""The opt-out keyword matrix: case, punctuation, spacing, lookalikes, and keywords in sentences."""

from __future__ import annotations

import pytest

from connector.domain.optout import Intent, classify

OPT_OUT = [
    "STOP", "stop", "Stop", "sToP", " stop ", "stop.", "STOP!", "stop!!!", "'stop'", "STOP\n",
    "STOPALL", "stop all", "UNSUBSCRIBE", "unsubscribe", "CANCEL", "END", "QUIT", "REVOKE",
    "OPTOUT", "opt-out", "Opt Out", "stop texting me", "Stop texting me please",
    "please stop texting me", "STOP TEXTING ME!", "stop messaging me", "stop sending me texts",
    "no more texts", "unsubscribe me", "remove me", "remove me from your list",
    "do not text me", "don't text me", "Dont contact me again",
    "ＳＴＯＰ",  # full-width letters
    "ЅТОР",  # Cyrillic lookalikes
    "SΤOP",  # a Greek capital tau
    "stóp",  # an accent
    "STOP 🛑",
]
OPT_IN = ["START", "start", "Unstop", "YES", "yes!", "Start."]
HELP = ["HELP", "help", "Help?", "INFO", "info."]
ORDINARY = [
    "don't stop by today", "Can you stop by tomorrow?", "stop by at 5", "Stop the leak please",
    "Cancel my appointment", "I need to end my contract", "The end", "quite urgent",
    "yes please come at 3", "help me with my sink", "info about pricing", "Stopped working",
    "Is this a stop-gap fix?", "", "   ", "🙂", "startup costs?", "Please call me",
]


@pytest.mark.parametrize("body", OPT_OUT)
def test_opts_out(body):
    assert classify(body) is Intent.OPT_OUT


@pytest.mark.parametrize("body", OPT_IN)
def test_opts_in(body):
    assert classify(body) is Intent.OPT_IN


@pytest.mark.parametrize("body", HELP)
def test_asks_for_help(body):
    assert classify(body) is Intent.HELP


@pytest.mark.parametrize("body", ORDINARY)
def test_ordinary_replies_are_not_keywords(body):
    assert classify(body) is Intent.NONE
