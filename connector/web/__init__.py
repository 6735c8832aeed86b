"""The Flask app: webhooks, health and metrics, and the demo page."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from connector.runtime import Runtime
from connector.web import (
    crm_webhooks,
    demo,
    errors,
    health,
    hubspot_actions,
    oauth,
    pages,
    setup,
    webhooks,
)


def create_app(runtime: Runtime) -> Flask:
    """Build the web app around a runtime."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = runtime.settings.secret_key
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = runtime.settings.public_url.startswith("https://")
    # Sessions are browser-session cookies (never marked permanent); the signed cookie is still
    # refused past 12 hours, the longest a sign-in lasts (the pages enforce 12 h and 2 h idle).
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=12)
    app.extensions["textback"] = runtime
    hops = runtime.settings.trust_proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(crm_webhooks.bp)
    app.register_blueprint(hubspot_actions.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(setup.bp)
    app.register_blueprint(setup.accounts_bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(demo.bp)
    errors.register(app)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return app
