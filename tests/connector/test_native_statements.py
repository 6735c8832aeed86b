"""``execute_native``: a statement with PostgreSQL's own placeholders, in the connection's
transaction, failing as SQLAlchemy's errors do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from connector.storage.db import execute_native
from tests.connector.helpers import drop_on_the_server

INSERT = "INSERT INTO notes (id, body) VALUES ($1, $2), ($3, $4) ON CONFLICT (id) DO NOTHING"


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url, hide_parameters=True)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL)")
    yield engine
    engine.dispose()


def stored(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT id, body FROM notes ORDER BY id").all()
    return [(int(i), str(b)) for i, b in rows]


def test_a_statement_in_autocommit_mode_stands_alone(engine: Engine) -> None:
    with engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        assert execute_native(autocommit, INSERT, [1, "one", 2, "two"]) == 2
        assert execute_native(autocommit, INSERT, [2, "again", 3, "three"]) == 1  # 2 is there
    assert stored(engine) == [(1, "one"), (2, "two"), (3, "three")]


def test_a_statement_runs_in_the_connections_transaction(engine: Engine) -> None:
    with engine.connect() as connection:
        execute_native(connection, INSERT, [1, "one", 2, "two"])
        assert stored(engine) == []  # not committed yet: another connection sees nothing
        connection.rollback()
        execute_native(connection, INSERT, [3, "three", 4, "four"])
        connection.commit()
    assert stored(engine) == [(3, "three"), (4, "four")]


def test_a_failure_is_sqlalchemys_error_with_its_parameters_hidden(engine: Engine) -> None:
    secret = "+14155550123"
    with engine.connect() as connection:
        with pytest.raises(IntegrityError) as raised:  # NOT NULL: psycopg's NotNullViolation
            execute_native(connection, INSERT, [1, secret, 2, None])
        assert secret not in str(raised.value)
        assert not raised.value.connection_invalidated
        connection.rollback()
    assert stored(engine) == []


def test_a_connection_the_server_dropped_is_invalidated(engine: Engine) -> None:
    with engine.connect() as connection:
        drop_on_the_server(engine, connection)
        with pytest.raises(DBAPIError) as raised:
            execute_native(connection, INSERT, [1, "one", 2, "two"])
        assert raised.value.connection_invalidated and connection.invalidated
