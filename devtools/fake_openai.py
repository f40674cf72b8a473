"""A local OpenAI-compatible HTTP server for tests and benchmarks: real sockets, so the real ``openai`` SDK runs.

    with FakeOpenAI() as server:
        server.push(Status(429), Reply({"action": "release", ...}))
        provider = OpenAIProvider(api_key="k", base_url=server.base_url)
        ...
        assert len(server.chat_requests) == 2

``POST /v1/chat/completions`` plays the pushed behaviours first in, first out; once the script is
empty it plays the default behaviour (``set_default``), which initially echoes a minimal valid
answer for whatever case type the request's ``response_format`` schema describes.
``GET /v1/models`` lists one model. ``ToolCalls`` answers as a model calling tools (the example agent's
script, examples/refund_agent.py).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Content = dict[str, Any] | str | Callable[[dict[str, Any]], dict[str, Any] | str]

#: Makes the SDK retry at once: it ignores ``retry-after: 0`` (falls back to 0.5 s+ backoff) but
#: honours any positive delay, and ``retry-after-ms`` takes precedence over ``retry-after``.
FAST_RETRY_HEADERS = {"retry-after-ms": "1"}


@dataclass(frozen=True)
class Reply:
    """A normal ``chat.completion``; a dict content is JSON-encoded, a callable gets the request body."""

    content: Content
    delay: float = 0
    model: str = "test-model"
    prompt_tokens: int = 123
    completion_tokens: int = 45
    finish_reason: str = "stop"
    usage: bool = True


@dataclass(frozen=True)
class Refusal:
    """The model declines: ``message.refusal`` set, ``content`` null."""

    text: str
    model: str = "test-model"


@dataclass(frozen=True)
class Status:
    """An error status with an OpenAI-style error body. ``headers=None`` sends FAST_RETRY_HEADERS."""

    code: int
    body: Any = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Hang:
    """Wait ``seconds`` (cut short by ``stop()``), then play ``then`` or the default behaviour."""

    seconds: float
    then: Behaviour | None = None


@dataclass(frozen=True)
class ToolCalls:
    """The model calls tools: ``message.tool_calls``, one per ``(name, arguments)``, finish_reason "tool_calls"."""

    calls: tuple[tuple[str, dict[str, Any]], ...]
    model: str = "test-model"


Behaviour = Reply | Refusal | Status | Hang | ToolCalls


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # the decoded JSON body, or None
    received_at: float = field(default_factory=time.monotonic)


# -- building a valid answer from the request's own schema -------------------------------------


def minimal_value(schema: dict[str, Any]) -> Any:
    """The smallest value that satisfies a (strict, $ref-free) JSON Schema node."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return minimal_value(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: minimal_value(sub) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [minimal_value(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("number", "integer"):
        if "minimum" in schema:
            return schema["minimum"]
        if "exclusiveMinimum" in schema:
            return schema["exclusiveMinimum"] + 1
        return 1
    if kind == "boolean":
        return False
    return None


def valid_answer(body: dict[str, Any], action_index: int = 0) -> dict[str, Any]:
    """A Recommendation that passes the request's response_format schema: the ``action_index``-th action
    of its enum, with the parameters schema in the same position (response_schema keeps them aligned)."""
    schema = body["response_format"]["json_schema"]["schema"]
    props = schema["properties"]
    action = props["action"]["enum"][action_index]
    params_schema = props["parameters"]
    choices = params_schema.get("anyOf", [params_schema])
    return {
        "action": action,
        "parameters": minimal_value(choices[min(action_index, len(choices) - 1)]),
        "rationale": "fake model answer",
        "confidence": 0.5,
        "risk_flags": [],
        "citations": [],
    }


ECHO_VALID = Reply(valid_answer)


# -- the server ------------------------------------------------------------------------------------


class FakeOpenAI:
    def __init__(self, *, default: Behaviour = ECHO_VALID, model_id: str = "test-model") -> None:
        self._lock = threading.Lock()
        self._script: deque[Behaviour] = deque()
        self._requests: list[RecordedRequest] = []
        self._default: Behaviour = default
        self._initial_default: Behaviour = default
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.model_id = model_id

    # lifecycle
    def start(self) -> FakeOpenAI:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake OpenAI server is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # scripting
    def push(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._script.extend(behaviours)

    def set_default(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._default = behaviour

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._default = self._initial_default

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # used by the handler
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self._default

    def _default_behaviour(self) -> Behaviour:
        with self._lock:
            return self._default


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.fake._record(RecordedRequest("GET", self.path, self._headers(), None))
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": self.fake.model_id, "object": "model", "created": 0, "owned_by": "fake"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_json(404, _error_body(404, f"no route GET {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        self.fake._record(RecordedRequest("POST", self.path, self._headers(), body))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _error_body(404, f"no route POST {self.path}"))
            return
        if not isinstance(body, dict):
            self._send_json(400, _error_body(400, "the request body is not a JSON object"))
            return
        self._play(self.fake._next(), body)

    def _play(self, behaviour: Behaviour, body: dict[str, Any]) -> None:
        if isinstance(behaviour, Hang):
            if self.fake._stopping.wait(behaviour.seconds):
                return
            self._play(behaviour.then or self.fake._default_behaviour(), body)
        elif isinstance(behaviour, Status):
            payload = behaviour.body if behaviour.body is not None else _error_body(behaviour.code)
            headers = FAST_RETRY_HEADERS if behaviour.headers is None else behaviour.headers
            self._send_json(behaviour.code, payload, headers)
        elif isinstance(behaviour, Refusal):
            self._send_json(200, _completion(behaviour.model, None, behaviour.text, "stop", (10, 5)))
        elif isinstance(behaviour, ToolCalls):
            completion = _completion(behaviour.model, None, None, "tool_calls", (10, 5))
            completion["choices"][0]["message"]["tool_calls"] = [
                {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(arguments)}}
                for name, arguments in behaviour.calls]
            self._send_json(200, completion)
        elif isinstance(behaviour, Reply):
            if behaviour.delay and self.fake._stopping.wait(behaviour.delay):
                return
            content = behaviour.content(body) if callable(behaviour.content) else behaviour.content
            text = content if isinstance(content, str) else json.dumps(content)
            usage = (behaviour.prompt_tokens, behaviour.completion_tokens) if behaviour.usage else None
            self._send_json(200, _completion(behaviour.model, text, None, behaviour.finish_reason, usage))
        else:
            raise TypeError(f"unknown behaviour {behaviour!r}")

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _send_json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass
        self.close_connection = True


def _completion(
    model: str, content: str | None, refusal: str | None, finish_reason: str, usage: tuple[int, int] | None
) -> dict[str, Any]:
    completion: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal},
            "logprobs": None,
            "finish_reason": finish_reason,
        }],
    }
    if usage is not None:
        completion["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                               "total_tokens": usage[0] + usage[1]}
    return completion


_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                404: "invalid_request_error", 429: "rate_limit_exceeded"}


def _error_body(code: int, message: str | None = None) -> dict[str, Any]:
    return {"error": {
        "message": message or f"fake error {code}",
        "type": _ERROR_TYPES.get(code, "server_error"),
        "param": None,
        "code": None,
    }}


__all__ = [
    "ECHO_VALID",
    "FAST_RETRY_HEADERS",
    "Behaviour",
    "FakeOpenAI",
    "Hang",
    "RecordedRequest",
    "Refusal",
    "Reply",
    "Status",
    "ToolCalls",
    "minimal_value",
    "valid_answer",
]
