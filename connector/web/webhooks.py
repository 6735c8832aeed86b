"""The webhook views: resolve account, verify, parse, store, enqueue, answer fast.

``POST /webhooks/<carrier>/<account_id>/<kind>`` for carriers. A bad signature is a 403 and changes
nothing. The payload is then read in full before anything is stored: one the adapter cannot read
is a 400 (whatever the parser tripped over, with the reason logged and no payload quoted), and an
event we do not act on a 200. Anything unexpected while storing is a 500, so the provider
retries.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import delete
from sqlalchemy.orm import Session

from carrier_adapters import CARRIERS
from carrier_adapters.base import HANDSHAKE, WEBHOOK_KINDS, CallRouting, CarrierAdapter
from connector.jobs.intake import (
    insert_new_missed_calls,
    record_answered_call,
    record_inbound,
    record_missed_calls,
    record_status,
)
from connector.kernel import clock
from connector.kernel.errors import (
    ConfigurationError,
    MalformedWebhookError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.kernel.events import AnsweredCall, InboundMessage, MessageStatusUpdate, MissedCall
from connector.kernel.http import WebhookReply, WebhookRequest
from connector.runtime import Runtime
from connector.storage import nonces
from connector.storage.models import Account, UsedNonce
from connector.web.health import count, timed_webhook

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


def public_request_url(runtime: Runtime) -> str:
    """The URL the provider called: ``TEXTBACK_PUBLIC_URL`` + the raw path and query string.

    Providers sign the URL they were configured with, so it is rebuilt from the configured public
    base, never from Host headers a proxy may have rewritten.
    """
    env = request.environ
    raw = env.get("RAW_URI") or env.get("REQUEST_URI")
    if not raw:
        raw = quote(env.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=-._~")
        if env.get("QUERY_STRING"):
            raw += "?" + env["QUERY_STRING"]
    return runtime.settings.public_url + raw


def webhook_request(runtime: Runtime) -> WebhookRequest:
    """The framework-free value the adapters see."""
    return WebhookRequest.build(
        method=request.method,
        url=public_request_url(runtime),
        headers=dict(request.headers.items()),
        body=request.get_data(cache=True),
    )


def _malformed(carrier: str, kind: str, exc: MalformedWebhookError) -> Response:
    """400 for an authentic webhook we cannot read; the reason is logged, never the payload."""
    log.warning("malformed webhook carrier=%s kind=%s: %s", carrier, kind, exc)
    count("textback_webhooks_total", provider=carrier, kind=kind, status="400")
    return Response(f"malformed webhook: {exc}\n", status=400, content_type="text/plain")


def _answer(reply: WebhookReply) -> Response:
    response = Response(reply.body, status=reply.status, content_type=reply.content_type)
    response.headers.update(dict(reply.headers))
    return response


@bp.post("/webhooks/<carrier>/<account_id>/<kind>")
@timed_webhook
def carrier_webhook(carrier: str, account_id: str, kind: str) -> Response:
    """Every carrier webhook: resolve the account, verify, parse, store, enqueue, answer."""
    runtime: Runtime = current_app.extensions["textback"]
    if kind not in WEBHOOK_KINDS:
        abort(404)
    spent: list[tuple[str, str]] = []
    try:
        response, enqueue = _receive(runtime, carrier, account_id, kind, spent)
    except Exception:
        # Unexpected (a 500): the provider retries, perhaps with the same signed headers, which
        # must not be refused as a replay. Every other answer keeps its nonce spent.
        for scope, nonce in spent:
            _release_nonce(runtime, scope, nonce)
        raise
    # Committed: answer now, and wake a worker just after (the sweeper finds the work should
    # that fail).
    if enqueue is not None:
        runtime.enqueuer.submit(enqueue)
    return response


def _forbidden(carrier: str, kind: str) -> Response:
    count("textback_webhooks_total", provider=carrier, kind=kind, status="403")
    return Response("forbidden\n", status=403, content_type="text/plain")


def _receive(
    runtime: Runtime, carrier: str, account_id: str, kind: str, spent: list[tuple[str, str]]
) -> tuple[Response, Callable[[], None] | None]:
    """Verify, spend the nonce, parse and store one webhook; the answer and what to enqueue.

    Nonces spent are appended to ``spent`` as ``(scope, nonce)``.
    """
    account = runtime.account(account_id)
    adapter = runtime.adapter_for_webhook(account, carrier) if account else None
    if account is None or adapter is None:
        # Label only carriers we know: a stranger's URL must not mint a new time series.
        known = carrier if carrier in CARRIERS else "unknown"
        count("textback_webhooks_total", provider=known, kind=kind, status="404")
        abort(404)
    req = webhook_request(runtime)
    try:
        adapter.verify_request(req)
    except WebhookVerificationError:
        log.warning("webhook signature refused carrier=%s account=%s", carrier, account_id)
        return _forbidden(carrier, kind), None
    except MalformedWebhookError as exc:
        # Signed, but the signed part cannot be read (a JWT whose claims nest too deep).
        return _malformed(carrier, kind, exc), None
    nonce = adapter.replay_nonce(req)
    if nonce is not None:
        scope, value = _nonce_key(adapter, account, nonce)
        expires_at = clock.now() + adapter.nonce_retention
        fresh = runtime.writer.run(
            lambda session: nonces.spend(session, scope, value, expires_at))
        if not fresh:
            log.warning("webhook nonce replayed carrier=%s account=%s", carrier, account_id)
            return _forbidden(carrier, kind), None
        spent.append((scope, value))
    try:
        parsed = _parse(account, adapter, kind, req)
    except MalformedWebhookError as exc:
        return _malformed(carrier, kind, exc), None
    except WebhookVerificationError:
        return _forbidden(carrier, kind), None
    if not _ours(account, parsed):
        # Accounts may share carrier credentials, and most signatures do not cover the URL:
        # an event about another account's number is not this account's, whoever signed it.
        log.warning("webhook names a number not the account's carrier=%s account=%s kind=%s",
                    carrier, account_id, parsed.kind)
        count("textback_webhooks_total", provider=carrier, kind=parsed.kind, status="404")
        return Response("not found\n", status=404, content_type="text/plain"), None
    enqueue = _store(runtime, account, adapter, parsed)
    count("textback_webhooks_total", provider=carrier, kind=parsed.kind,
          status=str(parsed.reply.status))
    return _answer(parsed.reply), enqueue


def _nonce_key(adapter: CarrierAdapter, account: Account, nonce: str) -> tuple[str, str]:
    """``(scope, nonce)`` as stored in ``used_nonces``: per carrier and account; a nonce too
    long for the column is stored as its SHA-256."""
    if len(nonce) > 128:
        nonce = "sha256:" + hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{adapter.name}:{account.id}", nonce


def _release_nonce(runtime: Runtime, scope: str, nonce: str) -> None:
    """Forget a spent nonce after a failure the provider will retry; best effort."""
    try:
        with runtime.db.session() as session:
            session.execute(
                delete(UsedNonce).where(UsedNonce.scope == scope, UsedNonce.nonce == nonce)
            )
    except Exception:  # noqa: BLE001 - the original error is the one to report
        log.exception("could not release a webhook nonce; a retry may be refused as a replay")


@dataclass(frozen=True)
class Parsed:
    """What an authentic webhook says, read in full before anything is stored.

    ``reply`` is the answer for the provider; at most one of the event fields is the thing to
    store (``answered`` may come with ``missed``: a voice callback can report both legs).
    """

    kind: str
    reply: WebhookReply
    answered: AnsweredCall | None = None
    missed: MissedCall | None = None
    inbound: InboundMessage | None = None
    status: MessageStatusUpdate | None = None
    #: The business numbers the events name (:meth:`CarrierAdapter.business_number`); an event
    #: that names none adds nothing.
    numbers: tuple[str, ...] = ()


#: Errors a parser raises on a payload of a shape it did not expect (a list where it wanted an
#: object, a number where it wanted text). Raised while *parsing*, they mean the payload cannot
#: be read: a 400 the provider need not retry. Raised while *storing*, they stay 500s.
PARSE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError)


def _where(exc: BaseException) -> str:
    """``file:line in function`` of the innermost frame of ``exc``: a reason to log that
    quotes no payload (exception messages may, so they are left out)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}"


def _parse(account: Account, adapter: CarrierAdapter, kind: str, req: WebhookRequest) -> Parsed:
    """Read the webhook into a :class:`Parsed`, storing nothing.

    An event we do not act on parses to its reply alone. A payload the adapter cannot read
    raises :class:`MalformedWebhookError`, whatever error the adapter tripped over.
    """
    try:
        parsed = _read(account, adapter, kind, req)
        named = (adapter.business_number(event, req) for event in (
            parsed.answered, parsed.missed, parsed.inbound, parsed.status) if event is not None)
        return replace(parsed, numbers=tuple(n for n in named if n is not None))
    except UnsupportedEventError:
        try:
            return Parsed(kind, adapter.reply(kind, req))
        except PARSE_ERRORS as exc:
            raise _unreadable(adapter, exc) from exc
    except PARSE_ERRORS as exc:
        raise _unreadable(adapter, exc) from exc


def _unreadable(adapter: CarrierAdapter, exc: BaseException) -> MalformedWebhookError:
    return MalformedWebhookError(
        f"{adapter.name}: payload cannot be read ({type(exc).__name__} at {_where(exc)})"
    )


def _read(account: Account, adapter: CarrierAdapter, kind: str, req: WebhookRequest) -> Parsed:
    kind = adapter.webhook_kind(kind, req)
    if kind == HANDSHAKE:
        return Parsed(kind, adapter.reply(HANDSHAKE, req))
    if kind == "voice":
        if adapter.is_incoming_call(req):
            return Parsed(kind, adapter.reply("voice", req, _routing(account, adapter)))
        answered = adapter.parse_answered_call(req)
        missed = adapter.parse_call_event(req)
        return Parsed(kind, adapter.reply("voice", req), answered=answered, missed=missed)
    if kind == "sms":
        return Parsed(kind, adapter.reply("sms", req), inbound=adapter.parse_inbound_message(req))
    return Parsed(kind, adapter.reply("status", req), status=adapter.parse_status(req))


def _ours(account: Account, parsed: Parsed) -> bool:
    """True unless an event names a business number that is not one of the account's.

    The account's numbers are ``carrier.numbers``; ``carrier.sms`` names no numbers of its own
    (it texts from the same business numbers). Events that name no business number (see
    :meth:`CarrierAdapter.business_number`: a forwarded leg naming only the forwarding phone,
    a report without a sender, a new incoming call, which stores nothing) pass.
    """
    numbers = set(account.settings["carrier"]["numbers"])
    return all(number in numbers for number in parsed.numbers)


def _routing(account: Account, adapter: CarrierAdapter) -> CallRouting:
    """Where to forward a new incoming call."""
    runtime: Runtime = current_app.extensions["textback"]
    forward_to = tuple(account.settings["carrier"].get("forward_to") or ())
    if not forward_to:
        raise ConfigurationError(
            "carrier.forward_to is empty: no number to ring", field="carrier.forward_to"
        )
    return CallRouting(
        forward_to=forward_to,
        ring_timeout_seconds=int(account.settings["carrier"]["ring_timeout_seconds"]),
        action_url=runtime.webhook_url(adapter.name, account.id, "voice"),
        status_callback_url=runtime.webhook_url(adapter.name, account.id, "voice"),
    )


def _store(
    runtime: Runtime, account: Account, adapter: CarrierAdapter, parsed: Parsed
) -> Callable[[], None] | None:
    """Store what the webhook says, committed (in a transaction shared with the other webhooks
    being stored at the same moment); return what to enqueue after the commit."""
    if parsed.answered is not None:
        answered = parsed.answered
        runtime.writer.run(lambda session: record_answered_call(session, account, answered))
    if parsed.missed is not None:
        # The hot path: every missed call handed in at the same moment is one INSERT.
        call_id, created = runtime.writer.run_many(record_missed_calls, (account, parsed.missed),
                                                   statement=insert_new_missed_calls)
        return (lambda: runtime.jobs.enqueue_text_back(call_id)) if created else None
    if parsed.inbound is not None or parsed.status is not None:
        return runtime.writer.run(lambda session: _write(runtime, session, account, adapter,
                                                         parsed))
    return None


def _write(
    runtime: Runtime, session: Session, account: Account, adapter: CarrierAdapter, parsed: Parsed
) -> Callable[[], None] | None:
    """A customer's text or a delivery report, in the caller's transaction (no provider calls);
    what to enqueue after the commit."""
    if parsed.inbound is not None:
        numbers = account.settings["carrier"]["numbers"]
        confirms = account.settings["policy"].get("carrier_confirms_opt_out")
        message, created, replies = record_inbound(
            session, account, parsed.inbound, numbers[0],
            carrier_confirms=adapter.confirms_opt_outs if confirms is None else bool(confirms),
        )
        if message is None or not created:
            return None
        message_id = message.id

        def enqueue_inbound() -> None:
            for reply_id in replies:  # compliance replies first: they are the customer's answer
                runtime.jobs.enqueue_reply(reply_id)
            runtime.jobs.enqueue_reply_received(message_id)  # the owner's alert: texts lane
            runtime.jobs.enqueue_message_sync(message_id)

        return enqueue_inbound
    if parsed.status is not None:
        failed = record_status(session, account, parsed.status, adapter.opt_out_error_codes)
        if failed is not None:
            failed_id = failed.id
            return lambda: runtime.jobs.enqueue_message_sync(failed_id)
    return None
