"""The webhook views: resolve account, verify, parse, store, enqueue, answer fast.

``POST /webhooks/<carrier>/<account_id>/<kind>`` for carriers. A bad signature is a 403 and changes
nothing; a malformed payload a 400; an event we do not
act on a 200; anything unexpected a 500 so the provider retries.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, request

from carrier_adapters import CARRIERS
from carrier_adapters.base import HANDSHAKE, WEBHOOK_KINDS, CallRouting
from connector.errors import (
    ConfigurationError,
    MalformedWebhookError,
    UnsupportedEventError,
    WebhookVerificationError,
)
from connector.http import WebhookReply, WebhookRequest
from connector.intake import (
    record_answered_call,
    record_inbound,
    record_missed_call,
    record_status,
)
from connector.runtime import Runtime
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
    """Every carrier webhook."""
    runtime: Runtime = current_app.extensions["textback"]
    if kind not in WEBHOOK_KINDS:
        abort(404)
    account = runtime.account(account_id)
    with runtime.db.session() as session:
        adapter = runtime.adapter_for_webhook(account, carrier) if account else None
        if adapter is None:
            # Label only carriers we know: a stranger's URL must not mint a new time series.
            known = carrier if carrier in CARRIERS else "unknown"
            count("textback_webhooks_total", provider=known, kind=kind, status="404")
            abort(404)
        req = webhook_request(runtime)
        try:
            adapter.verify_request(req)
        except WebhookVerificationError:
            log.warning("webhook signature refused carrier=%s account=%s", carrier, account_id)
            count("textback_webhooks_total", provider=carrier, kind=kind, status="403")
            return Response("forbidden\n", status=403, content_type="text/plain")
        except MalformedWebhookError as exc:
            # Signed, but the signed part cannot be read (a JWT whose claims nest too deep).
            return _malformed(carrier, kind, exc)
        try:
            kind = adapter.route(kind, req)
            reply, enqueue = _handle(runtime, session, account, adapter, kind, req)
        except MalformedWebhookError as exc:
            session.rollback()
            return _malformed(carrier, kind, exc)
        except UnsupportedEventError:
            session.rollback()
            reply, enqueue = adapter.reply(kind, req), None
    # Committed: now wake a worker. Should this fail, the sweeper finds the work anyway.
    if enqueue is not None:
        try:
            with runtime.enqueue_lock:
                enqueue()
        except Exception:  # noqa: BLE001 - the row is stored; the sweeper will pick it up
            log.exception("enqueue failed; the sweeper will retry")
    count("textback_webhooks_total", provider=carrier, kind=kind, status=str(reply.status))
    return _answer(reply)


def _handle(runtime, session, account, adapter, kind, req):  # type: ignore[no-untyped-def]
    """Store what the webhook says; return the reply and what to enqueue after commit."""
    if kind == HANDSHAKE:
        return adapter.reply(HANDSHAKE, req), None
    if kind == "voice":
        if adapter.is_incoming_call(req):
            forward_to = tuple(account.settings["carrier"].get("forward_to") or ())
            if not forward_to:
                raise ConfigurationError(
                    "carrier.forward_to is empty: no number to ring", field="carrier.forward_to"
                )
            routing = CallRouting(
                forward_to=forward_to,
                ring_timeout_seconds=int(account.settings["carrier"]["ring_timeout_seconds"]),
                action_url=runtime.webhook_url(adapter.name, account.id, "voice"),
                status_callback_url=runtime.webhook_url(adapter.name, account.id, "voice"),
            )
            return adapter.reply("voice", req, routing), None
        answered = adapter.parse_answered_call(req)
        if answered is not None:
            record_answered_call(session, account, answered)
            session.commit()
        event = adapter.parse_call_event(req)
        if event is None:
            return adapter.reply("voice", req), None
        with runtime.db.write_lock:
            call_id, created = record_missed_call(session, account, event)
            session.commit()
        enqueue = (lambda: runtime.jobs.enqueue_text_back(call_id)) if created else None
        return adapter.reply("voice", req), enqueue
    if kind == "sms":
        event = adapter.parse_inbound_message(req)
        numbers = account.settings["carrier"]["numbers"]
        confirms = account.settings["policy"].get("carrier_confirms_opt_out")
        with runtime.db.write_lock:
            message, created, replies = record_inbound(
                session, account, event, numbers[0],
                carrier_confirms=adapter.confirms_opt_outs if confirms is None else bool(confirms),
            )
            session.commit()
        if message is None or not created:
            return adapter.reply("sms", req), None
        message_id = message.id

        def enqueue() -> None:
            for reply_id in replies:  # compliance replies first: they are the customer's answer
                runtime.jobs.enqueue_reply(reply_id)
            runtime.jobs.enqueue_message_sync(message_id)

        return adapter.reply("sms", req), enqueue
    event = adapter.parse_status(req)
    with runtime.db.write_lock:
        failed = record_status(session, account, event, adapter.opt_out_error_codes)
        session.commit()
    if failed is None:
        return adapter.reply("status", req), None
    failed_id = failed.id
    return adapter.reply("status", req), lambda: runtime.jobs.enqueue_message_sync(failed_id)
