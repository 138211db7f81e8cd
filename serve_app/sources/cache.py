"""Fetched sources kept by name for a while (SOURCE_CACHE_TTL_S), within a memory budget
(SOURCE_CACHE_BYTES), per replica; and one fetch at a time per name: requests for a source
already being fetched wait for that fetch instead of starting their own (as thumbor's URL
locks do)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import TTLCache


@dataclass(frozen=True)
class Fetched:
    data: bytes
    sha256: str


class SourceCache:
    def __init__(self, ttl_s: float, max_bytes: int) -> None:
        self.enabled = ttl_s > 0 and max_bytes > 0
        self._kept: TTLCache[str, Fetched] = TTLCache(
            maxsize=max(max_bytes, 1), ttl=max(ttl_s, 1e-9), getsizeof=lambda f: len(f.data)
        )
        self._fetching: dict[str, asyncio.Future[Fetched]] = {}  # event loop only

    async def get(self, name: str, fetch: Callable[[], Awaitable[Fetched]]) -> tuple[Fetched, bool]:
        """The source and whether it came from here (kept or already being fetched)."""
        if self.enabled and (kept := self._kept.get(name)) is not None:
            return kept, True
        if (pending := self._fetching.get(name)) is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[Fetched] = asyncio.get_running_loop().create_future()
        self._fetching[name] = future
        try:
            fetched = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            self._fetching.pop(name, None)
        future.set_result(fetched)
        if self.enabled and len(fetched.data) <= self._kept.maxsize:
            self._kept[name] = fetched
        return fetched, False
