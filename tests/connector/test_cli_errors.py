"""CLI mistakes: one line saying what to fix, a non-zero exit, and nothing written.

Each case snapshots the working folder (every path, and each file's size and modification
time) and the database's rows before the command, and compares after it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from connector.cli import main
from tests.conftest import SUITE_INSTANT
from tests.connector.test_accounts import TWILIO_HUBSPOT

KEY = "c" * 40


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file and folder under ``root``: a file's size and modification time (a folder's
    own time moves when SQLite opens and removes its ``-wal`` file on a read, so not that)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            if p.is_file() else None for p in sorted(root.rglob("*"))}


def rows(db: Path) -> dict[str, int]:
    """How many rows each table of a SQLite database holds."""
    with closing(sqlite3.connect(db)) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # noqa: S608
                for t in tables}


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a command that must fail: exit 2, nothing on stdout, one ``textback`` line.

    A mistake argparse catches exits (SystemExit) as the console script would.
    """
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("textback") and "Traceback" not in captured.err
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


@pytest.fixture
def demo_db(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite database holding the demo account and one simulated call."""
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", KEY)
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", "sqlite:///var/textback.db")
    assert main(["db", "upgrade"]) == 0
    assert main(["simulate-call", "demo", "--from", "+14155550123"]) == 0
    return workdir / "var" / "textback.db"


def test_simulate_call_refuses_an_unknown_outcome_and_lists_them(demo_db, workdir, capsys):
    before_rows = rows(demo_db)
    before = snapshot(workdir)
    line = one_line_error(["simulate-call", "demo", "--from", "+14155550124",
                           "--outcome", "banana"], capsys)
    assert line == ("textback simulate-call: argument --outcome: invalid choice: 'banana' "
                    "(choose from 'no-answer', 'busy', 'failed', 'canceled', 'rejected', "
                    "'voicemail', 'after-hours', 'answered') (see `textback simulate-call --help`)")
    assert snapshot(workdir) == before and rows(demo_db) == before_rows
    with pytest.raises(SystemExit):
        main(["simulate-call", "--help"])
    assert ("how the call ended: no-answer, busy, failed, canceled, rejected, voicemail, "
            "after-hours, answered" in " ".join(capsys.readouterr().out.split()))


def test_the_outcomes_offered_are_the_sandbox_carriers(demo_db, capsys):
    from carrier_adapters.sandbox import SandboxCarrier
    from connector.cli import build_parser
    from connector.settings.config import load_settings
    from connector.simulate import simulate_call

    action = next(a for a in build_parser()._subparsers._group_actions[0].choices[  # type: ignore[union-attr]
        "simulate-call"]._actions if a.dest == "outcome")
    assert list(action.choices) == list(SandboxCarrier.call_outcomes)
    # Called directly (not through the CLI), an unknown outcome is refused before any write.
    from connector.kernel.errors import ConfigurationError
    from connector.runtime import Runtime

    runtime = Runtime(load_settings())
    before = rows(demo_db)
    with pytest.raises(ConfigurationError, match="'banana' is not one of no-answer, busy"):
        simulate_call(runtime, None, "demo", "+14155550124", "banana")  # type: ignore[arg-type]
    runtime.close()
    assert rows(demo_db) == before


def test_a_command_line_mistake_is_one_line(workdir, capsys):
    line = one_line_error(["report"], capsys)
    assert line == ("textback report: the following arguments are required: ACCOUNT, --since "
                    "(see `textback report --help`)")
    line = one_line_error(["reprot"], capsys)
    assert line.startswith("textback: argument COMMAND: invalid choice: 'reprot'")
    assert list(workdir.iterdir()) == []


def test_help_stands_alone(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "textback db upgrade" in out and "TEXTBACK_DATABASE_URL" in out and "README" in out
    assert "DESIGN" not in out and "import" in out


def test_the_demo_is_named_once_in_reports_and_not_in_its_texts(frozen_clock, demo_db, capsys):
    frozen_clock.move_to(SUITE_INSTANT)  # the times asserted below are this instant's
    capsys.readouterr()
    assert main(["report", "demo", "--since", "2026-06-01"]) == 0
    title = capsys.readouterr().out.splitlines()[0]
    assert title.startswith("Acme Plumbing (demo): 2026-06-01 to 2026-06-15 (America/Chicago)")
    with closing(sqlite3.connect(demo_db)) as conn:
        bodies = [b for (b,) in conn.execute("SELECT body FROM messages")]
    assert bodies and all("Acme Plumbing" in b and "(demo)" not in b for b in bodies)


def test_in_a_process_of_its_own_the_error_is_the_only_line(workdir, monkeypatch):
    """As a user runs it: logging set up for real, so a stray log line would show."""
    import subprocess
    import sys

    monkeypatch.setenv("TEXTBACK_SECRET_KEY", KEY)
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", "sqlite:///var/textback.db")
    assert main(["db", "upgrade"]) == 0
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-m", "connector.cli"]
    done = subprocess.run([*command, "explain", "no-such-call"],  # noqa: S603 - fixed arguments
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "textback: no call with id or carrier id 'no-such-call'\n"
    env["TEXTBACK_DATABASE_URL"] = "sqlite:///nonexistent/dir/x.db"
    done = subprocess.run([*command, "accounts", "list"],  # noqa: S603 - fixed arguments
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("textback: no database at nonexistent/dir/x.db: run `textback db "
                           "upgrade` to create it\n")
    assert not (workdir / "nonexistent").exists()


def test_simulate_call_refuses_a_caller_that_is_not_a_number(demo_db, workdir, capsys):
    before, before_rows = snapshot(workdir), rows(demo_db)
    line = one_line_error(["simulate-call", "demo", "--from", "banana"], capsys)
    assert line == ("textback simulate-call: argument --from: 'banana' is not a phone number: "
                    "use E.164 such as +14155550123, or anonymous for a withheld number (see "
                    "`textback simulate-call --help`)")
    assert snapshot(workdir) == before and rows(demo_db) == before_rows


def test_an_account_file_saved_with_a_byte_order_mark_is_read(migrated, workdir, capsys):
    (workdir / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(
        dict(TWILIO_HUBSPOT, name="Acme Plumbing & Heating")).encode())
    assert main(["accounts", "import", "bom.json"]) == 0
    assert "imported account acme-plumbing (Acme Plumbing & Heating)" in capsys.readouterr().out


def test_a_database_error_during_a_command_is_one_line(migrated, workdir, monkeypatch, capsys):
    """The server going away mid-command: what the driver says, in one line, no traceback."""
    from sqlalchemy.exc import OperationalError

    import connector.storage.accounts as accounts

    def failing(message: str):  # type: ignore[no-untyped-def]
        def fail(*_: object) -> None:
            raise OperationalError("SELECT", {}, Exception(message))
        return fail

    monkeypatch.setattr(accounts, "list_accounts", failing(
        "server closed the connection unexpectedly\n\tThis probably means the server "
        "terminated abnormally"))
    line = one_line_error(["accounts", "list"], capsys)
    assert line == ("textback: cannot reach the database: server closed the connection "
                    "unexpectedly; check TEXTBACK_DATABASE_URL and that the server is running")
    monkeypatch.setattr(accounts, "list_accounts", failing("disk I/O error"))
    line = one_line_error(["accounts", "list"], capsys)
    assert line == "textback: database error: disk I/O error"
