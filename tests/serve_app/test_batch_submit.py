"""A batch's submission on the real stores (#15 item 1): its uploads take the ingress's image
queue a few at a time, so a batch at TASKS_MAX_ITEMS is never refused for its size, and a
batch refused part way leaves nothing stored."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from pipelines.errors import BadImage
from pipelines.limits import Limits
from pipelines.tasks import TaskPipeline
from serve_app.services.image_work import LocalImageWork
from serve_app.services.images import ImageService
from serve_app.services.tasks import TaskService
from serve_app.settings import TaskSettings
from serve_app.store import blobs
from serve_app.store.models import ImageRecord, TaskRecord
from serve_app.store.storage import sha256_hex
from serve_app.store.task_store import TaskStore
from tests.conftest import encode, photo
from tests.serve_app.conftest import Backend

PIPELINE = TaskPipeline.model_validate({"steps": [{"op": "resize", "width": 16}]})


def _service(backend: Backend, threads: int, max_queued: int) -> TaskService:
    work = LocalImageWork(Limits(), threads=threads, max_queued=max_queued)
    images = ImageService(work, backend.db, backend.store, Limits())
    return TaskService(images, TaskStore(backend.db), None, TaskSettings())  # type: ignore[arg-type]


def _jpegs(count: int) -> list[bytes]:
    return [encode(photo("coffee").resize((40 + i, 30)), "JPEG") for i in range(count)]


def _count(backend: Backend, model: type[ImageRecord] | type[TaskRecord]) -> int:
    with backend.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_batch_of_max_items_on_a_queue_of_one_is_accepted(backend: Backend) -> None:
    """An image queue of one slot (1 thread, nothing queued) takes a 100-file batch: its
    uploads wait their turn instead of each asking for a slot at once."""
    tasks = _service(backend, threads=1, max_queued=0)
    view, created = await tasks.submit(PIPELINE, _jpegs(100), [])
    assert created and view.task.total == 100 and len(view.items) == 100
    assert _count(backend, ImageRecord) == 100


async def test_a_refused_batch_leaves_nothing_stored(backend: Backend) -> None:
    """A damaged file part way through (its header reads, its decode fails) refuses the batch
    after others were stored: those rows and blobs go, and a blob an earlier upload shares
    stays with that upload."""
    tasks = _service(backend, threads=2, max_queued=32)
    files = _jpegs(12)
    earlier = await tasks.images.upload(files[0])
    damaged = files[11][:-200]  # the header reads; the decode fails
    with pytest.raises(BadImage):
        await tasks.submit(PIPELINE, [*files[:8], damaged, *files[8:11]], [])
    await asyncio.sleep(1)  # any upload still in flight when the error came has ended
    assert _count(backend, TaskRecord) == 0
    assert _count(backend, ImageRecord) == 1  # the earlier upload alone
    # Their blobs are the sweeper's, through the one atomic path (serve_app/store/blobs.py),
    # once their writers' pins are old: here, at once.
    blobs.collect(backend.db, backend.store, 100, grace_s=0)
    assert backend.store.get(earlier.blob_key) == files[0]
    for data in files[1:11]:
        assert not backend.store.exists(backend.store.key_for(sha256_hex(data)))
