"""Error pages: a person who hits a wrong address, an expired form or a fault sees the app's own
page with what happened and a way back; webhooks, health checks and JSON endpoints keep plain
answers for the machines that call them."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from connector.web.pages import local_path

#: Paths that machines call: their errors stay the plain answer they always were.
MACHINE_PATHS = ("/webhooks/", "/hubspot/", "/healthz", "/readyz", "/metrics",
                 "/demo/simulate-call", "/demo/state.json", "/static/")

#: What each status means to a person, and what to do about it.
TITLES = {
    400: ("This request could not be used", "Something in the form or the address was not right."),
    403: ("Not allowed", "Your account may not open this page. Sign in as someone who may."),
    404: ("Page not found", "There is nothing at this address, or it belongs to an account you "
                            "cannot see."),
    405: ("Not allowed here", "This address does not take that kind of request."),
    413: ("Too large", "What was sent is larger than this app accepts."),
    429: ("Too many requests", "Wait a minute and try again."),
    500: ("Something went wrong on our side", "The error was logged. Try again in a moment; "
                                              "if it keeps happening, tell whoever runs textback."),
}


def _for_a_machine() -> bool:
    path = request.path
    return path.startswith(MACHINE_PATHS) or request.is_json  # people's browsers send forms


def _page(error: HTTPException) -> Response | HTTPException:
    if _for_a_machine():
        return error
    status = error.code or 500
    title, advice = TITLES.get(status, (error.name, ""))
    # A description given on purpose (abort(400, "the form expired ...")) says more than ours.
    default = type(error).description
    said = error.description if error.description and error.description != default else None
    if status >= 500:
        said = None  # never show a fault's text to a person
    page = render_template("error.html", status=status, title=title, advice=advice, said=said,
                           back=_previous_page())
    response = Response(page, status=status, mimetype="text/html")
    for name, value in error.get_headers():  # keep what the error tells the browser
        if name in ("Retry-After", "Allow"):
            response.headers[name] = value
    return response


def _previous_page() -> str | None:
    """The page the person came from, when it is one of this app's other pages."""
    came_from = urlsplit(request.referrer or "")
    if came_from.netloc != request.host:
        return None
    path = local_path(came_from.path + (f"?{came_from.query}" if came_from.query else ""))
    return path if path and came_from.path != request.path else None


def register(app: Flask) -> None:
    """Answer every HTTP error of a page with the app's error page."""
    app.register_error_handler(HTTPException, _page)

    @app.errorhandler(InternalServerError)
    def _fault(error: InternalServerError) -> Response | HTTPException:
        return _page(error)
