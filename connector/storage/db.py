"""Engine, sessions and migrations for SQLite (default) and PostgreSQL (psycopg 3).

Only :func:`upgrade` (``textback db upgrade``) creates anything: the SQLite file and its folder,
or the tables. Every other command first asks :func:`schema_problem` whether the database is
there and up to date, and gets one line to show when it is not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from psycopg import Error as PsycopgError
from psycopg import RawCursor
from sqlalchemy import Connection, create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from connector.kernel.errors import ConfigurationError
from connector.storage.sqlite_lock import connection_factory

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)
#: Seconds to wait for PostgreSQL to accept a connection (unless the URL sets connect_timeout).
CONNECT_TIMEOUT_SECONDS = 10
#: What to do when the tables are missing or old.
UPGRADE_HINT = "run `textback db upgrade`"


def make_engine(url: str) -> Engine:
    """An engine with the settings each backend needs for a multi-threaded service.

    Statement parameters (phone numbers, message bodies) are kept out of database errors and of
    SQLAlchemy's log lines.
    """
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        path = sqlite_path(url)
        if path is not None:  # writers of the file queue in the kernel, not in SQLite's sleeps
            kwargs["connect_args"]["factory"] = connection_factory(path)
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        if "connect_timeout" not in make_url(url).query:  # an unanswering host fails in time
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


def execute_native(connection: Connection, statement: str, params: Sequence[Any]) -> int:
    """Run ``statement``, written with PostgreSQL's own ``$1, $2, ...`` placeholders, on the
    psycopg connection under ``connection``; the number of rows it changed.

    For a hot statement with many parameters: psycopg rewrites the ``%(name)s`` placeholders
    SQLAlchemy sends into ``$n`` ones, and caches that rewrite only for statements of at most
    50 parameters and 4 kB, so a larger one is parsed again, in Python, on every execution. A
    raw cursor sends the statement as it is
    (https://www.psycopg.org/psycopg3/docs/advanced/cursors.html#raw-query-cursors).
    Values are adapted by psycopg alone: no SQLAlchemy type runs on them.

    The statement runs in ``connection``'s transaction (begun here if none is), so the
    connection's ``commit()`` or ``rollback()`` ends it; in autocommit mode it stands alone. A
    failure is raised as SQLAlchemy's :class:`~sqlalchemy.exc.DBAPIError` (its parameters hidden),
    as from ``connection.execute``; a connection the server dropped is invalidated first.
    """
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection has no driver connection")
    if not driver.autocommit and not connection.in_transaction():
        connection.begin()  # what connection.execute would do: commit() then ends the statement
    try:
        with RawCursor(driver) as cursor:
            cursor.execute(statement, params)
            return cursor.rowcount
    except PsycopgError as exc:
        dropped = driver.closed or driver.broken
        if dropped:
            connection.invalidate()  # the next use of the connection takes a new one
        raise DBAPIError.instance(statement, None, exc, PsycopgError, hide_parameters=True,
                                  connection_invalidated=dropped) from exc


@contextmanager
def committing(s: Session) -> Iterator[Session]:
    """``s`` for the block: committed when it ends cleanly, rolled back otherwise, then closed."""
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()


class Database:
    """The engine plus a session factory; ``with db.session() as s:`` commits on success."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends cleanly and rolls back otherwise."""
        with committing(self._factory()) as s:
            yield s

    @contextmanager
    def job_session(self) -> Iterator[Session]:
        """:meth:`session` on one connection for the whole block.

        A plain session gives its connection back to the pool at each commit and takes one again
        for the next transaction, and on PostgreSQL the pool checks every connection it hands out
        with a round trip of its own (``pool_pre_ping``). A job that commits in steps (lease,
        decision, outcome) keeps one connection instead: one check per job, not one per
        transaction. The connection is held between transactions too, while no transaction is
        open (during a provider call, say), so only jobs use it, one per job thread.

        Unchecked, a connection the server dropped between two of the job's transactions (a
        restart during a provider call) fails the next one, and the job with it: the sweeper
        takes the work up again, as after any failed job.
        """
        with self.engine.connect() as connection:
            with committing(Session(bind=connection, expire_on_commit=False)) as s:
                yield s

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def shown_url(url: str) -> str:
    """The database for messages: a SQLite file's path, else the URL with its password hidden."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot read is shown as "the database"
        return "the database"


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL; None for another backend or an in-memory database."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def database_problem(exc: BaseException, url: str | None = None) -> str | None:
    """One line saying what to fix for a database error, or None when ``exc`` is not one.

    A server that cannot be reached, a file that cannot be opened and tables that do not exist
    are told apart; the driver's own words are kept to their first line.
    """
    if not isinstance(exc, DBAPIError):
        return None
    detail = " ".join(str(exc.orig).split("\n", 1)[0].split()) or type(exc.orig).__name__
    detail = detail.removeprefix("connection failed: ")
    where = shown_url(url) if url else "the database"
    lowered = detail.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return f"{where} has no textback tables yet ({detail}): {UPGRADE_HINT}"
    if "unable to open database file" in lowered:
        return (f"cannot open {where}: {detail}; check TEXTBACK_DATABASE_URL and that its "
                "folder exists and is writable")
    if exc.connection_invalidated or "connect" in lowered or "resolve host" in lowered:
        return (f"cannot reach {where}: {detail}; check TEXTBACK_DATABASE_URL and that the "
                "server is running")
    return f"database error on {shown_url(url)}: {detail}" if url else f"database error: {detail}"


def _probe_engine(url: str) -> Engine:
    """An engine for one look at the database: no pool, and on SQLite none of the connection
    settings :func:`make_engine` applies (switching a file to WAL is a write)."""
    connect_args: dict[str, Any] = {}
    if sqlite_path(url) is None and "connect_timeout" not in make_url(url).query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return create_engine(url, poolclass=NullPool, hide_parameters=True, connect_args=connect_args)


def schema_problem(url: str) -> str | None:
    """Why the database at ``url`` cannot be used as it is (one line), or None when it can.

    Creates nothing: a missing SQLite file is reported, not made.
    """
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return f"no database at {path}: {UPGRADE_HINT} to create it"
    engine = _probe_engine(url)
    migration_log = logging.getLogger("alembic.runtime.migration")
    level = migration_log.level
    migration_log.setLevel(logging.WARNING)  # a look is not a migration: no "Context impl" lines
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as exc:
        return database_problem(exc, url)
    finally:
        migration_log.setLevel(level)
        engine.dispose()
    scripts = ScriptDirectory.from_config(alembic_config(url))
    head = scripts.get_current_head()
    if current == head:
        return None
    if current is None:
        return f"{shown_url(url)} has no textback tables yet: {UPGRADE_HINT}"
    known = {script.revision for script in scripts.walk_revisions()}
    if current not in known:
        return (f"{shown_url(url)} is at revision {current}, which this version of textback "
                "does not know: run the textback version that made it, or a newer one")
    return f"the database is at revision {current}, not {head}: {UPGRADE_HINT}"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (``textback db upgrade``), creating a SQLite file and
    its folder when missing; a database that cannot be reached is a ConfigurationError."""
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the folder {path.parent}: {exc.strerror or exc}",
                field="TEXTBACK_DATABASE_URL") from None
    else:
        engine = _probe_engine(url)
        try:  # reach the server first, so a refused connection is one line, not a traceback
            with engine.connect():
                pass
        except DBAPIError as exc:
            raise ConfigurationError(database_problem(exc, url) or str(exc),
                                     field="TEXTBACK_DATABASE_URL") from None
        finally:
            engine.dispose()
    try:
        command.upgrade(alembic_config(url), revision)
    except CommandError as exc:  # an unknown revision name
        raise ConfigurationError(f"cannot upgrade to {revision!r}: {exc}", field="REVISION") from None
    except DBAPIError as exc:
        raise ConfigurationError(database_problem(exc, url) or str(exc),
                                 field="TEXTBACK_DATABASE_URL") from None
