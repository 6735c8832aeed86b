"""The Flask app: webhooks, health and metrics, and the demo page."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
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


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookies, with the signing serializer built once per set of keys.

    Flask builds it anew for every request, webhooks included, which never carry the cookie;
    it depends only on the keys, so it is kept while they stay the same.
    """

    def __init__(self) -> None:
        self._built: tuple[object, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """The serializer for the app's current ``SECRET_KEY`` and its fallbacks."""
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        built = self._built
        if built is None or built[0] != keys:
            built = self._built = (keys, super().get_signing_serializer(app))
        return built[1]


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
    app.session_interface = SessionCookies()
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
