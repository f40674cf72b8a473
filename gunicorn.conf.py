"""Gunicorn's settings for the web process: ``countersign web`` (or ``gunicorn -c gunicorn.conf.py wsgi:app``).

Read from the environment, like the app's own settings:

    HOST, PORT         where to listen (default 127.0.0.1:8000: behind a proxy on the same host;
                       HOST=0.0.0.0 for a load balancer on another machine)
    WEB_CONCURRENCY    worker processes (default: one per CPU)
    WEB_THREADS        threads per worker (default 4)
    FORWARDED_ALLOW_IPS  the proxies trusted to say a request came over HTTPS (X-Forwarded-Proto),
                       and, by the app, to name the client (X-Forwarded-For: app/forwarded.py);
                       gunicorn's default is 127.0.0.1,::1 (a proxy on the same host). Set it to
                       the load balancers' addresses or network, never to * on a reachable port.

Anything else: GUNICORN_CMD_ARGS (e.g. "--keep-alive 65"), or arguments after ``countersign web``.
"""

from __future__ import annotations

import os
from pathlib import Path

# The checkout holds wsgi.py, config.py, templates/ and migrations/: run from it wherever started.
chdir = str(Path(__file__).resolve().parent)
wsgi_app = "wsgi:app"
bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]

# Requests spend most of their time waiting for PostgreSQL and Redis: threads overlap those waits,
# processes use the cores. 4 threads stay within a worker's database pool (5, app/__init__.py).
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
threads = int(os.environ.get("WEB_THREADS") or 4)

# A gthread worker answers the arbiter from its main thread, so `timeout` ends a hung worker,
# not a long request (a large decision-log export may take a minute). Stopping waits for
# requests in flight up to graceful_timeout.
timeout = 30
graceful_timeout = 30
# Above a load balancer's idle timeout when it keeps connections to the backends (e.g. --keep-alive 65).
keepalive = 5
# Request line and headers: a bound on what a client may make a worker buffer (bodies: MAX_BODY_BYTES).
limit_request_line = 8190
limit_request_fields = 100

# Restart each worker after a few thousand requests (jittered, so not all at once): a slow leak
# in any library never grows without bound.
max_requests = 5000
max_requests_jitter = 500

# Loaded once in the arbiter, then forked: one import of the app instead of one per worker (faster
# start, shared memory pages), and a broken release fails at start instead of in a loop of
# worker restarts. The price: a new release needs a restart, not a HUP (the arbiter holds the old
# code). Nothing connects to the database or Redis while the app is created; post_fork drops any
# pooled connection all the same, so no two processes ever share one.
preload_app = True


def post_fork(server, worker) -> None:
    from app.extensions import db
    from wsgi import app

    with app.app_context():
        db.engine.dispose(close=False)


# The access log: who, what, status, size, time. The query string is left out (%(U)s is the path
# alone: tokens or signatures must never reach a log), and so are the Authorization and Cookie
# headers, which gunicorn's default format does not log either.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = "info"

# Gunicorn's control socket (gunicornc) defaults to one path per user, which a second gunicorn
# of the same user (another node's web on one host, a benchmark) would take over: off.
control_socket_disable = True
