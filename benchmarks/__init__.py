"""Performance benchmarks: ``python -m benchmarks`` runs them all (see ``__main__``)."""

from __future__ import annotations

import atexit
import functools
import os


def redis_url() -> str:
    """The benchmarks' one Redis: ``BENCH_REDIS_URL`` when set, else a private redis-server started
    on first use and stopped when the process exits (so nothing shared is ever flushed)."""
    return os.environ.get("BENCH_REDIS_URL") or _private_redis_url()


@functools.cache
def _private_redis_url() -> str:
    from devtools import redis_server

    server = redis_server.start()
    atexit.register(server.stop)
    return server.url
