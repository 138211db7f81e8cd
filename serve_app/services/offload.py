"""Blocking calls to a dependency (database, storage, Redis, the result cache, health probes),
run off the event loop through the dependency's circuit breaker, each dependency on a bounded
thread pool of its own (a bulkhead).

One shared pool (asyncio's default executor, 6 threads on 2 cores) let a dependency that hangs
take every thread: with storage stuck, requests that needed only the database, and the health
probes, queued behind it. Here a hung storage can hold at most its own `threads`, with up to
`max_waiting` more calls queued; past that a call is refused at once (503 `overloaded`) and
every other dependency keeps its threads. Sizes: `PoolSettings` (POOLS_*).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from pipelines.errors import ServiceError
from serve_app.errors import Unavailable
from serve_app.guards.breakers import BreakerOpen, guarded
from serve_app.settings import PoolSettings, get_settings

log = logging.getLogger("ray.serve")
T = TypeVar("T")


class Bulkhead:
    """A thread pool of `threads` for one dependency, admitting at most `max_waiting` calls
    beyond them. A call counts until its thread finishes, not until its caller stops waiting:
    a caller that gives up (a timeout, a client gone) does not free a thread that is still
    stuck in the dependency."""

    def __init__(self, name: str, threads: int, max_waiting: int) -> None:
        self.name = name
        self.threads = threads
        self.capacity = threads + max_waiting
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"pool-{name}")
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Calls running or queued."""
        return self._pending

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            if self._pending >= self.capacity:
                raise Unavailable(
                    f"the {self.name} is busy; try again shortly",
                    code="overloaded",
                    retry_after=1,
                )
            self._pending += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))


_bulkheads: dict[str, Bulkhead] = {}
_bulkheads_lock = threading.Lock()
_sizes: PoolSettings | None = None


def bulkhead(name: str) -> Bulkhead:
    """The pool of dependency `name` ("database", "storage", "redis", "result cache" and
    "result cache writes", "health"), made on first use with its configured size."""
    with _bulkheads_lock:
        if name not in _bulkheads:
            threads, waiting = (_sizes or get_settings().pools).size(name)
            _bulkheads[name] = Bulkhead(name, threads, waiting)
        return _bulkheads[name]


def configure_pools(sizes: PoolSettings | None = None) -> None:
    """Size the pools made from now on (None: from the settings) and forget the current ones;
    calls already running on them finish there."""
    global _sizes
    with _bulkheads_lock:
        _sizes = sizes
        _bulkheads.clear()


async def offload(
    what: str,
    fn: Callable[..., T],
    *args: Any,
    pool: str | None = None,
    wait_s: float | None = None,
) -> T:
    """Run a blocking call to a dependency on its own pool (`pool`, by default named as the
    dependency), through its circuit breaker: an outage becomes a 503, and while the breaker
    is open one that costs no waiting. `wait_s`: give up (503) after that long; a call not yet
    started is then withdrawn, one already running finishes in its thread."""
    try:
        call = bulkhead(pool or what).run(guarded, what, fn, *args)
        return await (call if wait_s is None else asyncio.wait_for(call, wait_s))
    except ServiceError:
        raise
    except BreakerOpen as exc:
        raise Unavailable(
            f"the {what} is unavailable; try again shortly", retry_after=exc.retry_after
        ) from None
    except (SQLAlchemyError, OSError, TimeoutError) as exc:  # asyncio's timeout is TimeoutError
        log.warning("%s unavailable: %r", what, exc)
        raise Unavailable(f"the {what} is unavailable; try again shortly") from None
