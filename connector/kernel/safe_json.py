"""JSON from requests, parsed with a cap on nesting.

Python's :mod:`json` parser recurses once per nested array or object, so a body of a few
thousand ``[`` raises ``RecursionError`` (a 500, and the provider retries the same body for
hours). No webhook we read nests deeper than a handful of levels, so every view and adapter that
parses request JSON goes through :func:`loads`, which counts the nesting first (without
recursing) and refuses anything deeper than :data:`MAX_DEPTH` as a
:class:`~connector.kernel.errors.MalformedWebhookError` (a 400).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from connector.kernel.errors import MalformedWebhookError

#: Deepest nesting of arrays and objects a request may have. Provider payloads stay under ten.
MAX_DEPTH = 64

# A JSON string (with its escapes) or one bracket: strings are skipped whole, so brackets inside
# them do not count. The scan is linear in the body's length.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, counted without recursion.

    Malformed text gives a number too (unbalanced brackets count as they come); the parser
    refuses such text afterwards anyway.
    """
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group(0)
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def loads(
    data: bytes | str,
    *,
    what: str = "request",
    max_depth: int = MAX_DEPTH,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """``data`` parsed as JSON; :class:`MalformedWebhookError` when it is not JSON or nests deeper
    than ``max_depth``.

    ``what`` names the source in the error (``"aircall: webhook"``); the error never quotes the
    payload. Bytes are decoded as :func:`json.loads` would (UTF-8, -16 or -32, by their first
    bytes).
    """
    try:
        text = data.decode(json.detect_encoding(data)) if isinstance(data, bytes) else data
    except (UnicodeDecodeError, LookupError):
        raise MalformedWebhookError(f"{what} is not JSON (not text)") from None
    if nesting_depth(text) > max_depth:
        raise MalformedWebhookError(f"{what} nests deeper than {max_depth} levels")
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and integers too long to convert.
        raise MalformedWebhookError(f"{what} is not JSON") from None
