"""Load a model engine once, and keep why it failed instead of failing the replica.

A deployment whose weights cannot be loaded stays up: it answers 503 with the reason, its
status says why, and every other deployment keeps working. Restarting the replica would not
fix a missing file, so the load failure does not fail Serve's health check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pipelines.errors import ModelUnavailable

T = TypeVar("T")
log = logging.getLogger("ray.serve")


class EngineSlot(Generic[T]):
    def __init__(self, name: str, factory: Callable[[], T]) -> None:
        self.name = name
        self.engine: T | None = None
        self.error: str | None = None
        started = time.monotonic()
        try:
            self.engine = factory()
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
            self.error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("%s could not be loaded: %s", name, self.error)
        self.load_seconds = round(time.monotonic() - started, 2)

    def get(self) -> T:
        if self.engine is None:
            raise ModelUnavailable(f"{self.name} is unavailable: {self.error}")
        return self.engine

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.engine is not None,
            "error": self.error,
            "load_seconds": self.load_seconds,
        }
