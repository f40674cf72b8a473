"""Development doubles shared by the tests and the benchmarks (never imported by app/ or workers/).

``fake_openai``: an OpenAI-compatible HTTP server on 127.0.0.1, scripted per request.
``redis_server``: a private, throw-away redis-server on a free port, for one run.
"""
