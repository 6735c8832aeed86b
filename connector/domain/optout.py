"""What a customer's text asks for: stop, start again, help, or nothing (an ordinary reply).

Matching is deliberately strict about *where* a keyword appears and lenient about *how* it is
written: the whole message must be the keyword or a known phrase ("stop", "STOP!", " Stop. ",
"stop texting me", "ＳＴＯＰ", a Cyrillic "ЅТОР"), while a keyword inside a longer message is an
ordinary reply ("don't stop by today" is not an opt-out). Twilio and CTIA list the keywords:
https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class Intent(StrEnum):
    """The compliance meaning of an inbound text."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    NONE = "none"


OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
     "OPT OUT", "REMOVE", "REMOVE ME", "UNSUB", "ALTO", "PARAR", "BAJA"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES", "SUBSCRIBE", "OPT IN", "OPTIN"})
HELP_KEYWORDS = frozenset({"HELP", "INFO", "AYUDA"})

# Natural ways of saying stop that a reasonable person would read as revoking consent.
_OPT_OUT_PHRASES = re.compile(
    r"^(?:please\s+)?(?:stop|quit|no\s+more)\s+(?:texting|messaging|txting|texts|messages|"
    r"sending(?:\s+(?:me\s+)?(?:texts|messages))?)(?:\s+me)?(?:\s+please)?$"
    r"|^(?:please\s+)?(?:unsubscribe|remove)\s+me(?:\s+from\s+(?:this|your)\s+list)?(?:\s+please)?$"
    r"|^(?:do\s+not|dont)\s+(?:text|message|contact)\s+me(?:\s+again)?$"
    r"|^(?:no\s+me\s+(?:escriba|escribas|envie|envies)\s*(?:mas|mensajes)?)$"
)

# Letters from other scripts that look like Latin capitals, as a spammer-proof keyword match
# needs them read as Latin (Unicode's confusables list, trimmed to what spells our keywords).
_LOOKALIKES = str.maketrans(
    {
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
        "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D",
        "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s",
        "і": "i", "ј": "j", "ԁ": "d", "Α": "A", "Β": "B", "Ε": "E", "Η": "H", "Ι": "I",
        "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        "ο": "o", "ν": "v",
    }
)


def normalise(body: str) -> str:
    """Fold width, lookalike letters, accents, case, punctuation and spacing away."""
    text = unicodedata.normalize("NFKC", body).translate(_LOOKALIKES)
    text = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    )
    text = re.sub(r"[^\w\s']", " ", text).replace("'", "")
    return re.sub(r"\s+", " ", text).strip().upper()


def classify(body: str) -> Intent:
    """The intent of a customer's text."""
    text = normalise(body)
    if not text:
        return Intent.NONE
    if text in OPT_OUT_KEYWORDS or _OPT_OUT_PHRASES.match(text.lower()):
        return Intent.OPT_OUT
    if text in OPT_IN_KEYWORDS:
        return Intent.OPT_IN
    if text in HELP_KEYWORDS:
        return Intent.HELP
    return Intent.NONE
