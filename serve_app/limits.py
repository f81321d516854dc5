"""Per-key rate limits: a token bucket for each API key, refused with 429 and Retry-After."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class RateLimit(BaseModel):
    """Sustained rate and burst of one key."""

    model_config = ConfigDict(extra="forbid")

    per_s: float = Field(gt=0, description="Requests per second a key may keep up.")
    burst: int = Field(ge=1, description="Requests a key may send at once after a pause.")


def _default_per_role() -> dict[str, RateLimit]:
    # Clients score payments at volume; people at the console need far less.
    return {
        "client": RateLimit(per_s=500, burst=1000),
        "analyst": RateLimit(per_s=20, burst=60),
        "admin": RateLimit(per_s=10, burst=30),
    }


class RateLimitConfig(BaseModel):
    """Limits by role, with optional overrides by key name.

    Each ingress replica keeps its own buckets, so with N replicas a key may
    reach N times these numbers in total.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    per_role: dict[str, RateLimit] = Field(default_factory=_default_per_role)
    per_key: dict[str, RateLimit] = Field(default_factory=dict)
    max_tracked_keys: int = Field(default=10_000, ge=1)


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Verdict:
    """Whether one request may pass, and if not, when to try again."""

    allowed: bool
    retry_after_s: int = 0
    limit: RateLimit | None = None


class RateLimiter:
    """Token buckets by key name; thread-safe, no I/O.

    Args:
        config: The limits.
        clock: Monotonic seconds; injectable so tests need no sleeps.
    """

    def __init__(
        self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def limit_for(self, name: str, role: str) -> RateLimit | None:
        if not self._config.enabled:
            return None
        return self._config.per_key.get(name) or self._config.per_role.get(role)

    def check(self, name: str, role: str) -> Verdict:
        """Takes one token from the key's bucket, or says how long until one is back."""
        limit = self.limit_for(name, role)
        if limit is None:
            return Verdict(allowed=True)
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                if len(self._buckets) >= self._config.max_tracked_keys:
                    self._forget_full_buckets(now)
                bucket = self._buckets[name] = _Bucket(tokens=float(limit.burst), updated=now)
            refill = (now - bucket.updated) * limit.per_s
            bucket.tokens = min(float(limit.burst), bucket.tokens + refill)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return Verdict(allowed=True, limit=limit)
            wait_s = (1.0 - bucket.tokens) / limit.per_s
        return Verdict(allowed=False, retry_after_s=max(1, math.ceil(wait_s)), limit=limit)

    def _forget_full_buckets(self, now: float) -> None:
        # A bucket idle long enough to be full again holds no state worth keeping.
        for name, bucket in list(self._buckets.items()):
            if now - bucket.updated > 60:
                del self._buckets[name]
        if len(self._buckets) >= self._config.max_tracked_keys:
            self._buckets.clear()
