"""Shared blobs are never deleted under a live row, on both stacks: the races between a cache
eviction and a save of the same bytes, forced in both orders."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import update

from pipelines.limits import Limits
from pipelines.pipeline import ProcessedImage
from serve_app.errors import NotFound
from serve_app.services.image_work import LocalImageWork
from serve_app.services.images import ImageService
from serve_app.settings import CacheSettings
from serve_app.store import blobs
from serve_app.store.models import BlobPin, CachedResult
from serve_app.store.result_cache import ResultCache
from serve_app.store.storage import sha256_hex
from tests.conftest import encode, photo
from tests.serve_app.conftest import Backend


def _service(backend: Backend) -> ImageService:
    cache = ResultCache(backend.db, backend.store, CacheSettings(max_age_s=3600))
    work = LocalImageWork(Limits(), threads=2)
    return ImageService(work, backend.db, backend.store, Limits(), cache)


def _cached(service: ImageService, data: bytes) -> str:
    """A cache entry for these bytes, expired, its pin old: eviction will want its blob."""
    assert service.cache is not None
    result = ProcessedImage(
        data=data, format="jpeg", media_type="image/jpeg", width=1, height=1,
        source_format="jpeg", source_width=1, source_height=1, elapsed_ms=0.0,
    )  # fmt: skip
    service.cache.put("k" * 64, result)
    sha = sha256_hex(data)
    with service.db.session() as session, session.begin():
        session.execute(update(CachedResult).values(created_at=_long_ago()))
        session.execute(update(BlobPin).where(BlobPin.sha256 == sha).values(pinned_at=_long_ago()))
    return sha


def _long_ago() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(days=2)


async def test_an_upload_between_the_check_and_its_row_keeps_its_blob(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload stored its blob, not yet its row, when eviction decides: the blob stays."""
    service = _service(backend)
    data = encode(photo("coffee"), "JPEG")
    _cached(service, data)
    stored, go_on = asyncio.Event(), asyncio.Event()
    add = service.db.add
    loop = asyncio.get_running_loop()

    def add_later(record: Any) -> Any:  # the upload, paused between its blob and its row
        loop.call_soon_threadsafe(stored.set)
        asyncio.run_coroutine_threadsafe(go_on.wait(), loop).result(10)
        return add(record)

    monkeypatch.setattr(service.db, "add", add_later)
    uploading = asyncio.create_task(service.upload(data))
    await asyncio.wait_for(stored.wait(), 10)
    assert service.cache is not None
    assert await asyncio.to_thread(service.cache.evict) == 1
    go_on.set()
    record = await uploading
    _, got = await service.load(record.id)
    assert got == data


async def test_a_save_during_a_blob_delete_waits_and_keeps_its_blob(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eviction decided to delete; a save of the same bytes comes in before the blob is gone:
    the save waits for the decision to end, then stores the blob again."""
    service = _service(backend)
    data = encode(photo("coffee"), "JPEG")
    sha = _cached(service, data)
    loop = asyncio.get_running_loop()
    uploads: list[Any] = []
    release = blobs.release

    def racing_release(*args: Any, **kwargs: Any) -> bool:
        def save_meanwhile() -> None:
            uploads.append(asyncio.run_coroutine_threadsafe(service.upload(data), loop))
            time.sleep(1.0)  # the save reaches its pin and must wait here

        return release(*args, before_delete=save_meanwhile, **kwargs)

    monkeypatch.setattr(blobs, "release", racing_release)
    assert service.cache is not None
    assert await asyncio.to_thread(service.cache.evict) == 1
    record = await asyncio.wrap_future(uploads[0])
    _, got = await service.load(record.id)
    assert got == data
    assert backend.store.exists(backend.store.key_for(sha))


async def test_a_blob_no_row_names_is_deleted_after_the_grace(backend: Backend) -> None:
    service = _service(backend)
    data = encode(photo("coffee"), "JPEG")
    sha = _cached(service, data)
    record = await service.upload(data)
    assert service.cache is not None and service.cache.evict() == 1
    key = backend.store.key_for(sha)
    assert backend.store.exists(key)  # the upload still names it
    assert blobs.collect(backend.db, backend.store, limit=10, grace_s=0) == 0
    with backend.db.session() as session, session.begin():
        session.delete(session.get(type(record), record.id))
    assert blobs.collect(backend.db, backend.store, limit=10) == 0  # pinned just now
    time.sleep(0.05)
    assert blobs.collect(backend.db, backend.store, limit=10, grace_s=0) == 1
    assert not backend.store.exists(key)
    with pytest.raises(NotFound):
        backend.store.get(key)
