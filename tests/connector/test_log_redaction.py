"""No phone number, message body or SQL parameter reaches a log line, at any level."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from connector.cli import configure_logging
from connector.kernel.log_redaction import QUIET_LOGGERS, RedactingFilter, mask_phone_numbers
from connector.settings.config import load_settings
from connector.storage.models import Message
from tests.conftest import SECRET

NUMBER = "+14155550123"
DIGITS = NUMBER[1:]
BODY = "Hi Dana, the boiler in flat 3 is leaking again, call me back"


@pytest.fixture
def log_output(tmp_path: Path) -> Iterator[io.StringIO]:
    """What the command line's logging writes, configured from ``TEXTBACK_LOG_LEVEL=debug``."""
    settings = load_settings({"TEXTBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
                              "TEXTBACK_SECRET_KEY": SECRET, "TEXTBACK_LOG_LEVEL": "debug"})
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in QUIET_LOGGERS}
    root.handlers = []  # as in a fresh process, so basicConfig does configure
    stream = io.StringIO()
    configure_logging(settings.log_level, stream=stream)
    yield stream
    for handler in root.handlers:
        handler.close()
    root.handlers, level, quiet = saved
    root.setLevel(level)
    for name, quiet_level in quiet.items():
        logging.getLogger(name).setLevel(quiet_level)


@pytest.fixture
def debug_on() -> Iterator[Callable[[str], None]]:
    """Set a library's logger to DEBUG for one test (restored after)."""
    saved: dict[str, int] = {}

    def turn_on(name: str) -> None:
        saved.setdefault(name, logging.getLogger(name).level)
        logging.getLogger(name).setLevel(logging.DEBUG)

    yield turn_on
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def assert_clean(text: str) -> None:
    for secret in (DIGITS, DIGITS[1:], "%2B" + DIGITS, "5550123", "boiler", "leaking"):
        assert secret not in text, secret


def failing_insert(runtime) -> IntegrityError:  # type: ignore[no-untyped-def]
    """A message row for an account that does not exist: the foreign key refuses it."""
    with pytest.raises(IntegrityError) as info, runtime.db.session() as s:
        s.add(Message(account_id="no-such-account", direction="inbound", purpose_key="k",
                      customer=NUMBER, business_number="+14155550100", body=BODY,
                      status="received"))
        s.flush()
    return info.value


def test_a_database_error_logs_neither_the_number_nor_the_body(runtime, log_output) -> None:  # type: ignore[no-untyped-def]
    log = logging.getLogger("connector.jobs.intake")
    exc = failing_insert(runtime)
    log.info("could not store the message: %s", exc)
    try:
        raise exc
    except IntegrityError:
        log.exception("could not store the message")
    text = log_output.getvalue()
    assert "could not store the message" in text and "IntegrityError" in text
    assert "FOREIGN KEY constraint failed" in text  # the error itself is still there
    assert_clean(text)
    # At the source: the engine keeps parameters out of the error itself.
    assert runtime.db.engine.hide_parameters
    assert BODY not in str(exc) and NUMBER not in str(exc)


def test_sql_echo_at_debug_writes_no_parameters_or_rows(runtime, log_output) -> None:  # type: ignore[no-untyped-def]
    from tests.connector.helpers import add_account, sandbox_account

    add_account(runtime, sandbox_account("acme", "s" * 24))
    with runtime.db.session() as s:
        s.add(Message(account_id="acme", direction="inbound", purpose_key="k", customer=NUMBER,
                      business_number="+14155550100", body=BODY, status="received"))
    # Even with SQLAlchemy's statement and row logging turned back on by hand.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)
    with runtime.db.session() as s:
        assert s.scalars(select(Message.body)).one() == BODY
    assert_clean(log_output.getvalue())


class _Lookup(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        """Quiet."""


def test_urllib3_debug_lines_keep_only_a_path_template(log_output, debug_on) -> None:  # type: ignore[no-untyped-def]
    # The HubSpot client sets urllib3's logger to WARNING once one is built; a process with
    # TEXTBACK_LOG_LEVEL=debug and no HubSpot account logs these lines.
    debug_on("urllib3")
    server = HTTPServer(("127.0.0.1", 0), _Lookup)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v2/PhoneNumbers/%2B{DIGITS}"
        assert requests.get(url, params={"Fields": "line_type_intelligence"}, timeout=5).ok
    finally:
        server.shutdown()
        server.server_close()
    # The same line as urllib3 writes it for the real host.
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s', "https", "lookups.twilio.com", 443, "GET",
        f"/v2/PhoneNumbers/%2B{DIGITS}?Fields=line_type_intelligence", "HTTP/1.1", 200, 512)
    text = log_output.getvalue()
    assert f'127.0.0.1:{server.server_port} "GET /v2/PhoneNumbers/{{id}} HTTP/1.1" 200' in text
    assert 'lookups.twilio.com:443 "GET /v2/PhoneNumbers/{id} HTTP/1.1" 200' in text
    assert "Fields" not in text
    assert_clean(text)


def test_an_encoded_number_anywhere_is_masked(log_output) -> None:  # type: ignore[no-untyped-def]
    logging.getLogger("connector.jobs.replies").debug("carrier asked for /v1/x?To=%%2B%s", DIGITS)
    text = log_output.getvalue()
    assert "To=%2B1********23" in text
    assert_clean(text)


def test_crm_client_response_bodies_are_dropped(log_output, debug_on) -> None:  # type: ignore[no-untyped-def]
    client_log = logging.getLogger("hubspot.crm.contacts.rest")
    debug_on(client_log.name)  # what the HubSpot client's own Configuration.debug = True does
    client_log.debug("response body: %s", f'{{"phone": "{NUMBER}", "notes": "{BODY}"}}'.encode())
    client_log.warning("HubSpot said no")
    text = log_output.getvalue()
    assert "response body" not in text and "HubSpot said no" in text
    assert_clean(text)


def test_configuring_twice_adds_the_filter_once(log_output) -> None:  # type: ignore[no-untyped-def]
    configure_logging("DEBUG")
    ours = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    assert len(ours) == 1
    assert sum(isinstance(f, RedactingFilter) for f in ours[0].filters) == 1


@pytest.mark.parametrize(("text", "masked"), [
    ("caller +14155550123 hung up", "caller +1********23 hung up"),
    ("caller +1 (415) 555-0123 hung up", "caller +1********23 hung up"),
    ("From=%2B14155550123&To=%2b14155550100", "From=%2B1********23&To=%2B1********00"),
    ("msisdn=14155550123", "msisdn=*********23"),
    # Not numbers: ids, times, addresses and versions stay readable.
    ("deal 51234567890 at 1781524800", "deal 51234567890 at 1781524800"),
    ("SM1234567890abcdef 127.0.0.1:8080 2026-06-15 12:00:00.612543",
     "SM1234567890abcdef 127.0.0.1:8080 2026-06-15 12:00:00.612543"),
])
def test_phone_number_forms_are_masked(text: str, masked: str) -> None:
    assert mask_phone_numbers(text) == masked
