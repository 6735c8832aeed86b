"""The ``textback`` command line.

Each command imports the layers it uses when it runs, so ``textback --help`` and a mistyped
command answer at once instead of loading the web app, the queue and every adapter first. The
CLI is the top layer: nothing imports it, so these imports cannot form a cycle.

A mistake on the command line, in a setting or in a file is one line on stderr saying what to
fix, with exit status 2; only ``textback db upgrade`` creates the database and its files.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from connector.kernel.errors import ConfigurationError
from connector.settings.config import Settings, load_settings

log = logging.getLogger("textback")

#: The largest request body the server reads: Flask's ``MAX_CONTENT_LENGTH`` in connector.web.
MAX_REQUEST_BODY_BYTES = 1024 * 1024
#: The largest request line plus headers; providers' webhooks send a few KiB.
MAX_REQUEST_HEADER_BYTES = 64 * 1024
#: Defaults of the ``serve`` options an operator may tune (see README "Running in production").
#: Threads per web process: webhook writes are committed in groups (one transaction for every
#: write waiting), so more requests in flight make fewer, larger commits.
DEFAULT_HTTP_THREADS = 16
#: Web processes at most by default: one per core the process may use, up to this many.
MAX_DEFAULT_PROCESSES = 4
DEFAULT_CONNECTION_LIMIT = 1000
DEFAULT_CHANNEL_TIMEOUT = 30
#: How much lower a worker's CPU priority is than the web processes' (``worker --nice``).
DEFAULT_WORKER_NICE = 10
#: Job threads kept for texts, alerts and escalations: they mostly wait on the carrier's API, so
#: a burst of missed calls is texted in parallel.
DEFAULT_TEXT_WORKERS = 4
#: Connections the kernel queues for the web processes before they accept them.
BACKLOG = 1024


def default_processes() -> int:
    """``serve --processes`` by default: one web process per core this process may run on (one
    interpreter uses one core at a time), at most :data:`MAX_DEFAULT_PROCESSES`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_PROCESSES, cores))


def waitress_options(
    *,
    threads: int = DEFAULT_HTTP_THREADS,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    channel_timeout: int = DEFAULT_CHANNEL_TIMEOUT,
) -> dict[str, Any]:
    """The waitress settings ``textback serve`` runs with.

    Idle and half-sent connections hold no HTTP thread, only a connection slot; waitress's default
    of 100 slots let 120 slow clients shut everyone else out (``/healthz`` included). The limit
    here is ten times that, a connection silent for ``channel_timeout`` seconds is closed (checked
    every few seconds), and headers and bodies are capped. A reverse proxy in front still does the
    rest: TLS, and a deadline for the whole request head.
    """
    return {
        "threads": threads,
        "connection_limit": connection_limit,
        "channel_timeout": channel_timeout,
        "cleanup_interval": max(1, min(10, channel_timeout // 3)),
        "recv_bytes": 8192,
        "max_request_header_size": MAX_REQUEST_HEADER_BYTES,
        "max_request_body_size": MAX_REQUEST_BODY_BYTES,
        "backlog": BACKLOG,
        # poll() rather than select(), which cannot watch descriptors numbered above 1023.
        "asyncore_use_poll": True,
        "ident": "textback",
    }


def _ensure_open_files(needed: int) -> None:
    """Raise this process's open-file limit towards ``needed``, or warn when it cannot."""
    try:
        import resource
    except ImportError:  # not a Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (ValueError, OSError):
        pass
    if soft < needed:
        log.warning("only %d open files allowed (ulimit -n); --connection-limit needs about %d",
                    soft, needed)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {value}")
        return value

    return parse


def _caller_number(text: str) -> str:
    """An argparse type: a caller's phone number, or a word carriers send for a withheld one."""
    from connector.kernel.phone import WITHHELD_CALLER_IDS, to_e164

    if text.strip().lower() in WITHHELD_CALLER_IDS:
        return text.strip()
    number = to_e164(text)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a phone number: use E.164 such as +14155550123, or anonymous for "
            "a withheld number")
    return number


#: How each log line looks.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) at ``level``, every line redacted (``connector.kernel.log_redaction``).

    The redacting filter goes on each handler of the root logger, so it covers every library's
    records too, at every level.
    """
    from connector.kernel import log_redaction

    logging.basicConfig(level=level, format=LOG_FORMAT, stream=stream)
    log_redaction.install()


def _settings() -> Settings:
    """The settings, with logging set up; nothing is written (the key file is made by ``db
    upgrade``)."""
    settings = load_settings(create_secret_key=False)
    configure_logging(settings.log_level)
    return settings


def _runtime(settings: Settings, **kwargs: object):  # type: ignore[no-untyped-def]
    """The runtime, once the database is there and up to date and the secret key is known."""
    from connector.runtime import Runtime

    _check_schema(settings)
    if not settings.secret_key:
        raise ConfigurationError(
            f"TEXTBACK_SECRET_KEY is not set and there is no {settings.secret_key_file}: set "
            "TEXTBACK_SECRET_KEY to the key this database was set up with",
            field="TEXTBACK_SECRET_KEY")
    runtime = Runtime(settings, **kwargs)  # type: ignore[arg-type]
    _open_runtimes.append(runtime)
    return runtime


#: Runtimes this command built; :func:`main` closes them when the command ends.
_open_runtimes: list[Any] = []


def record_metrics(settings: Settings, command: str) -> None:
    """Record this process's metrics into ``TEXTBACK_METRICS_DIR``, where ``serve``'s ``/metrics``
    sums every process's (``serve`` and ``worker`` at start-up; see ``connector.kernel.metrics``)."""
    from connector.kernel import metrics

    try:
        metrics.record_in_directory(settings.metrics_dir, command)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot use the metrics directory {settings.metrics_dir}: {exc.strerror or exc}",
            field="TEXTBACK_METRICS_DIR") from None


def _stop_recording_metrics() -> None:
    from connector.kernel import metrics

    metrics.stop_recording_in_directory()


def _check_schema(settings: Settings) -> None:
    """Refuse, in one line, a database that is missing, unreachable or not at the latest
    revision (it says to run ``textback db upgrade`` where that is the fix). Creates nothing."""
    from connector.storage.db import schema_problem

    problem = schema_problem(settings.database_url)
    if problem:
        raise ConfigurationError(problem, field="TEXTBACK_DATABASE_URL")


def ensure_demo_account(runtime) -> bool:  # type: ignore[no-untyped-def]
    """Load the demo account when no account is configured; True when it did. Once a real
    account exists the demo account is removed, unless ``TEXTBACK_DEMO=keep``."""
    from connector.simulate import demo_account_document, retire_demo_account
    from connector.storage.accounts import import_account, list_accounts

    with runtime.db.session() as s:
        if list_accounts(s):
            if retire_demo_account(s, keep=runtime.settings.keep_demo):
                log.info("a real account exists: removed the demo account "
                         "(TEXTBACK_DEMO=keep keeps it)")
            return False
        import_account(s, runtime.box, demo_account_document(secrets.token_urlsafe(24)))
    return True


def _check_queue(settings: Settings) -> None:
    """Refuse to start when the Redis queue does not answer: one line, before anything is written."""
    if not settings.queue_is_redis:
        return
    from connector.jobs.queue import check_redis, where

    problem = check_redis(settings.queue_url)
    if problem is not None:
        raise ConfigurationError(
            f"cannot reach the Redis queue at {where(settings.queue_url)} ({problem}): "
            "start Redis or fix TEXTBACK_QUEUE_URL", field="TEXTBACK_QUEUE_URL")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the web service: bind the port, then start the job process (SQLite queue) and any
    extra web processes (``--processes``), then answer requests (see ``connector.serving``)."""
    import socket

    from waitress.server import create_server

    from connector import serving
    from connector.web import create_app

    settings = _settings()
    _check_schema(settings)
    _check_queue(settings)
    is_child = args.listen_fd is not None
    child_socks: list[socket.socket] = []
    if is_child:
        sock = socket.socket(fileno=args.listen_fd)
    else:
        sock, *child_socks = serving.bind_all(args.host, args.port, backlog=BACKLOG,
                                              count=args.processes)
    children = serving.Children()
    try:
        record_metrics(settings, "serve")
        runtime = _runtime(settings)
        if not is_child and settings.demo and ensure_demo_account(runtime):
            log.info("no account configured: loaded the demo account (sandbox carrier and CRM)")
        options = waitress_options(threads=args.threads, connection_limit=args.connection_limit,
                                   channel_timeout=args.channel_timeout)
        server = create_server(create_app(runtime), sockets=[sock], **options)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        if is_child:
            _exit_when_stdin_closes()
        else:
            _start_children(children, args, settings, [s.fileno() for s in child_socks])
        _ensure_open_files(args.connection_limit + 100)
        serving.freeze_startup_objects()
        if not is_child:
            log.info("textback serving on http://%s:%s (%d process(es) of %d threads, "
                     "%d connections, %d s idle timeout; jobs %s)", args.host, args.port,
                     args.processes, args.threads, args.connection_limit, args.channel_timeout,
                     _where_jobs_run(args, settings))
        try:
            server.run()
        finally:
            children.stop()
            server.close()
            runtime.close()
            _stop_recording_metrics()
    finally:
        for listening in (sock, *child_socks):
            listening.close()
    return 0


def _where_jobs_run(args: argparse.Namespace, settings: Settings) -> str:
    if settings.queue_is_redis:
        return "in textback worker processes (Redis queue)"
    if args.workers <= 0:
        return "nowhere (--workers 0)"
    return "in a job process of their own"


def _start_children(children, args: argparse.Namespace, settings: Settings,  # type: ignore[no-untyped-def]
                    fds: list[int]) -> None:
    """The job process (SQLite queue) and the extra web processes ``serve`` keeps running,
    each web process on its own listening socket (``fds``)."""
    from connector.serving import textback_argv

    if not settings.queue_is_redis and args.workers > 0:
        children.add("job process", textback_argv(
            "worker", "--workers", str(args.workers), "--text-workers", str(args.text_workers),
            "--with-parent"))
    for n, fd in enumerate(fds, start=2):
        children.add(f"web process {n}", textback_argv(
            "serve", "--listen-fd", str(fd), "--workers", "0", "--threads", str(args.threads),
            "--connection-limit", str(args.connection_limit),
            "--channel-timeout", str(args.channel_timeout)), pass_fds=(fd,))


def _exit_when_stdin_closes() -> None:
    """In a process ``serve`` started: leave (as on SIGTERM) once the parent closes our stdin."""
    import os
    import threading

    def watch() -> None:
        sys.stdin.buffer.read()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def cmd_worker(args: argparse.Namespace) -> int:
    """Consume jobs only."""
    from connector.jobs.queue import run_consumers

    settings = _settings()
    _check_schema(settings)
    _check_queue(settings)
    from connector.serving import freeze_startup_objects, lower_priority

    lower_priority(args.nice)  # before any thread starts: threads take their creator's
    runtime = _runtime(settings)
    record_metrics(settings, "worker")
    consumers = runtime.consumers(args.text_workers, args.workers)
    freeze_startup_objects()
    try:
        run_consumers(consumers, until_stdin_closes=args.with_parent)
    finally:
        runtime.close()
        _stop_recording_metrics()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create or migrate the database; with no ``TEXTBACK_SECRET_KEY``, make the key file too."""
    from connector.settings.config import save_secret_key
    from connector.storage.db import upgrade

    settings = _settings()
    upgrade(settings.database_url, args.revision)
    if settings.secret_key_file is not None and not settings.secret_key:
        save_secret_key(settings.secret_key_file)
        print(f"made a secret key in {settings.secret_key_file} (keep it: it unlocks the stored "
              "credentials; set TEXTBACK_SECRET_KEY in production)")
    print(f"database upgraded to {args.revision}")
    return 0


def cmd_accounts_import(args: argparse.Namespace) -> int:
    """Validate and store an account file."""
    from connector.storage.accounts import import_account, parse_account_file

    text = sys.stdin.read() if args.file == "-" else _read_text(Path(args.file), "account file")
    settings = _settings()
    document = parse_account_file(text)
    runtime = _runtime(settings)
    from connector.jobs.compose import template_report
    from connector.simulate import retire_demo_account

    with runtime.db.session() as s:
        account = import_account(s, runtime.box, document)
        print(f"imported account {account.id} ({account.name})")
        for line in template_report(account):
            print(f"  {line}")
        if retire_demo_account(s, keep=settings.keep_demo):
            print("removed the demo account now that a real one exists "
                  "(TEXTBACK_DEMO=keep keeps it)")
    return 0


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; a ConfigurationError saying what is wrong with it otherwise."""
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark (Notepad) is dropped
    except FileNotFoundError:
        problem = f"there is no {what} at {path}: check the path"
    except IsADirectoryError:
        problem = f"{path} is a folder: give the path of the {what}"
    except UnicodeDecodeError:
        problem = f"{path} is not UTF-8 text: save the {what} as UTF-8 JSON"
    except OSError as exc:
        problem = f"cannot read the {what} {path}: {exc.strerror or exc}"
    raise ConfigurationError(problem, field="FILE")


def _writable_file(path: Path) -> None:
    """Refuse, before any work, a path that cannot become a file: no such folder, a folder."""
    folder = path.parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ConfigurationError(f"cannot write {path}: the folder {folder} {what}",
                                 field="--csv")
    if path.is_dir():
        raise ConfigurationError(f"cannot write {path}: it is a folder; name a file in it",
                                 field="--csv")


def cmd_accounts_export(args: argparse.Namespace) -> int:
    """Print an account file (secrets redacted unless asked for)."""
    from connector.storage.accounts import export_account
    from connector.storage.models import Account

    runtime = _runtime(_settings())
    with runtime.db.session() as s:
        account = s.get(Account, args.id)
        if account is None:
            raise ConfigurationError(f"no account {args.id!r}", field="ID")
        doc = export_account(account, runtime.box, include_secrets=args.include_secrets)
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0


def cmd_accounts_list(args: argparse.Namespace) -> int:
    """List accounts with their carrier, CRM and the CRM connection's state."""
    from connector.storage.accounts import list_accounts
    from connector.storage.installations import connection_state

    runtime = _runtime(_settings())
    with runtime.db.session() as s:
        accounts = list_accounts(s)
        if not accounts:
            print("no accounts yet: add one with `textback accounts import FILE`, or install "
                  "the HubSpot app (/oauth/hubspot/install)")
            return 0
        for a in accounts:
            state = connection_state(s, a.id).describe(a.timezone)
            flag = "  (CRM needs re-authorisation)" if a.crm_needs_reauth else ""
            print(f"{a.id}\t{a.name}\t{a.carrier_kind}\t{a.crm_kind}: {state}{flag}")
    return 0


def cmd_accounts_install_link(args: argparse.Namespace) -> int:
    """Print the signed link that connects an account's OAuth CRM (HubSpot, Jobber, Housecall
    Pro)."""
    from connector.storage.models import Account
    from connector.web.oauth import can_install, install_link

    runtime = _runtime(_settings())
    with runtime.db.session() as s:
        account = s.get(Account, args.id)
        if account is None:
            raise ConfigurationError(f"no account {args.id!r}", field="ID")
        if not can_install(runtime, account):
            hint = (" (or set TEXTBACK_HUBSPOT_CLIENT_ID and TEXTBACK_HUBSPOT_CLIENT_SECRET to "
                    "offer HubSpot's marketplace app)") if account.crm_kind == "hubspot" else ""
            raise ConfigurationError(
                f"{account.crm_kind} is connected with a token or API key in the account file, "
                f"not an app install: give the app's client_id and client_secret{hint}",
                field="crm.credentials")
        print(install_link(runtime, account.id, account.crm_kind))
    return 0


def _read_password(from_stdin: bool) -> str:
    """The new user's password: one line of stdin, or asked for at the terminal (twice)."""
    import getpass

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigurationError("no password on stdin: pipe one line to --password-stdin",
                                     field="--password-stdin")
        return password
    if not sys.stdin.isatty():
        raise ConfigurationError(
            "no terminal to ask for the password: pipe it in with --password-stdin",
            field="--password-stdin")
    try:
        password = getpass.getpass("Password (10 characters or more): ")
        again = getpass.getpass("Same password again: ")
    except EOFError:
        raise ConfigurationError("no password given", field="PASSWORD") from None
    if password != again:
        raise ConfigurationError("the two passwords differ: run the command again",
                                 field="PASSWORD")
    return password


def cmd_users_add(args: argparse.Namespace) -> int:
    """Add (or reset) a user of the pages: an admin or a rep of one or more accounts."""
    from connector.storage.users import add_user

    password = _read_password(args.password_stdin)
    runtime = _runtime(_settings())
    with runtime.db.session() as s:
        user = add_user(s, args.email, args.name or args.email, password, args.account,
                        role=args.role)
        where = ", ".join(args.account) if args.account else "every account"
        print(f"user {user.email} can sign in as {user.role} of {where}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    """Print every user: email, name, role and accounts."""
    from connector.storage.users import list_users

    runtime = _runtime(_settings())
    with runtime.db.session() as s:
        users = list_users(s)
        if not users:
            print("no users yet: add one with `textback users add EMAIL --role admin --account ID`")
        for user, accounts in users:
            where = "every account" if accounts is None else ", ".join(accounts) or "no account"
            print(f"{user.email}\t{user.name}\t{user.role}\t{where}")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    """Remove a user; their sessions end with them."""
    from connector.storage.users import remove_user

    runtime = _runtime(_settings())
    with runtime.db.session() as s:
        user = remove_user(s, args.email)
        print(f"removed user {user.email}")
    return 0


def cmd_accounts_delete(args: argparse.Namespace) -> int:
    """Delete an account and everything kept for it, after a confirmation."""
    from connector.storage.accounts import delete_account
    from connector.storage.models import Account

    runtime = _runtime(_settings())
    with runtime.db.session() as s:
        account = s.get(Account, args.id)
        if account is None:
            raise ConfigurationError(f"no account {args.id!r} (see `textback accounts list`)",
                                     field="ID")
        name = account.name
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigurationError(
                "no terminal to confirm on: add --yes to delete without asking", field="--yes")
        print(f"This deletes account {args.id} ({name}): its settings, credentials, calls, "
              "texts, consent log, CRM links and users' access to it. It cannot be undone.")
        try:
            typed = input(f"Type {args.id} to delete it: ").strip()
        except EOFError:
            typed = ""
        if typed != args.id:
            print("nothing deleted")
            return 1
    with runtime.db.session() as s:
        counts = delete_account(s, args.id)
    print(f"deleted account {args.id} ({name}): " + ", ".join(
        f"{n} {what}" for what, n in counts.items()))
    return 0


def cmd_simulate_call(args: argparse.Namespace) -> int:
    """Simulate a missed call on a sandbox account and run its jobs here, now."""
    from connector.reporting.explain import explain
    from connector.simulate import simulate_call
    from connector.web import create_app

    settings = _settings()
    runtime = _runtime(settings, immediate_queue=True)
    if settings.demo:
        ensure_demo_account(runtime)
    status, call_id = simulate_call(
        runtime, create_app(runtime), args.account, args.from_number, args.outcome
    )
    if status >= 400:
        print(f"the webhook answered {status}", file=sys.stderr)
        return 1
    if call_id is None:
        print("answered call: nothing to do")
        return 0
    print(explain(runtime, call_id))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print what happened to a call and why."""
    from connector.reporting.explain import explain

    runtime = _runtime(_settings())
    try:
        print(explain(runtime, args.call_id))
    except LookupError as exc:
        print(f"textback: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Print an account's numbers for a period, or write them as CSV."""
    from connector.reporting.report import build, parse_day
    from connector.reporting.report_output import format_table, write_csv

    since = parse_day(args.since, "--since")
    until = parse_day(args.until, "--until") if args.until else None
    if args.csv and args.csv != "-":
        _writable_file(Path(args.csv))
    runtime = _runtime(_settings())
    with runtime.db.session() as s:
        report = build(s, args.account, since, until, args.by)
    if args.csv == "-":
        write_csv(report, sys.stdout)
    elif args.csv:
        try:
            with open(args.csv, "w", newline="", encoding="utf-8") as out:
                write_csv(report, out)
        except OSError as exc:
            raise ConfigurationError(f"cannot write {args.csv}: {exc.strerror or exc}",
                                     field="--csv") from None
        print(f"wrote {len(report.rows)} row(s) to {args.csv}")
    else:
        print(format_table(report))
    return 0


def cmd_manifests_render(args: argparse.Namespace) -> int:
    """Write every CRM's app definition (``manifests/``) for this deployment's public URL."""
    from connector.marketplace import render, write

    public_url = args.public_url or load_settings().public_url
    files = render(public_url, support_email=args.support_email, support_url=args.support_url)
    written = write(files, Path(args.out))
    print(f"wrote {len(written)} file(s) under {args.out} for {public_url.rstrip('/')}")
    return 0


#: What ``textback --help`` says before the commands.
DESCRIPTION = """\
textback texts back the callers a business missed, and writes each conversation into its CRM.
Start with `textback db upgrade`, add a business with `textback accounts import FILE` (or try the
built-in demo with `textback simulate-call demo --from +14155550123`), then `textback serve`."""
#: What ``textback --help`` says after the commands.
EPILOG = """\
Settings come from TEXTBACK_* environment variables (TEXTBACK_DATABASE_URL, TEXTBACK_PUBLIC_URL,
TEXTBACK_SECRET_KEY, ...); the README lists them all, with the account file's format. Each
command has its own --help."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line: what is wrong, and where help is."""

    def error(self, message: str) -> NoReturn:
        """Print ``textback <command>: <message>`` and exit with status 2."""
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    from connector.kernel.events import CallOutcome

    parser = _Parser(prog="textback", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=4,
                       help="CRM job threads of the job process serve starts (SQLite queue; "
                            "0 starts none)")
    serve.add_argument("--text-workers", type=int, default=DEFAULT_TEXT_WORKERS,
                       help="threads kept for texts, alerts and escalations (SQLite queue)")
    serve.add_argument("--threads", type=_int_between(1, 256), default=DEFAULT_HTTP_THREADS,
                       help=f"HTTP threads (default {DEFAULT_HTTP_THREADS})")
    serve.add_argument("--connection-limit", type=_int_between(10, 100_000),
                       default=DEFAULT_CONNECTION_LIMIT,
                       help="open connections before new ones wait "
                            f"(default {DEFAULT_CONNECTION_LIMIT})")
    serve.add_argument("--channel-timeout", type=_int_between(1, 3600),
                       default=DEFAULT_CHANNEL_TIMEOUT, metavar="SECONDS",
                       help="close a connection silent this long "
                            f"(default {DEFAULT_CHANNEL_TIMEOUT})")
    serve.add_argument("--processes", type=_int_between(1, 64), default=default_processes(),
                       help="web processes answering on the port (default: one per core, at "
                            f"most {MAX_DEFAULT_PROCESSES}; {default_processes()} here)")
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="consume jobs only")
    worker.add_argument("--workers", type=int, default=4, help="CRM job threads")
    worker.add_argument("--text-workers", type=int, default=DEFAULT_TEXT_WORKERS,
                        help="threads kept for texts, alerts and escalations")
    worker.add_argument("--nice", type=_int_between(0, 19), default=DEFAULT_WORKER_NICE,
                        help="how much lower than the web processes' CPU priority to run, so "
                        "webhook answers never wait behind jobs for the CPU (0: the same; "
                        f"default {DEFAULT_WORKER_NICE})")
    worker.add_argument("--with-parent", action="store_true", help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head", metavar="REVISION",
                    help="the migration to stop at (default: head, the latest)")
    up.set_defaults(func=cmd_db_upgrade)

    accounts = sub.add_parser("accounts", help="account files")
    acc_sub = accounts.add_subparsers(dest="accounts_command", required=True)
    imp = acc_sub.add_parser("import", help="validate and store an account file ('-' = stdin)")
    imp.add_argument("file", metavar="FILE",
                     help="the account file, JSON (docs/ACCOUNT_FILE.md describes it; - reads stdin)")
    imp.set_defaults(func=cmd_accounts_import)
    exp = acc_sub.add_parser("export", help="print an account file")
    exp.add_argument("id", metavar="ID", help="the account's id")
    exp.add_argument("--include-secrets", action="store_true",
                     help="print the credentials too (else ********, which an import keeps)")
    exp.set_defaults(func=cmd_accounts_export)
    lst = acc_sub.add_parser("list", help="list accounts")
    lst.set_defaults(func=cmd_accounts_list)
    link = acc_sub.add_parser(
        "install-link", help="the signed link that connects an OAuth CRM (HubSpot, Jobber, "
        "Housecall Pro)")
    link.add_argument("id", metavar="ID", help="the account's id")
    link.set_defaults(func=cmd_accounts_install_link)
    delete = acc_sub.add_parser("delete", help="delete an account and all its data (asks first)")
    delete.add_argument("id")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(func=cmd_accounts_delete)

    users = sub.add_parser("users", help="who may sign in to the pages")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add or reset a user")
    add.add_argument("email")
    add.add_argument("--name")
    add.add_argument("--role", choices=("admin", "rep"), default="rep",
                     help="admin: sets accounts up; rep: conversations and dashboard (default)")
    add.add_argument("--account", action="append",
                     help="an account they belong to; repeat for several (default: every account)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_users_add)
    ulist = users_sub.add_parser("list", help="every user, their role and accounts")
    ulist.set_defaults(func=cmd_users_list)
    remove = users_sub.add_parser("remove", help="remove a user")
    remove.add_argument("email")
    remove.set_defaults(func=cmd_users_remove)

    sim = sub.add_parser("simulate-call", help="simulate a missed call on a sandbox account")
    sim.add_argument("account", metavar="ACCOUNT",
                     help="the id of an account on the sandbox carrier, such as demo")
    sim.add_argument("--from", dest="from_number", required=True, metavar="NUMBER",
                     type=_caller_number,
                     help="the caller's number, such as +14155550123 (anonymous: withheld)")
    outcomes = [o.value for o in CallOutcome if o is not CallOutcome.UNKNOWN]
    sim.add_argument("--outcome", default="no-answer", choices=outcomes, metavar="OUTCOME",
                     help=f"how the call ended: {', '.join(outcomes)} (default: no-answer)")
    sim.set_defaults(func=cmd_simulate_call)

    exp2 = sub.add_parser("explain", help="why a call was or was not texted")
    exp2.add_argument("call_id", metavar="CALL_ID",
                      help="the call's id (simulate-call prints it) or the carrier's call id")
    exp2.set_defaults(func=cmd_explain)

    rep = sub.add_parser("report", help="an account's numbers for a period (table or CSV)")
    rep.add_argument("account", metavar="ACCOUNT", help="the account's id")
    rep.add_argument("--since", required=True, help="first day, YYYY-MM-DD (account's time zone)")
    rep.add_argument("--until",
                     help="last day, inclusive, YYYY-MM-DD (default: today in the account's time zone)")
    rep.add_argument("--by", choices=("account", "number", "template", "day"), default="account")
    rep.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-' = stdout)")
    rep.set_defaults(func=cmd_report)

    man = sub.add_parser("manifests", help="the CRM marketplace app definitions")
    man_sub = man.add_subparsers(dest="manifests_command", required=True)
    ren = man_sub.add_parser("render", help="write them from the code for a public URL")
    ren.add_argument("--public-url", help="the https address CRMs call (default: TEXTBACK_PUBLIC_URL)")
    ren.add_argument("--out", default="manifests", metavar="DIR",
                     help="the folder to write (default: manifests)")
    ren.add_argument("--support-email", help="shown on the listing (default: support@ the host)")
    ren.add_argument("--support-url", help="support and documentation page (default: the public URL)")
    ren.set_defaults(func=cmd_manifests_render)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textback`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"textback: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        problem = _database_problem(exc)
        if problem is None:
            raise
        print(f"textback: {problem}", file=sys.stderr)
        return 2
    finally:
        while _open_runtimes:
            _open_runtimes.pop().close()


def _database_problem(exc: Exception) -> str | None:
    """One line for a database error that escaped a command (the server went away, say)."""
    if not type(exc).__module__.startswith("sqlalchemy"):
        return None
    from connector.storage.db import database_problem

    return database_problem(exc)


if __name__ == "__main__":
    sys.exit(main())
