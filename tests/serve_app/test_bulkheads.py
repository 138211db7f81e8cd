"""Bulkheads (issue #15, item 10): each dependency on a bounded thread pool of its own, and a
bounded backlog of result-cache writes. With the storage hung, requests that need only the
database or only the image work are answered as if nothing were wrong; storage calls past
their pool's bound are refused at once, and cache writes past theirs are dropped and counted."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.limits import Limits
from serve_app import context
from serve_app.guards import breakers
from serve_app.guards.guard import Guard
from serve_app.ingress import api
from serve_app.security import ApiKeys
from serve_app.services import offload
from serve_app.services.ai import AiService
from serve_app.services.image_work import LocalImageWork
from serve_app.services.images import ImageService
from serve_app.services.tasks import TaskService
from serve_app.settings import CacheSettings, PoolSettings, TaskSettings
from serve_app.store.db import Database
from serve_app.store.result_cache import ResultCache
from serve_app.store.storage import BlobStore
from serve_app.store.task_store import TaskStore
from tests.conftest import encode, photo

SMALL_POOLS = PoolSettings(storage_threads=2, cache_threads=2, max_waiting=2)


@pytest.fixture
def small_pools() -> Iterator[None]:
    offload.configure_pools(SMALL_POOLS)
    breakers.reset_all()
    try:
        yield
    finally:
        offload.configure_pools(None)
        breakers.reset_all()


class HungStorage:
    """Make a BlobStore's calls block (as a storage that accepts connections and never
    answers) until released; counts the calls that got stuck."""

    def __init__(self, store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.released = threading.Event()
        self.stuck = 0
        for name in ("get", "put", "ping", "exists"):
            monkeypatch.setattr(store, name, self._hang(getattr(store, name)))

    def _hang(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def hung(*args: Any) -> Any:
            self.stuck += 1
            self.released.wait(timeout=60)
            return call(*args)

        return hung


async def _until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def test_a_hung_storage_stalls_only_what_needs_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pools: None
) -> None:
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.migrate()
    store = BlobStore(f"file://{tmp_path}/blobs")
    cache = ResultCache(db, store, CacheSettings())
    images = ImageService(
        LocalImageWork(Limits(), threads=2), db, store, Limits(), cache, max_pending_writes=3
    )
    ai = AiService(None, None, None, None, Limits())  # type: ignore[arg-type]
    context.set_services(images, ai, TaskService(images, TaskStore(db), None, TaskSettings()))  # type: ignore[arg-type]
    context.set_guard(Guard(ApiKeys({}), None))
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as http:
        stored = []
        for name in ("coffee", "chelsea"):
            files = {"file": (f"{name}.jpg", encode(photo(name), "JPEG"), "image/jpeg")}
            stored.append((await http.post("/api/v1/upload", files=files)).json()["id"])
        hung = HungStorage(store, monkeypatch)
        # Many downloads of stored bytes: each needs the storage, which never answers. More
        # of them than asyncio's default pool has threads (min(32, cores + 4)).
        downloads = [
            asyncio.create_task(http.get(f"/api/v1/images/{stored[0]}")) for _ in range(40)
        ]
        storage = offload.bulkhead("storage")
        await _until(lambda: storage.pending == storage.capacity)
        refused = [t for t in downloads if t.done()]
        assert refused and all(t.result().status_code == 503 for t in refused)
        assert refused[0].result().json()["error"]["code"] == "overloaded"

        async def answered_soon(request: Any) -> httpx.Response:
            return await asyncio.wait_for(request, timeout=5)

        # Only the database: another image's facts.
        meta = await answered_soon(http.get(f"/api/v1/images/{stored[1]}/meta"))
        assert meta.status_code == 200 and meta.json()["id"] == stored[1]
        # Only the image work: new bytes each time, whose results the cache cannot store.
        for width in range(40, 48):
            files = {"file": ("c.jpg", encode(photo("astronaut"), "JPEG"), "image/jpeg")}
            resized = await answered_soon(
                http.post("/api/v1/resize", files=files, data={"width": str(width)})
            )
            assert resized.status_code == 200 and resized.headers["x-image-width"] == str(width)
        # The writes waiting on the storage are bounded; the rest were dropped and counted.
        assert len(images._saving) <= 3
        assert images.cache_writes_dropped >= 8 - 3
        assert hung.stuck <= SMALL_POOLS.storage_threads + SMALL_POOLS.cache_threads
        hung.released.set()
        finished = await asyncio.wait_for(asyncio.gather(*downloads), timeout=30)
        assert {a.status_code for a in finished} <= {200, 503}
        await asyncio.wait_for(asyncio.gather(*images._saving), timeout=30)
