"""Per-client rate limits with the `limits` library: a per-minute allowance and a per-second
burst, as moving windows. With REDIS_URL the counts live in Redis, where `limits` updates them
atomically (Lua), so every ingress replica shares one budget per client; without it each
replica counts in process.

Redis down: by default the limiter fails open (requests pass, a warning is logged, the Redis
breaker opens so later requests do not wait on it) — the limits protect capacity, and refusing
every request because the limiter's store is away would turn a Redis outage into a full one.
RATE_LIMIT_FAIL_OPEN=false makes it fail closed: 503 with Retry-After.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from serve_app.errors import Unavailable
from serve_app.guards.breakers import BreakerOpen, guarded
from serve_app.services.offload import bulkhead
from serve_app.settings import RateLimitSettings

log = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the per-minute window frees a request
    retry_after: int = 0

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        self.shared = bool(settings.redis_url)
        uri = settings.redis_url or "memory://"
        options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5} if self.shared else {}
        self.storage = storage_from_string(uri, wrap_exceptions=True, **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_minute: RateLimitItem = RateLimitItemPerMinute(settings.per_minute)
        self.burst: RateLimitItem = RateLimitItemPerSecond(settings.burst)

    def _check(self, identity: str) -> Decision:
        for item in (self.burst, self.per_minute):
            if not self.limiter.hit(item, identity):
                stats = self.limiter.get_window_stats(item, identity)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                minute = self.limiter.get_window_stats(self.per_minute, identity)
                return Decision(
                    False,
                    self.settings.per_minute,
                    minute.remaining,
                    max(0, math.ceil(minute.reset_time - time.time())),
                    retry_after=wait,
                )
        minute = self.limiter.get_window_stats(self.per_minute, identity)
        reset = max(0, math.ceil(minute.reset_time - time.time()))
        return Decision(True, self.settings.per_minute, minute.remaining, reset)

    async def check(self, identity: str) -> Decision:
        try:
            if self.shared:  # on Redis's own thread pool (a bulkhead), through its breaker
                return await bulkhead("redis").run(guarded, "redis", self._check, identity)
            return self._check(identity)  # in memory: no I/O, no thread
        except (StorageError, BreakerOpen, Unavailable) as exc:  # Unavailable: its pool full
            if not self.settings.fail_open:
                wait = None if isinstance(exc, StorageError) else exc.retry_after
                raise Unavailable("the rate limiter is unavailable", retry_after=wait) from None
            if isinstance(exc, StorageError):
                log.warning("rate limiter store unreachable, failing open: %r", exc)
            return Decision(True, self.settings.per_minute, self.settings.per_minute, 60)

    def ping(self) -> dict[str, object]:
        """For readiness: raises when Redis does not answer."""
        if self.shared and not self.storage.check():
            raise ConnectionError("Redis does not answer")
        return {"backend": "redis" if self.shared else "memory"}
