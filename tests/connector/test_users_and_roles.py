"""Users, roles and accounts from the command line: ``users add|list|remove`` and
``accounts delete``, run in-process through ``connector.cli.main``; and the migration that gave
existing users a role."""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa

from connector.cli import main
from connector.storage.db import Database, upgrade
from tests.connector import test_cli
from tests.connector.helpers import missed, post, sandbox_account

cli_env = test_cli.env  # the command-line environment of test_cli, as a fixture here

PASSWORD = "correct horse battery"


@pytest.fixture
def env(cli_env):  # type: ignore[no-untyped-def]
    """The command-line environment of ``test_cli``, with two sandbox accounts."""
    for account in ("acme", "bolt"):
        path = cli_env / f"{account}.json"
        path.write_text(json.dumps(sandbox_account(account, "s3cret-webhook")))
        assert main(["accounts", "import", str(path)]) == 0
    return cli_env


def _db(env) -> Database:  # type: ignore[no-untyped-def]
    return Database(f"sqlite:///{env / 'cli.db'}")


def _stdin(monkeypatch, text: str, tty: bool = False) -> None:  # type: ignore[no-untyped-def]
    stream = io.StringIO(text)
    stream.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdin", stream)


def test_add_an_admin_of_two_accounts_and_a_rep_then_list_and_remove(env, monkeypatch, capsys):
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["users", "add", "Ana@Acme.test", "--name", "Ana", "--role", "admin",
                 "--account", "acme", "--account", "bolt", "--password-stdin"]) == 0
    assert "ana@acme.test can sign in as admin of acme, bolt" in capsys.readouterr().out
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["users", "add", "rey@acme.test", "--account", "acme", "--password-stdin"]) == 0
    capsys.readouterr()
    assert main(["users", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ana@acme.test\tAna\tadmin\tacme, bolt",
        "rey@acme.test\trey@acme.test\trep\tacme",
    ]
    assert main(["users", "remove", "REY@acme.test"]) == 0
    assert capsys.readouterr().out == "removed user rey@acme.test\n"
    assert main(["users", "list"]) == 0
    assert "rey@" not in capsys.readouterr().out


def test_users_add_without_a_terminal_or_password_stdin_is_one_line(env, monkeypatch, capsys):
    _stdin(monkeypatch, "", tty=False)
    assert main(["users", "add", "ana@acme.test", "--account", "acme"]) == 2
    err = capsys.readouterr().err
    assert err == "textback: no terminal to ask for the password: pipe it in with " \
                  "--password-stdin\n"
    assert main(["users", "list"]) == 0
    assert "ana@" not in capsys.readouterr().out


def test_users_add_refuses_what_is_not_an_email(env, monkeypatch, capsys):
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["users", "add", "notanemail", "--password-stdin"]) == 2
    err = capsys.readouterr().err
    assert "'notanemail' is not an email address" in err and err.count("\n") == 1
    with _db(env).session() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM users")) == 0


def test_users_add_refuses_an_unknown_account_and_an_empty_password(env, monkeypatch, capsys):
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["users", "add", "ana@acme.test", "--account", "nope", "--password-stdin"]) == 2
    assert "no account 'nope'" in capsys.readouterr().err
    _stdin(monkeypatch, "\n")
    assert main(["users", "add", "ana@acme.test", "--password-stdin"]) == 2
    assert "no password on stdin" in capsys.readouterr().err
    with _db(env).session() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM users")) == 0


def test_users_remove_an_unknown_user_is_one_line(env, capsys):
    assert main(["users", "remove", "ghost@acme.test"]) == 2
    assert capsys.readouterr().err == \
        "textback: no user 'ghost@acme.test' (see `textback users list`)\n"


def test_accounts_delete_asks_then_removes_the_accounts_data(env, monkeypatch, capsys):
    from connector.runtime import Runtime
    from connector.settings.config import load_settings
    from connector.web import create_app

    runtime = Runtime(load_settings(), immediate_queue=True)
    post(create_app(runtime).test_client(), "acme", "voice", missed(), "s3cret-webhook")
    runtime.close()
    _stdin(monkeypatch, PASSWORD + "\n")
    assert main(["users", "add", "rey@acme.test", "--account", "acme", "--password-stdin"]) == 0

    _stdin(monkeypatch, "bolt\n", tty=True)  # the wrong id: nothing happens
    assert main(["accounts", "delete", "acme"]) == 1
    assert "nothing deleted" in capsys.readouterr().out
    _stdin(monkeypatch, "", tty=False)
    assert main(["accounts", "delete", "acme"]) == 2
    assert "add --yes" in capsys.readouterr().err
    with _db(env).session() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM calls")) == 1

    _stdin(monkeypatch, "acme\n", tty=True)
    assert main(["accounts", "delete", "acme"]) == 0
    assert "deleted account acme (Acme Plumbing): 1 calls, 1 texts, 1 user accesses" in \
        capsys.readouterr().out
    with _db(env).session() as s:
        for table in ("calls", "messages", "account_members", "sandbox_records", "call_events"):
            assert s.scalar(sa.text(f"SELECT count(*) FROM {table}")) == 0, table  # noqa: S608
        assert s.scalar(sa.text("SELECT count(*) FROM accounts")) == 1
    assert main(["accounts", "delete", "bolt", "--yes"]) == 0
    assert main(["accounts", "delete", "bolt", "--yes"]) == 2
    assert "no account 'bolt'" in capsys.readouterr().err


def test_migration_gives_existing_users_what_they_could_do(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0009")
    db = Database(url)
    with db.session() as s:
        s.execute(sa.text(
            "INSERT INTO accounts (id, name, timezone, carrier_kind, crm_kind, settings, "
            "carrier_credentials, crm_credentials, crm_needs_reauth, created_at, updated_at) "
            "VALUES ('acme', 'Acme', 'UTC', 'sandbox', 'sandbox', '{}', '', '', 0, "
            "'2026-01-01', '2026-01-01')"))
        for email, account in (("rep@acme.test", "acme"), ("ops@acme.test", None)):
            s.execute(sa.text(
                "INSERT INTO users (email, name, password_hash, account_id, created_at, "
                "session_epoch) VALUES (:email, 'x', 'h', :account, '2026-01-01', 0)"),
                {"email": email, "account": account})
    db.dispose()
    upgrade(url)
    db = Database(url)
    with db.session() as s:
        rows = s.execute(sa.text(
            "SELECT email, role, all_accounts FROM users ORDER BY email")).all()
        members = s.execute(sa.text("SELECT user_id, account_id FROM account_members")).all()
    db.dispose()
    assert [(e, r, bool(a)) for e, r, a in rows] == [("ops@acme.test", "admin", True),
                                                      ("rep@acme.test", "rep", False)]
    assert [m[1] for m in members] == ["acme"]
