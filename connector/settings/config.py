"""Deployment settings, read from the ``TEXTBACK_*`` environment once and validated together.

This is the only module that reads the environment. Every bad setting is reported in one
:class:`~connector.kernel.errors.ConfigurationError` that names each variable to fix.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from connector.kernel.errors import ConfigurationError
from connector.settings.api_urls import api_url_problem

ENV_PREFIX = "TEXTBACK_"
DEFAULT_DATABASE_URL = "sqlite:///var/textback.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: What a HubSpot app's client id and secret look like (UUIDs, as HubSpot issues them).
_APP_CREDENTIAL = re.compile(r"[A-Za-z0-9-]+")

#: ``TEXTBACK_ALLOW_HTTP_LOOPBACK`` of the settings this process loaded last; None before any.
_loaded_http_loopback: bool | None = None


@dataclass(frozen=True)
class Settings:
    """The validated deployment settings."""

    database_url: str
    queue_url: str
    public_url: str
    secret_key: str
    trust_proxy_hops: int
    log_level: str
    demo: bool
    smtp_url: str | None = None
    #: ``TEXTBACK_DEMO=keep``: the demo account stays beside real accounts (behind sign-in).
    keep_demo: bool = False
    allow_http_loopback: bool = False
    #: Where ``serve`` and ``worker`` processes write their metrics for ``/metrics`` to sum.
    metrics_dir: Path = Path("var/metrics")
    #: The file the key is kept in when ``TEXTBACK_SECRET_KEY`` is unset (None when it is set).
    #: Loaded with ``create_secret_key=False`` before the file exists, ``secret_key`` is empty
    #: until :func:`save_secret_key` writes one (``textback db upgrade``).
    secret_key_file: Path | None = None
    #: The HubSpot marketplace app this deployment installs as (both or neither).
    hubspot_client_id: str | None = None
    hubspot_client_secret: str | None = None
    #: Where HubSpot's API (and its OAuth pages) are for new installs; None for HubSpot itself.
    hubspot_api_base_url: str | None = None

    @property
    def hubspot_app(self) -> bool:
        """True when the HubSpot marketplace app is configured (client id and secret)."""
        return bool(self.hubspot_client_id and self.hubspot_client_secret)

    @property
    def queue_is_redis(self) -> bool:
        """True when jobs go through Redis (consumed by ``textback worker`` processes)."""
        return self.queue_url.startswith(("redis://", "rediss://"))

    def __repr__(self) -> str:
        return (
            f"Settings(database_url={_redact_url(self.database_url)!r}, "
            f"queue_url={_redact_url(self.queue_url)!r}, public_url={self.public_url!r}, "
            f"smtp_url={_redact_url(self.smtp_url) if self.smtp_url else None!r}, "
            f"hubspot_client_id={self.hubspot_client_id!r})"
        )


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


class _UpperString(fields.String):
    """A word taken in any case (``debug``, ``Debug``) and kept in upper case."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip().upper()


class _DemoSwitch(fields.Field[str]):
    """``TEXTBACK_DEMO``: ``true`` (load the demo account while no account exists; it goes once
    a real one does), ``keep`` (keep it beside real accounts too) or ``false``; any case."""

    WORDS: ClassVar[dict[str, str]] = {"true": "true", "1": "true", "yes": "true", "on": "true",
                                       "keep": "keep", "false": "false", "0": "false",
                                       "no": "false", "off": "false"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        word = self.WORDS.get(str(value).strip().lower())
        if word is None:
            raise ValidationError("must be true, false or keep (keep: the demo stays beside "
                                  "real accounts)")
        return word


class _EnvSchema(Schema):
    DATABASE_URL = fields.String(load_default=DEFAULT_DATABASE_URL)
    QUEUE_URL = fields.String(load_default=None, allow_none=True)
    PUBLIC_URL = fields.String(load_default=DEFAULT_PUBLIC_URL)
    SECRET_KEY = fields.String(load_default=None, allow_none=True)
    TRUST_PROXY_HOPS = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10))
    LOG_LEVEL = _UpperString(
        load_default="INFO",
        validate=validate.OneOf(
            LOG_LEVELS, error="must be one of DEBUG, INFO, WARNING or ERROR (any case)"
        ),
    )
    DEMO = _DemoSwitch(load_default="true")
    SMTP_URL = fields.String(load_default=None, allow_none=True)
    ALLOW_HTTP_LOOPBACK = fields.Boolean(
        load_default=False, error_messages={"invalid": "must be true or false"}
    )
    METRICS_DIR = fields.String(load_default=None, allow_none=True)
    HUBSPOT_CLIENT_ID = fields.String(load_default=None, allow_none=True)
    HUBSPOT_CLIENT_SECRET = fields.String(load_default=None, allow_none=True)
    HUBSPOT_API_BASE_URL = fields.String(load_default=None, allow_none=True)

    @validates("HUBSPOT_CLIENT_ID")
    def _check_hubspot_id(self, value: str | None, **_: object) -> None:
        if value is not None and not _APP_CREDENTIAL.fullmatch(value):
            raise ValidationError("must be the app's client id from HubSpot (letters, digits, -)")

    @validates("HUBSPOT_CLIENT_SECRET")
    def _check_hubspot_secret(self, value: str | None, **_: object) -> None:
        if value is not None and (not _APP_CREDENTIAL.fullmatch(value) or len(value) < 16):
            raise ValidationError("must be the app's client secret from HubSpot "
                                  "(16 or more letters, digits, -)")

    @validates_schema(skip_on_field_errors=False)
    def _check_hubspot_base(self, data: dict[str, Any], **_: object) -> None:
        value = data.get("HUBSPOT_API_BASE_URL")
        if value is None:
            return
        # Checked as an account's api_base_url is: app credentials and codes are sent there.
        allow = data.get("ALLOW_HTTP_LOOPBACK")
        problem = api_url_problem(value, allow_http_loopback=allow is True)
        if problem:
            raise ValidationError(problem, field_name="HUBSPOT_API_BASE_URL")

    @validates_schema(skip_on_field_errors=False)
    def _hubspot_app_pair(self, data: dict[str, Any], **_: object) -> None:
        given = [k for k in ("HUBSPOT_CLIENT_ID", "HUBSPOT_CLIENT_SECRET") if data.get(k)]
        if len(given) == 1:
            missing = ({"HUBSPOT_CLIENT_ID", "HUBSPOT_CLIENT_SECRET"} - set(given)).pop()
            raise ValidationError(f"set together with {ENV_PREFIX}{given[0]} (the HubSpot app's "
                                  "client id and secret go together)", field_name=missing)

    @validates("SMTP_URL")
    def _check_smtp(self, value: str | None, **_: object) -> None:
        if value is None:
            return
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValidationError("must look like smtp://user:password@host:587?from=alerts@x.com")
        if "from=" not in parts.query:
            raise ValidationError("needs a from= address, e.g. ?from=alerts@example.com")

    @validates("DATABASE_URL")
    def _check_db(self, value: str, **_: object) -> None:
        if not value.startswith(("sqlite:///", "postgresql+psycopg://")):
            raise ValidationError("must start with sqlite:/// or postgresql+psycopg://")

    @validates("QUEUE_URL")
    def _check_queue(self, value: str | None, **_: object) -> None:
        if value is not None and not value.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValidationError("must start with sqlite:///, redis:// or rediss://")

    @validates("PUBLIC_URL")
    def _check_public(self, value: str, **_: object) -> None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError("must be an absolute http(s) URL, e.g. https://textback.example.com")
        if parts.query or parts.fragment:
            raise ValidationError("must not carry a query string or fragment")

    @validates("SECRET_KEY")
    def _check_secret(self, value: str | None, **_: object) -> None:
        if value is not None and len(value) < 32:
            raise ValidationError("must be at least 32 characters")

    @validates("METRICS_DIR")
    def _check_metrics_dir(self, value: str | None, **_: object) -> None:
        if value is None:
            return
        path = Path(value)
        if "\0" in value or not value.strip():
            raise ValidationError("must be a directory path, e.g. /var/lib/textback/metrics")
        if path.exists() and not path.is_dir():
            raise ValidationError("names a file, not a directory")
        parent = next((p for p in path.absolute().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise ValidationError(f"cannot be created: {parent} is a file")


def default_queue_url(database_url: str) -> str:
    """A SQLite queue file next to the SQLite database (or under ``var/`` for PostgreSQL)."""
    if database_url.startswith("sqlite:///"):
        db_path = Path(database_url.removeprefix("sqlite:///"))
        return f"sqlite:///{db_path.parent / 'textback-queue.db'}"
    return "sqlite:///var/textback-queue.db"


def default_metrics_dir(database_url: str) -> Path:
    """``metrics/`` next to the SQLite database (``var/metrics`` for PostgreSQL)."""
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///")).parent / "metrics"
    return Path("var/metrics")


def secret_key_path(database_url: str) -> Path:
    """Where the per-installation key is kept when ``TEXTBACK_SECRET_KEY`` is unset: beside a
    SQLite database, or ``var/secret_key`` for PostgreSQL.

    Lets ``make run`` work on a fresh machine; production sets ``TEXTBACK_SECRET_KEY``.
    """
    base = (
        Path(database_url.removeprefix("sqlite:///")).parent
        if database_url.startswith("sqlite:///")
        else Path("var")
    )
    return base / "secret_key"


def save_secret_key(path: Path) -> str:
    """The key kept in ``path``, made (readable by this user only) when there is none yet."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_settings(
    environ: Mapping[str, str] | None = None, *, create_secret_key: bool = True
) -> Settings:
    """Read and validate the ``TEXTBACK_*`` variables; raise ConfigurationError listing every bad one.

    With ``TEXTBACK_SECRET_KEY`` unset the key comes from :func:`secret_key_path`, made there when
    missing; with ``create_secret_key=False`` nothing is written and a missing file leaves
    ``secret_key`` empty (the CLI makes the key only in ``textback db upgrade``).
    """
    env = os.environ if environ is None else environ
    raw = {
        key.removeprefix(ENV_PREFIX): value
        for key, value in env.items()
        if key.startswith(ENV_PREFIX) and value != ""
    }
    known = set(_EnvSchema().fields)
    unknown = sorted(ENV_PREFIX + k for k in raw if k not in known)
    try:
        data = _EnvSchema().load({k: v for k, v in raw.items() if k in known})
    except ValidationError as exc:
        problems = [
            f"{ENV_PREFIX}{name}: {' '.join(map(str, msgs))}"
            for name, msgs in sorted(exc.normalized_messages().items())
        ]
        problems += [f"{name}: unknown setting" for name in unknown]
        raise ConfigurationError(
            "bad settings:\n  " + "\n  ".join(problems),
            field=", ".join(p.split(":")[0] for p in problems),
        ) from None
    if unknown:
        raise ConfigurationError(
            "bad settings:\n  " + "\n  ".join(f"{n}: unknown setting" for n in unknown),
            field=", ".join(unknown),
        )
    hubspot_base = data["HUBSPOT_API_BASE_URL"]
    database_url = data["DATABASE_URL"]
    key_file = None if data["SECRET_KEY"] else secret_key_path(database_url)
    if key_file is None:
        secret_key = data["SECRET_KEY"]
    elif create_secret_key or key_file.exists():
        secret_key = save_secret_key(key_file)
    else:
        secret_key = ""
    settings = Settings(
        database_url=database_url,
        queue_url=data["QUEUE_URL"] or default_queue_url(database_url),
        public_url=data["PUBLIC_URL"].rstrip("/"),
        secret_key=secret_key,
        trust_proxy_hops=data["TRUST_PROXY_HOPS"],
        log_level=data["LOG_LEVEL"],
        demo=data["DEMO"] != "false",
        keep_demo=data["DEMO"] == "keep",
        smtp_url=data["SMTP_URL"],
        allow_http_loopback=data["ALLOW_HTTP_LOOPBACK"],
        metrics_dir=Path(data["METRICS_DIR"]) if data["METRICS_DIR"]
        else default_metrics_dir(database_url),
        secret_key_file=key_file,
        hubspot_client_id=data["HUBSPOT_CLIENT_ID"],
        hubspot_client_secret=data["HUBSPOT_CLIENT_SECRET"],
        hubspot_api_base_url=hubspot_base.rstrip("/") if hubspot_base else None,
    )
    global _loaded_http_loopback
    _loaded_http_loopback = settings.allow_http_loopback
    return settings


def http_loopback_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether account files may name a plain-http API URL on a loopback host.

    That is ``TEXTBACK_ALLOW_HTTP_LOOPBACK``: from ``environ`` when given, else from the settings
    this process loaded (:func:`load_settings`, which every command and the test settings go
    through), else from the process environment. Account validation asks here because an account
    can be imported without the settings at hand.
    """
    if environ is None and _loaded_http_loopback is not None:
        return _loaded_http_loopback
    env = os.environ if environ is None else environ
    raw = env.get(ENV_PREFIX + "ALLOW_HTTP_LOOPBACK", "")
    if raw == "":
        return False
    try:
        return bool(_EnvSchema().fields["ALLOW_HTTP_LOOPBACK"].deserialize(raw))
    except ValidationError as exc:
        name = ENV_PREFIX + "ALLOW_HTTP_LOOPBACK"
        raise ConfigurationError(
            f"bad settings:\n  {name}: {' '.join(map(str, exc.messages))}", field=name
        ) from None
