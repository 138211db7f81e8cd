"""Load a model engine once, and keep why it failed instead of failing the replica.

A deployment whose weights cannot be loaded stays up: it answers 503 with the reason, its
status says why, and every other deployment keeps working. Restarting the replica would not
fix a missing file, so the load failure does not fail Serve's health check.

A lazy slot loads on its first request instead of at start: an engine nobody asks for (the
CNN engines that are not the default) then costs no memory, nor a torch import, at idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pipelines.errors import ModelUnavailable

T = TypeVar("T")
log = logging.getLogger("ray.serve")

# A failed lazy load is tried again after this long, not on every request: a load takes
# seconds, and a missing file fails every time; but a lazy load runs while the replica serves,
# where a passing cause (memory pressure, a full disk) is likelier than at start, and no
# replica restart would ever retry it for us.
LAZY_RETRY_S = 60.0


class EngineSlot(Generic[T]):
    def __init__(self, name: str, factory: Callable[[], T], *, lazy: bool = False) -> None:
        self.name = name
        self.lazy = lazy
        self.engine: T | None = None
        self.error: str | None = None
        self.load_seconds: float | None = None
        self._factory = factory
        self._failed_at = 0.0
        self._loading: asyncio.Task[None] | None = None
        if not lazy:
            self._finish(self._run())

    def _run(self) -> tuple[T | None, str | None, float]:
        started = time.monotonic()
        try:
            return self._factory(), None, time.monotonic() - started
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
            return None, f"{type(exc).__name__}: {exc}"[:500], time.monotonic() - started

    def _finish(self, outcome: tuple[T | None, str | None, float]) -> None:
        self.engine, self.error, seconds = outcome
        self.load_seconds = round(seconds, 2)
        if self.error is not None:
            self._failed_at = time.monotonic()
            log.error("%s could not be loaded: %s", self.name, self.error)

    def get(self) -> T:
        """The engine if loaded; for request paths of lazy slots, use aget()."""
        if self.engine is None:
            raise ModelUnavailable(f"{self.name} is unavailable: {self.error or 'not loaded yet'}")
        return self.engine

    async def aget(self) -> T:
        """The engine, loading a lazy slot first. One load task is shared by concurrent first
        requests, rather than a lock around the load: a request cancelled mid-load (its client
        left) must neither cancel the load that others wait for nor make the next one redo it."""
        if self.engine is None and self.lazy:
            if self._loading is None and not self._backing_off():
                self._loading = asyncio.create_task(self._load())
            if self._loading is not None:
                await asyncio.shield(self._loading)
        return self.get()

    def _backing_off(self) -> bool:
        return self.error is not None and time.monotonic() - self._failed_at < LAZY_RETRY_S

    async def _load(self) -> None:
        log.info("loading %s on its first request", self.name)
        try:  # in a worker thread: the replica's event loop keeps serving during a long load
            self._finish(await asyncio.to_thread(self._run))
        finally:
            self._loading = None

    def status(self) -> dict[str, Any]:
        # "ready": can serve, now or on demand; only a failed load makes it false.
        return {
            "ready": self.error is None,
            "loaded": self.engine is not None,
            "lazy": self.lazy,
            "loading": self._loading is not None,
            "error": self.error,
            "load_seconds": self.load_seconds,
        }
