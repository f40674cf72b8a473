"""The ``openai`` provider: any OpenAI-compatible chat-completions endpoint, through the official SDK.

One class serves every server that speaks the OpenAI chat-completions API with structured outputs;
only ``base_url``, ``api_key`` and the model name change:

- OpenAI: ``base_url=None`` (the SDK default, ``https://api.openai.com/v1``; note the SDK then
  honours ``OPENAI_BASE_URL`` if set), ``api_key="sk-..."``.
- Azure OpenAI (v1 API): ``base_url="https://<resource>.openai.azure.com/openai/v1/"``,
  ``api_key=<the resource key>``, and the *deployment name* as the model. (The SDK also ships
  ``openai.AzureOpenAI`` for the older dated ``api-version`` API and Entra ID tokens; not used here.)
- vLLM: ``base_url="http://host:8000/v1"``; Ollama: ``base_url="http://host:11434/v1"``;
  llama.cpp server: ``base_url="http://host:8080/v1"``. These usually need no key: leave
  ``api_key`` empty and a placeholder is sent (the SDK refuses to start without one).

The SDK does the retrying (``max_retries``, exponential backoff, honouring ``retry-after``/
``retry-after-ms``) and the timeout; this class maps what is left into ProviderError /
TransientProviderError / InvalidOutput. The answer is returned as parsed JSON; checking it
against the case type is the runtime's job (``app.ai.schemas.parse_recommendation``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai

from app.ai.providers.base import (
    InvalidOutput,
    ProviderError,
    ProviderRequest,
    ProviderResponse,
    TransientProviderError,
)

#: Sent when no key is configured: local servers (vLLM, Ollama, llama.cpp) ignore it.
PLACEHOLDER_API_KEY = "not-needed"

#: 4xx statuses the SDK itself treats as retryable: request timeout, lock timeout, rate limit.
_TRANSIENT_4XX = {408: "request timeout", 409: "conflict (lock timeout)", 429: "rate limited"}
_STATUS_NAMES = {400: "bad request", 401: "authentication failed", 403: "permission denied",
                 404: "not found", 422: "unprocessable request"}
_KEY_LIKE = re.compile(r"\b(sk-|key-)[A-Za-z0-9_\-*.]{4,}")
_MAX_DETAIL = 300


class OpenAIProvider:
    """A Provider over the official ``openai`` SDK's chat completions with strict JSON-schema output."""

    def __init__(
        self,
        *,
        name: str = "openai",
        api_key: str,
        base_url: str | None,
        timeout: float = 30.0,
        max_retries: int = 2,
        private: bool = False,
    ) -> None:
        self.name = name
        self.private = private
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = api_key or PLACEHOLDER_API_KEY
        self._client = openai.OpenAI(
            api_key=self._api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIProvider(name={self.name!r}, base_url={self.base_url!r}, private={self.private!r})"

    def close(self) -> None:
        """Release the SDK's connection pool."""
        self._client.close()

    # -- the Provider protocol -------------------------------------------------------------------

    def complete(self, request: ProviderRequest) -> ProviderResponse:
        try:
            response = self._client.chat.completions.create(
                model=request.model,
                messages=[
                    {"role": "system", "content": request.system_prompt},
                    {"role": "user", "content": request.user_prompt},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "recommendation", "schema": request.response_schema, "strict": True},
                },
                temperature=0,
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc, request.model) from None

        return self._read(response, request.model)

    # -- internals -------------------------------------------------------------------------------

    def _read(self, response: Any, model: str) -> ProviderResponse:
        where = f"{self.name} model {model!r}"
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise InvalidOutput(f"{where} returned no choices")
        choice = choices[0]
        message = getattr(choice, "message", None)
        finish_reason = getattr(choice, "finish_reason", None)
        refusal = getattr(message, "refusal", None)
        content = getattr(message, "content", None)
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", None) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", None) or 0)

        if refusal:
            raise InvalidOutput(f"{where} refused to answer: {self._scrub(str(refusal))}")
        if finish_reason == "length":
            raise InvalidOutput(
                f"{where} answer was cut off at the token limit (finish_reason=length, {tokens_out} tokens)"
            )
        if finish_reason == "content_filter":
            raise InvalidOutput(f"{where} answer was withheld by the content filter (finish_reason=content_filter)")
        if not isinstance(content, str) or not content.strip():
            raise InvalidOutput(f"{where} returned an empty answer (finish_reason={finish_reason})")
        try:
            output = json.loads(content)
        except json.JSONDecodeError as exc:
            raise InvalidOutput(f"{where} answer is not valid JSON: {exc.msg} at char {exc.pos}") from None

        return ProviderResponse(
            output=output,
            model=getattr(response, "model", None) or model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            raw={"id": getattr(response, "id", None), "finish_reason": finish_reason},
        )

    def _map_error(self, exc: openai.OpenAIError, model: str) -> ProviderError:
        where = f"{self.name} model {model!r}"
        attempts = self._attempts(exc)
        if isinstance(exc, openai.APITimeoutError):
            return TransientProviderError(f"{where}: timed out after {self.timeout:g}s {attempts}")
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            return TransientProviderError(f"{where}: cannot connect to {self._host()} ({cause}) {attempts}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._detail(exc)
            if status >= 500:
                return TransientProviderError(f"{where}: server error HTTP {status} {attempts}{detail}")
            if status in _TRANSIENT_4XX:
                return TransientProviderError(f"{where}: {_TRANSIENT_4XX[status]} HTTP {status} {attempts}{detail}")
            kind = _STATUS_NAMES.get(status, "request refused")
            return ProviderError(f"{where}: {kind} HTTP {status}{detail}")
        if isinstance(exc, openai.APIResponseValidationError):
            return InvalidOutput(f"{where}: response does not match the chat-completion format")
        return ProviderError(f"{where}: {type(exc).__name__}: {self._scrub(str(exc))}")

    def _attempts(self, exc: openai.OpenAIError) -> str:
        """How many requests the SDK made, from the retry counter it stamps on each one."""
        request = getattr(exc, "request", None)
        count = getattr(request, "headers", {}).get("x-stainless-retry-count") if request is not None else None
        if count is not None and str(count).isdigit():
            return f"after {int(count) + 1} attempt(s)"
        return f"after up to {self.max_retries + 1} attempt(s)"

    def _detail(self, exc: openai.APIStatusError) -> str:
        """The server's own error message, short and with anything key-like removed."""
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else body
        if not isinstance(message, str) or not message.strip():
            return ""
        code = f" [{exc.code}]" if exc.code else ""
        return f"{code}: {self._scrub(message)}"

    def _scrub(self, text: str) -> str:
        if self._api_key and self._api_key != PLACEHOLDER_API_KEY:
            text = text.replace(self._api_key, "[redacted]")
        text = _KEY_LIKE.sub(r"\1[redacted]", text)
        return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."

    def _host(self) -> str:
        url = self._client.base_url
        return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
