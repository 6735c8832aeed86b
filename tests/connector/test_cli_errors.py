"""CLI mistakes: one line saying what to fix, a non-zero exit, and nothing written.

Each case snapshots the working folder (every path, and each file's size and modification
time) and the database's rows before the command, and compares after it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.cli import main
from tests.connector.test_accounts import TWILIO_HUBSPOT

KEY = "c" * 40


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file and folder under ``root``: a file's size and modification time (a folder's
    own time moves when SQLite opens and removes its ``-wal`` file on a read, so not that)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            if p.is_file() else None for p in sorted(root.rglob("*"))}


def rows(db: Path) -> dict[str, int]:
    """How many rows each table of a SQLite database holds."""
    with sqlite3.connect(db) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # noqa: S608
                for t in tables}


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a command that must fail: exit 2, nothing on stdout, one ``textback:`` line."""
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("textback: ") and "Traceback" not in captured.err
    assert captured.out == ""
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working folder with no TEXTBACK_* settings but a public URL."""
    for name in [n for n in __import__("os").environ if n.startswith("TEXTBACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TEXTBACK_PUBLIC_URL", "https://hooks.example.test")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def migrated(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite database at ``var/textback.db`` with the Acme account imported."""
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", KEY)
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", "sqlite:///var/textback.db")
    assert main(["db", "upgrade"]) == 0
    (workdir / "acme.json").write_text(json.dumps(TWILIO_HUBSPOT))
    assert main(["accounts", "import", "acme.json"]) == 0
    return workdir / "var" / "textback.db"


def test_import_of_a_missing_file_names_it_and_writes_nothing(migrated, workdir, capsys):
    before, before_rows = snapshot(workdir), rows(migrated)
    line = one_line_error(["accounts", "import", "no-such-file.json"], capsys)
    assert line == "textback: there is no account file at no-such-file.json: check the path"
    line = one_line_error(["accounts", "import", "var"], capsys)
    assert line == "textback: var is a folder: give the path of the account file"
    assert snapshot(workdir) == before and rows(migrated) == before_rows


def test_report_into_a_missing_folder_names_it_and_writes_nothing(migrated, workdir, capsys):
    before, before_rows = snapshot(workdir), rows(migrated)
    line = one_line_error(["report", "acme-plumbing", "--since", "2026-06-01",
                           "--csv", "reports/june.csv"], capsys)
    assert line == ("textback: cannot write reports/june.csv: the folder reports does not "
                    "exist")
    line = one_line_error(["report", "acme-plumbing", "--since", "2026-06-01", "--csv", "var"],
                          capsys)
    assert line == "textback: cannot write var: it is a folder; name a file in it"
    assert snapshot(workdir) == before and rows(migrated) == before_rows
    # The same report into a folder that exists is written.
    assert main(["report", "acme-plumbing", "--since", "2026-06-01", "--csv", "june.csv"]) == 0
    assert (workdir / "june.csv").read_text().startswith("account,missed_calls,")


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("argv", [
    ["db", "upgrade"],
    ["accounts", "list"],
    ["accounts", "import", "acme.json"],
    ["report", "acme-plumbing", "--since", "2026-06-01"],
    ["explain", "some-call"],
])
def test_postgresql_on_a_closed_port_is_one_line_and_writes_nothing(workdir, monkeypatch, capsys,
                                                                    argv):
    port = closed_port()
    monkeypatch.setenv("TEXTBACK_DATABASE_URL",
                       f"postgresql+psycopg://textback:pw-secret@127.0.0.1:{port}/textback")
    (workdir / "acme.json").write_text(json.dumps(TWILIO_HUBSPOT))
    before = snapshot(workdir)
    line = one_line_error(argv, capsys)
    assert line == (f"textback: cannot reach postgresql+psycopg://textback:***@127.0.0.1:{port}"
                    f'/textback: connection to server at "127.0.0.1", port {port} failed: '
                    "Connection refused; check TEXTBACK_DATABASE_URL and that the server is "
                    "running")
    assert snapshot(workdir) == before  # no var/secret_key, no queue files


@pytest.mark.parametrize("argv", [
    ["accounts", "list"],
    ["accounts", "import", "acme.json"],
    ["accounts", "export", "acme-plumbing"],
    ["accounts", "install-link", "acme-plumbing"],
    ["report", "acme-plumbing", "--since", "2026-06-01"],
    ["simulate-call", "demo", "--from", "+14155550123"],
    ["explain", "some-call"],
    ["serve", "--port", "1"],
    ["worker"],
])
def test_a_database_in_a_missing_folder_is_not_created(workdir, monkeypatch, capsys, argv):
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", "sqlite:///nonexistent/dir/x.db")
    (workdir / "acme.json").write_text(json.dumps(TWILIO_HUBSPOT))
    before = snapshot(workdir)
    line = one_line_error(argv, capsys)
    assert line == ("textback: no database at nonexistent/dir/x.db: run `textback db upgrade` "
                    "to create it")
    assert snapshot(workdir) == before  # no folder, no secret key, no queue files


def test_db_upgrade_creates_the_folder_database_and_key_and_then_commands_work(workdir,
                                                                              monkeypatch,
                                                                              capsys):
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", "sqlite:///nonexistent/dir/x.db")
    assert main(["db", "upgrade"]) == 0
    assert "made a secret key in nonexistent/dir/secret_key" in capsys.readouterr().out
    key_file = workdir / "nonexistent" / "dir" / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0
    key = key_file.read_text()
    assert main(["db", "upgrade"]) == 0  # a second upgrade keeps the key
    assert key_file.read_text() == key and "secret key" not in capsys.readouterr().out
    assert main(["accounts", "list"]) == 0


def test_empty_and_old_databases_say_to_run_db_upgrade(workdir, monkeypatch, capsys):
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", KEY)
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", "sqlite:///empty.db")
    sqlite3.connect(workdir / "empty.db").close()
    before = snapshot(workdir)
    line = one_line_error(["accounts", "list"], capsys)
    assert line == "textback: empty.db has no textback tables yet: run `textback db upgrade`"
    assert snapshot(workdir) == before and rows(workdir / "empty.db") == {}

    monkeypatch.setenv("TEXTBACK_DATABASE_URL", "sqlite:///old.db")
    assert main(["db", "upgrade", "0007"]) == 0
    before, before_rows = snapshot(workdir), rows(workdir / "old.db")
    line = one_line_error(["accounts", "list"], capsys)
    assert line.startswith("textback: the database is at revision 0007, not ")
    assert line.endswith(": run `textback db upgrade`")
    assert snapshot(workdir) == before and rows(workdir / "old.db") == before_rows


def test_an_unknown_revision_is_one_line(workdir, monkeypatch, capsys):
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", KEY)
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", "sqlite:///x.db")
    line = one_line_error(["db", "upgrade", "banana"], capsys)
    assert line.startswith("textback: cannot upgrade to 'banana': ")


def test_a_lost_key_file_is_named_not_replaced(migrated, workdir, monkeypatch, capsys):
    monkeypatch.delenv("TEXTBACK_SECRET_KEY")
    before = snapshot(workdir)
    line = one_line_error(["accounts", "list"], capsys)
    assert line == ("textback: TEXTBACK_SECRET_KEY is not set and there is no var/secret_key: "
                    "set TEXTBACK_SECRET_KEY to the key this database was set up with")
    assert snapshot(workdir) == before


def test_an_empty_postgresql_schema_says_to_run_db_upgrade(workdir, monkeypatch, capsys, pg_url):
    import psycopg

    monkeypatch.setenv("TEXTBACK_SECRET_KEY", KEY)
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", pg_url)
    before = snapshot(workdir)
    line = one_line_error(["accounts", "list"], capsys)
    assert line.startswith("textback: postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert line.endswith(" has no textback tables yet: run `textback db upgrade`")
    assert snapshot(workdir) == before
    schema = pg_url.rsplit("%3D", 1)[1]
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                            (schema,)).fetchone() == (0,)
    assert main(["db", "upgrade"]) == 0
    assert main(["accounts", "list"]) == 0
