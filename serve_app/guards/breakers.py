"""Circuit breakers (pybreaker) around the service's dependencies: database, storage, Redis,
the result cache. A dependency that keeps failing is not called for `reset_s`: requests get a
503 with Retry-After at once instead of piling up behind timeouts; then one trial call closes
the breaker again if the dependency is back. Errors that say nothing about the dependency's
health (a missing blob, a duplicate key) do not count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pybreaker
from sqlalchemy.exc import IntegrityError

from pipelines.errors import ServiceError
from serve_app.settings import BreakerSettings, get_settings

T = TypeVar("T")

_breakers: dict[str, pybreaker.CircuitBreaker] = {}


class BreakerOpen(Exception):
    """The dependency's breaker is open: fail now; `retry_after` seconds until a trial call."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"{name}: circuit open")
        self.name = name
        self.retry_after = retry_after


def breaker(name: str, settings: BreakerSettings | None = None) -> pybreaker.CircuitBreaker:
    if name not in _breakers:
        config = settings or get_settings().breakers
        _breakers[name] = pybreaker.CircuitBreaker(
            fail_max=config.fail_max,
            reset_timeout=config.reset_s,
            exclude=[ServiceError, IntegrityError],
            name=name,
        )
    return _breakers[name]


def guarded(name: str, fn: Callable[..., T], *args: Any) -> T:
    """Call `fn` through `name`'s breaker (blocking: run it in a worker thread)."""
    cb = breaker(name)
    try:
        result: T = cb.call(fn, *args)
    except pybreaker.CircuitBreakerError:
        raise BreakerOpen(name, cb.reset_timeout) from None
    return result


def states() -> dict[str, str]:
    """Each breaker's state (closed, open, half-open), for /health/."""
    return {name: str(cb.current_state) for name, cb in sorted(_breakers.items())}


def reset_all() -> None:
    """Forget every breaker (tests, and a settings change)."""
    _breakers.clear()
