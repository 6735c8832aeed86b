"""The ``textback`` commands, run in-process through ``connector.cli.main``."""

from __future__ import annotations

import json

import pytest

from connector.cli import main
from tests.connector.helpers import sandbox_account
from tests.connector.test_accounts import TWILIO_HUBSPOT


@pytest.fixture
def env(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", "c" * 40)
    monkeypatch.setenv("TEXTBACK_PUBLIC_URL", "https://hooks.example.test")
    assert main(["db", "upgrade"]) == 0
    return tmp_path


def test_accounts_import_list_export(env, capsys):
    path = env / "acme.json"
    path.write_text(json.dumps(TWILIO_HUBSPOT))
    assert main(["accounts", "import", str(path)]) == 0
    assert main(["accounts", "list"]) == 0
    out = capsys.readouterr().out
    assert "acme-plumbing\tAcme Plumbing\ttwilio\thubspot" in out
    assert main(["accounts", "export", "acme-plumbing"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["carrier"]["credentials"]["auth_token"] == "********"
    assert exported["carrier"]["numbers"] == ["+14155550100"]


def test_bad_account_file_exits_2_naming_the_field(env, capsys):
    doc = dict(TWILIO_HUBSPOT, timezone="Nowhere/Special")
    path = env / "bad.json"
    path.write_text(json.dumps(doc))
    assert main(["accounts", "import", str(path)]) == 2
    assert "timezone" in capsys.readouterr().err
    assert main(["accounts", "list"]) == 0
    assert capsys.readouterr().out.startswith("no accounts yet")


def test_bad_environment_exits_2_naming_the_variable(env, monkeypatch, capsys):
    monkeypatch.setenv("TEXTBACK_QUEUE_URL", "kafka://nope")
    assert main(["accounts", "list"]) == 2
    assert "TEXTBACK_QUEUE_URL" in capsys.readouterr().err


def test_simulate_call_on_the_demo_account_then_explain(env, capsys):
    assert main(["simulate-call", "demo", "--from", "+14155550123"]) == 0
    out = capsys.readouterr().out
    assert "decision: text the caller" in out and "text: sent" in out
    assert "CRM sandbox task" in out
    call_id = out.split()[1]
    assert main(["explain", call_id]) == 0
    assert "crm_synced" in capsys.readouterr().out
    assert main(["explain", "no-such-call"]) == 1


def test_simulated_answered_call_does_nothing(env, capsys):
    assert main(["simulate-call", "demo", "--from", "+14155550123", "--outcome", "answered"]) == 0
    assert "answered call: nothing to do" in capsys.readouterr().out


def test_accounts_import_takes_plain_http_to_this_machine_only_when_allowed(env, monkeypatch,
                                                                            capsys):
    from connector.settings import config

    monkeypatch.setattr(config, "_loaded_http_loopback", config._loaded_http_loopback)
    doc = json.loads(json.dumps(TWILIO_HUBSPOT))
    doc["crm"]["api_base_url"] = "http://127.0.0.1:8089"
    path = env / "stub.json"
    path.write_text(json.dumps(doc))
    assert main(["accounts", "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert "crm.api_base_url" in err and "TEXTBACK_ALLOW_HTTP_LOOPBACK=true" in err
    monkeypatch.setenv("TEXTBACK_ALLOW_HTTP_LOOPBACK", "true")
    assert main(["accounts", "import", str(path)]) == 0
    doc["crm"]["api_base_url"] = "http://169.254.169.254"
    path.write_text(json.dumps(doc))
    assert main(["accounts", "import", str(path)]) == 2
    assert "metadata" in capsys.readouterr().err


def import_hubspot_and_jobber_accounts(env, capsys) -> None:  # type: ignore[no-untyped-def]
    """``acme-plumbing`` on HubSpot with a private-app token, ``fixit`` on Jobber (an app
    install, not yet connected); what the imports printed is read and dropped."""
    path = env / "acme.json"
    path.write_text(json.dumps(TWILIO_HUBSPOT))
    assert main(["accounts", "import", str(path)]) == 0
    jobber = dict(sandbox_account("fixit", "w" * 24),
                  crm={"kind": "jobber", "credentials": {"client_id": "c", "client_secret": "s"}})
    path.write_text(json.dumps(jobber))
    assert main(["accounts", "import", str(path)]) == 0
    capsys.readouterr()


def test_accounts_list_says_when_there_are_none_then_shows_each_connection(env, capsys):
    assert main(["accounts", "list"]) == 0
    assert "no accounts yet" in capsys.readouterr().out
    import_hubspot_and_jobber_accounts(env, capsys)
    assert main(["accounts", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["acme-plumbing\tAcme Plumbing\ttwilio\thubspot: private token",
                     "fixit\tAcme Plumbing\tsandbox\tjobber: not connected"]


def test_install_link_is_for_accounts_that_connect_by_an_app_install(env, monkeypatch, capsys):
    import_hubspot_and_jobber_accounts(env, capsys)
    assert main(["accounts", "install-link", "fixit"]) == 0
    assert capsys.readouterr().out.startswith(
        "https://hooks.example.test/oauth/jobber/install?token=")
    assert main(["accounts", "install-link", "acme-plumbing"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "TEXTBACK_HUBSPOT_CLIENT_ID" in err
    # With the deployment's marketplace app, the token account can move to it.
    monkeypatch.setenv("TEXTBACK_HUBSPOT_CLIENT_ID", "app-client-1")
    monkeypatch.setenv("TEXTBACK_HUBSPOT_CLIENT_SECRET", "app-secret-0123456789")
    assert main(["accounts", "install-link", "acme-plumbing"]) == 0
    assert "/oauth/hubspot/install?token=" in capsys.readouterr().out
