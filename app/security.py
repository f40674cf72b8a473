"""The edge's own defences: the client's address behind trusted proxies, bounded bodies, no NUL
characters, security headers on every response."""

from __future__ import annotations

import io

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import Malformed
from app.forwarded import ForwardedFor, TrustedProxies

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def init_security(app: Flask) -> None:
    app.wsgi_app = ForwardedFor(app.wsgi_app, TrustedProxies(app.config["FORWARDED_ALLOW_IPS"]))
    headers = dict(HEADERS)
    if app.config["ENV"] != "development":  # local http development must not pin the browser to https
        headers["Strict-Transport-Security"] = HSTS

    def _bounded_body() -> None:
        """A body sent without a length (chunked) is read here, up to MAX_CONTENT_LENGTH: the server
        passes its stream through unbounded, so the limit would otherwise not hold. Runs first, so
        an oversized body is a 413 whoever sends it."""
        if request.content_length is not None or not request.environ.get("wsgi.input_terminated"):
            return
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        data = request.environ["wsgi.input"].read(limit + 1)
        if len(data) > limit:
            raise RequestEntityTooLarge(f"the body is larger than {limit} bytes")
        request.environ["wsgi.input"] = io.BytesIO(data)  # what was read, for the view to read again

    app.before_request_funcs.setdefault(None, []).insert(0, _bounded_body)

    @app.before_request
    def _refuse_nul_characters() -> None:
        """No text with a NUL character reaches a query or a row: PostgreSQL cannot store one, and
        nobody types one. JSON bodies are checked where they are read (app.jsonbody)."""
        texts = [request.path, *request.args.keys(), *request.args.values()]
        if request.mimetype in FORM_TYPES:
            texts += [*request.form.keys(), *request.form.values()]
        if any("\x00" in text for text in texts):
            raise Malformed("the request contains a NUL character", slug="nul-character",
                            title="NUL character in the request")

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
