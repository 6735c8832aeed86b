"""Transport failures as ``requests`` really raises them, for tests that stub them."""

from __future__ import annotations

import requests
import urllib3


def refused_connection() -> requests.ConnectionError:
    """Nothing listens on the port: the request never left this machine (safe to repeat).

    ``requests`` wraps urllib3's ``MaxRetryError`` around a ``NewConnectionError``; a bare
    ``ConnectionError`` says nothing about when it failed and counts as ambiguous.
    """
    cause = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", cause))  # type: ignore[arg-type]


def dropped_connection() -> requests.ConnectionError:
    """The connection closed after the request went out: it may have taken effect."""
    cause = urllib3.exceptions.ProtocolError(
        "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
    )
    return requests.ConnectionError(cause)
