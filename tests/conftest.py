"""Suite-wide fixtures: the frozen clock, the socket guard that keeps every test on this machine,
settings, databases (SQLite always; PostgreSQL and Redis where they answer), the runtime and the
app."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
import time_machine

# -- the clock: every test starts at the same instant, whatever the wall clock says --------------

#: The suite's date and time when ``--clock`` is not given (UTC). Mid-June: daylight saving time
#: in the northern hemisphere, so the US zones the fixtures use are on their summer offsets.
SUITE_INSTANT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
_CLOCK_FROM_ENV = os.environ.pop("TEXTBACK_TEST_CLOCK", None) or None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock", default=_CLOCK_FROM_ENV, metavar="WHEN",
        help="start every test at this UTC time: HH:MM on the suite's date "
             f"({SUITE_INSTANT.date()}) or a full ISO 8601 instant "
             f"(default {SUITE_INSTANT.isoformat()}; also TEXTBACK_TEST_CLOCK)")


def suite_instant(config: pytest.Config) -> datetime:
    """The instant every test starts at, from ``--clock``."""
    value = config.getoption("--clock")
    if not value:
        return SUITE_INSTANT
    try:
        if len(value) <= 5:
            return datetime.combine(SUITE_INSTANT.date(), time.fromisoformat(value), UTC)
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise pytest.UsageError(f"--clock takes HH:MM or an ISO 8601 instant, not {value!r}") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "applies(predicate, why_not): a contract check for some adapters only")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out contract checks that do not apply to an adapter (they are not skips)."""
    from tests.capabilities import applies_to

    left_out = [item for item in items if not applies_to(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if applies_to(item)]


def pytest_report_header(config: pytest.Config) -> str:
    return f"clock: every test starts at {suite_instant(config).isoformat()}; TZ={os.environ.get('TZ', '')}"


@pytest.fixture(autouse=True)
def frozen_clock(request: pytest.FixtureRequest) -> Iterator[time_machine.Coordinates]:
    """Start the test at the suite's instant; the clock then ticks, so timeouts still pass.

    ``time-machine`` moves ``datetime.now`` and ``time.time`` for every thread of the process, so
    the app, its job threads and the local stubs all read the same time. A test moves it further
    with the returned coordinates (``frozen_clock.move_to(...)``) or its own ``time_machine.travel``.
    """
    with time_machine.travel(suite_instant(request.config), tick=True) as coordinates:
        yield coordinates


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise RuntimeError(f"test tried to reach beyond 127.0.0.1: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise RuntimeError(f"test tried to reach beyond 127.0.0.1: {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def socket_guard() -> Iterator[None]:
    """Fail any test that opens a connection to a host other than loopback."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# -- shared fixtures: settings, databases, runtime, app ------------------------------------------


# The suite's own settings are taken out of the environment: textback refuses TEXTBACK_* names it
# does not know, and the CLI tests read the environment.
PG_ADMIN_URL = os.environ.pop(
    "TEXTBACK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.pop("TEXTBACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "s" * 40


def _pg_reachable() -> str | None:
    try:
        import psycopg

        conn = psycopg.connect(
            PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=2
        )
        conn.close()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})"


def _redis_reachable() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"Redis not reachable at 127.0.0.1:6379 ({type(exc).__name__})"


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """The PostgreSQL test database URL; skips where no server answers (a laptop)."""
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    import psycopg

    schema = "tb_" + uuid.uuid4().hex[:12]
    plain = pg_base_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_base_url else "?"
    yield f"{pg_base_url}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The Redis test URL (database 15, flushed after); skips where no server answers."""
    reason = _redis_reachable()
    if reason:
        pytest.skip(reason)
    yield REDIS_URL
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def make_settings(tmp_path: Path, **overrides: str):  # type: ignore[no-untyped-def]
    """Settings for a test, on a SQLite file under ``tmp_path`` unless overridden."""
    from connector.settings.config import load_settings

    env = {
        "TEXTBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'textback.db'}",
        "TEXTBACK_PUBLIC_URL": "https://hooks.example.test",
        "TEXTBACK_SECRET_KEY": SECRET,
        "TEXTBACK_DEMO": "false",
        # The local stubs the suite points adapters at are http://127.0.0.1:<port>.
        "TEXTBACK_ALLOW_HTTP_LOOPBACK": "true",
    }
    env.update({f"TEXTBACK_{k.upper()}": v for k, v in overrides.items()})
    return load_settings(env)


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """SQLite settings for one test."""
    return make_settings(tmp_path)


@pytest.fixture
def runtime(settings):  # type: ignore[no-untyped-def]
    """A migrated runtime whose jobs run inline (Huey immediate mode)."""
    from connector.runtime import Runtime
    from connector.storage.db import upgrade

    upgrade(settings.database_url)
    rt = Runtime(settings, immediate_queue=True)
    yield rt
    rt.close()


@pytest.fixture
def app(runtime):  # type: ignore[no-untyped-def]
    """The Flask app around the runtime."""
    from connector.web import create_app

    return create_app(runtime)


@pytest.fixture
def webhook_secret() -> str:
    """A fresh secret for sandbox webhooks."""
    return secrets.token_urlsafe(16)


# The browser fixtures (a live server, one Chromium) for the page tests: see tests/browser.py.
from tests.browser import browser, live_server  # noqa: E402, F401
