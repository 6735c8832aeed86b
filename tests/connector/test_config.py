"""Settings: defaults, and every bad setting named in one error."""

from __future__ import annotations

import pytest

from connector.kernel.errors import ConfigurationError
from connector.settings.config import load_settings


def test_defaults_use_sqlite_and_a_queue_file_next_to_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.database_url == "sqlite:///var/textback.db"
    assert settings.queue_url == "sqlite:///var/textback-queue.db"
    assert settings.public_url == "http://127.0.0.1:8080"
    assert not settings.queue_is_redis
    # With no key configured, one is made once and kept beside the database.
    assert len(settings.secret_key) >= 32
    assert load_settings({}).secret_key == settings.secret_key
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o077 == 0


def test_every_bad_setting_is_listed_by_name():
    with pytest.raises(ConfigurationError) as info:
        load_settings(
            {
                "TEXTBACK_DATABASE_URL": "mysql://x",
                "TEXTBACK_QUEUE_URL": "amqp://x",
                "TEXTBACK_PUBLIC_URL": "not a url",
                "TEXTBACK_SECRET_KEY": "short",
                "TEXTBACK_TRUST_PROXY_HOPS": "-1",
                "TEXTBACK_PUBLIK_URL": "typo",
            }
        )
    message = str(info.value)
    for name in (
        "TEXTBACK_DATABASE_URL", "TEXTBACK_QUEUE_URL", "TEXTBACK_PUBLIC_URL",
        "TEXTBACK_SECRET_KEY", "TEXTBACK_TRUST_PROXY_HOPS", "TEXTBACK_PUBLIK_URL",
    ):
        assert name in message, name


def test_redis_and_postgres_urls_are_accepted():
    settings = load_settings(
        {
            "TEXTBACK_DATABASE_URL": "postgresql+psycopg://u:pw@db/textback",
            "TEXTBACK_QUEUE_URL": "redis://127.0.0.1:6379/0",
            "TEXTBACK_PUBLIC_URL": "https://hooks.example.com/",
            "TEXTBACK_SECRET_KEY": "k" * 40,
        }
    )
    assert settings.queue_is_redis
    assert settings.public_url == "https://hooks.example.com"
    assert "pw" not in repr(settings) and "k" * 40 not in repr(settings)


def test_log_level_is_taken_in_any_case():
    assert load_settings({"TEXTBACK_SECRET_KEY": "k" * 40,
                          "TEXTBACK_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    assert load_settings({"TEXTBACK_SECRET_KEY": "k" * 40,
                          "TEXTBACK_LOG_LEVEL": "Warning"}).log_level == "WARNING"
    with pytest.raises(ConfigurationError, match="TEXTBACK_LOG_LEVEL: must be one of DEBUG"):
        load_settings({"TEXTBACK_SECRET_KEY": "k" * 40, "TEXTBACK_LOG_LEVEL": "chatty"})


def test_http_to_loopback_apis_is_off_unless_set(monkeypatch):
    from connector.settings import config

    monkeypatch.setattr(config, "_loaded_http_loopback", config._loaded_http_loopback)
    base = {"TEXTBACK_SECRET_KEY": "k" * 40}
    assert load_settings(base).allow_http_loopback is False
    assert config.http_loopback_allowed() is False
    assert load_settings({**base, "TEXTBACK_ALLOW_HTTP_LOOPBACK": "TRUE"}).allow_http_loopback
    assert config.http_loopback_allowed() is True
    assert config.http_loopback_allowed({"TEXTBACK_ALLOW_HTTP_LOOPBACK": "false"}) is False
    with pytest.raises(ConfigurationError, match="TEXTBACK_ALLOW_HTTP_LOOPBACK: must be true or"):
        load_settings({**base, "TEXTBACK_ALLOW_HTTP_LOOPBACK": "maybe"})
    with pytest.raises(ConfigurationError, match="TEXTBACK_ALLOW_HTTP_LOOPBACK"):
        config.http_loopback_allowed({"TEXTBACK_ALLOW_HTTP_LOOPBACK": "maybe"})
