"""Retention on both stacks: uploads, results and ended tasks go past their age, in bounded
batches, through the one blob-deleting path; an image a task names stays while the task does;
off keeps everything. The sweeper counts deletions and tasks into metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from pipelines.limits import Limits
from serve_app.observe import metrics
from serve_app.services import task_runner
from serve_app.services.image_work import LocalImageWork
from serve_app.services.images import ImageService
from serve_app.settings import CacheSettings, RetentionSettings, TaskSettings
from serve_app.store.models import BlobPin, ImageRecord, TaskRecord
from serve_app.store.result_cache import ResultCache
from serve_app.store.retention import Retention
from serve_app.store.task_store import Lease, TaskStore
from tests.conftest import encode, photo
from tests.serve_app.conftest import Backend

DAY = 86_400


def _service(backend: Backend) -> ImageService:
    cache = ResultCache(backend.db, backend.store, CacheSettings())
    return ImageService(
        LocalImageWork(Limits(), threads=2), backend.db, backend.store, Limits(), cache
    )


def _age(backend: Backend, model: Any, ids: list[str], column: str, days: float) -> None:
    then = datetime.now(UTC) - timedelta(days=days)
    with backend.db.session() as session, session.begin():
        session.execute(update(model).where(model.id.in_(ids)).values({column: then}))
        session.execute(update(BlobPin).values(pinned_at=then))


def _exists(backend: Backend, image_id: str) -> bool:
    return backend.db.get_image(image_id) is not None


async def _uploads(service: ImageService, names: list[str]) -> list[ImageRecord]:
    return [await service.upload(encode(photo(name), "PNG")) for name in names]


async def test_old_uploads_and_results_go_with_their_blobs_and_a_tasks_input_stays(
    backend: Backend,
) -> None:
    service = _service(backend)
    old, used, fresh = await _uploads(service, ["coffee", "chelsea", "astronaut"])
    result = await service.store_result(
        (await service.process_cached(encode(photo("coffee"), "PNG"), _spec())).result,
        _spec(),
        old.id,
    )
    await asyncio.gather(*service._saving)  # the cache entry is written
    store = TaskStore(backend.db)
    live, _ = store.create('{"steps": []}', [used.id], fingerprint="fp")
    _age(backend, ImageRecord, [old.id, used.id, result.id], "created_at", 3)
    retention = Retention(
        backend.db, backend.store, RetentionSettings(uploads_s=DAY, results_s=DAY)
    )
    done = retention.sweep()
    assert (done["uploads"], done["results"]) == (1, 1)
    assert not _exists(backend, old.id) and not _exists(backend, result.id)
    assert _exists(backend, used.id) and _exists(backend, fresh.id)  # a live task's; young
    assert not backend.store.exists(old.blob_key)
    assert backend.store.exists(result.blob_key)  # the same bytes are a cache entry's: shared
    assert backend.store.exists(used.blob_key)
    _, data = await service.load(used.id)  # the live task can still read its input
    assert data
    assert retention.sweep() == {"tasks": 0, "results": 0, "uploads": 0, "blobs": 0}
    assert store.view(live.id) is not None


async def test_ended_tasks_go_then_their_images_and_batches_are_bounded(
    backend: Backend,
) -> None:
    service = _service(backend)
    sources = await _uploads(service, ["coffee", "chelsea"])
    store = TaskStore(backend.db)
    ids = []
    for source in sources:
        task, _ = store.create('{"steps": []}', [source.id], fingerprint="fp")
        claimed = store.claim(task.id, "r", lease_s=30)
        assert claimed is not None
        assert store.item_succeeded(task.id, 0, Lease.of(claimed), None, [])
        assert store.finish(task.id, Lease.of(claimed)) == "succeeded"
        ids.append(task.id)
    running, _ = store.create('{"steps": []}', [sources[0].id], fingerprint="fp")
    assert store.claim(running.id, "r", lease_s=30) is not None
    _age(backend, TaskRecord, ids, "finished_at", 3)
    _age(backend, ImageRecord, [s.id for s in sources], "created_at", 3)
    settings = RetentionSettings(uploads_s=DAY, tasks_s=DAY, batch=1)
    retention = Retention(backend.db, backend.store, settings)
    assert retention.sweep()["tasks"] == 1  # one per round
    done = retention.sweep()
    assert done["tasks"] == 1 and done["uploads"] == 1  # the second's source, no task left
    assert [store.view(i) for i in ids] == [None, None]
    assert _exists(backend, sources[0].id)  # the running task still reads it
    assert store.view(running.id) is not None


async def test_retention_off_keeps_everything(backend: Backend) -> None:
    service = _service(backend)
    (old,) = await _uploads(service, ["coffee"])
    _age(backend, ImageRecord, [old.id], "created_at", 3650)
    assert Retention(backend.db, backend.store, RetentionSettings()).sweep()["uploads"] == 0
    assert _exists(backend, old.id) and backend.store.exists(old.blob_key)


async def test_the_sweeper_counts_deletions_and_tasks(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[tuple[str, Any, dict[str, str]]] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
            recorded.append((self.name, value, tags or {}))

        def set(self, value: float, tags: dict[str, str] | None = None) -> None:
            recorded.append((self.name, value, tags or {}))

    monkeypatch.setattr(metrics, "retention_deleted", lambda: Recorder("retention"))
    monkeypatch.setattr(metrics, "tasks", lambda: Recorder("tasks"))
    service = _service(backend)
    (old,) = await _uploads(service, ["coffee"])
    _age(backend, ImageRecord, [old.id], "created_at", 3)
    retention = Retention(backend.db, backend.store, RetentionSettings(uploads_s=DAY))
    assert service.cache is not None
    done = await task_runner.keep_house(service.cache, retention)
    assert done["uploads"] == 1
    assert ("retention", 1, {"kind": "uploads"}) in recorded
    store = TaskStore(backend.db)
    (waiting,) = await _uploads(service, ["chelsea"])
    for _ in range(2):
        store.create('{"steps": []}', [waiting.id], fingerprint="f")
    task, _ = store.create('{"steps": []}', [waiting.id], fingerprint="f")
    assert store.claim(task.id, "r", lease_s=30) is not None
    worker = task_runner.TaskWorker(service, None, store, TaskSettings())  # type: ignore[arg-type]
    recorded.clear()
    assert await worker.count() == {"queued": 2, "running": 1}
    assert ("tasks", 2, {"status": "queued"}) in recorded
    assert ("tasks", 1, {"status": "running"}) in recorded


def _spec() -> Any:
    from pipelines.spec import PipelineSpec

    return PipelineSpec.model_validate({"steps": [{"op": "resize", "width": 32}]})
