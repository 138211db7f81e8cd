"""Circuit breakers (pybreaker) around the service's dependencies: database, storage, Redis,
the result cache. A dependency that keeps failing is not called for `reset_s`: requests get a
503 with Retry-After at once instead of piling up behind timeouts; then one trial call closes
the breaker again if the dependency is back. Errors that say nothing about the dependency's
health (a missing blob, a duplicate key) do not count."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
    """Call `fn` through `name`'s breaker (blocking: run it in a worker thread).

    The call itself runs outside the breaker's lock: pybreaker's `CircuitBreaker.call` holds
    that lock for the whole call, so every call to a dependency ran one at a time, whatever
    its thread pool, and one hung call held up all the others. Here the lock is only taken to
    ask whether the breaker is open and to count the outcome."""
    cb = breaker(name)
    if cb.current_state == pybreaker.STATE_OPEN and not _trial_due(cb):
        raise BreakerOpen(name, cb.reset_timeout)
    try:
        result = fn(*args)
    except BaseException as exc:
        _count(cb, exc)
        raise
    _count(cb, None)
    return result


def _trial_due(cb: pybreaker.CircuitBreaker) -> bool:
    """An open breaker lets a trial call through once reset_timeout has passed."""
    opened = cb._state_storage.opened_at
    return opened is None or datetime.now(UTC) >= opened + timedelta(seconds=cb.reset_timeout)


def _count(cb: pybreaker.CircuitBreaker, error: BaseException | None) -> None:
    """Feed a call's outcome to the breaker's state machine (which opens, closes or ignores it,
    as its `exclude` says); the caller keeps its own result or error."""

    def outcome() -> None:
        if error is not None:
            raise error

    try:
        cb.call(outcome)
    except pybreaker.CircuitBreakerError:
        pass  # this failure opened it, or another thread's did meanwhile
    except BaseException as exc:
        if exc is not error:
            raise


def states() -> dict[str, str]:
    """Each breaker's state (closed, open, half-open), for /health/."""
    return {name: str(cb.current_state) for name, cb in sorted(_breakers.items())}


def reset_all() -> None:
    """Forget every breaker (tests, and a settings change)."""
    _breakers.clear()
