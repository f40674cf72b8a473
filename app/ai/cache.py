"""Result cache: identical prompts to the same provider, model and template reuse the answer."""

from __future__ import annotations

import json
import logging
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class ResultCache:
    def __init__(self, redis: Redis | None, ttl_seconds: int) -> None:
        self.redis = redis if ttl_seconds > 0 else None
        self.ttl = ttl_seconds

    @staticmethod
    def key(provider: str, model: str, template_version: str, prompt_hash: str) -> str:
        return f"countersign:aicache:{provider}:{model}:{template_version}:{prompt_hash}"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.redis is None:
            return None
        try:
            raw = self.redis.get(key)
        except RedisError as exc:  # a cache is an optimisation: never fail the analysis for it
            log.warning("AI cache read failed: %s", exc.__class__.__name__)
            return None
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.redis is None:
            return
        try:
            self.redis.set(key, json.dumps(value), ex=self.ttl)
        except RedisError as exc:
            log.warning("AI cache write failed: %s", exc.__class__.__name__)
