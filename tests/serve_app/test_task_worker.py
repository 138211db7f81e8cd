"""The task runner's logic on both stacks, with the real image and face code in-process:
a batch runs to the end, AI steps read the image as the steps before left it, a runner that
dies is replaced after its lease, and a task that keeps killing runners is failed with why."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deployments.face_detector import FaceDetector
from deployments.preprocessor import Preprocessor
from pipelines.errors import BadImage
from pipelines.limits import Limits
from pipelines.tasks import TaskPipeline
from serve_app.services.ai import AiService
from serve_app.services.image_work import RemoteImageWork
from serve_app.services.images import ImageService
from serve_app.services.task_runner import TaskWorker
from serve_app.settings import CacheSettings, TaskSettings
from serve_app.store.result_cache import ResultCache
from serve_app.store.task_store import Lease, TaskStore
from tests.conftest import ASTRONAUT_FACE, best_iou, decode, encode, photo
from tests.serve_app.conftest import Backend
from tests.serve_app.inprocess import InProcessHandle

PIPELINE = TaskPipeline.model_validate(
    {
        "steps": [
            {"op": "resize", "width": 256},
            {"op": "detect_faces"},
            {"op": "filter", "name": "sharpen"},
            {"op": "convert", "format": "webp"},
        ]
    }
)


def _worker(backend: Backend, **settings: Any) -> TaskWorker:
    pre = InProcessHandle(Preprocessor)
    faces = InProcessHandle(FaceDetector)
    images = ImageService(
        RemoteImageWork(pre, Limits()),  # type: ignore[arg-type]
        backend.db, backend.store, Limits(),
        ResultCache(backend.db, backend.store, CacheSettings()),
    )  # fmt: skip
    ai = AiService(pre, None, None, faces, Limits())  # type: ignore[arg-type]
    options = {"lease_s": 1.0, "item_concurrency": 2} | settings
    return TaskWorker(images, ai, TaskStore(backend.db), TaskSettings.model_validate(options))


async def _upload(worker: TaskWorker, count: int) -> list[str]:
    data = encode(photo("astronaut"), "JPEG", quality=90)
    return [(await worker.images.upload(data)).id for _ in range(count)]


async def _until_idle(worker: TaskWorker) -> None:
    while worker.active:
        await asyncio.gather(*worker.active.values(), return_exceptions=True)


def _create(worker: TaskWorker, sources: list[str], pipeline: TaskPipeline = PIPELINE) -> str:
    task, _ = worker.store.create(pipeline.model_dump_json(), sources, fingerprint="fp")
    return task.id


async def test_a_batch_runs_to_the_end(backend: Backend) -> None:
    worker = _worker(backend)
    task_id = _create(worker, await _upload(worker, 3))
    assert await worker.start(task_id)
    await _until_idle(worker)
    view = worker.store.view(task_id)
    assert view is not None and view.task.status == "succeeded", view.task.error
    assert view.counts() == {"done": 3, "succeeded": 3, "failed": 0, "total": 3}
    for item in view.items:
        assert item.result_image_id is not None
        record, data = await worker.images.load(item.result_image_id)
        assert (record.kind, record.format, record.width) == ("result", "webp", 256)
        assert decode(data).size == (256, 256)
        # detect_faces ran on the 256 px image: the face box scaled by 0.5
        found = json.loads(item.results or "[]")
        assert found[0]["op"] == "detect_faces"
        x1, y1, x2, y2 = (c * 0.5 for c in ASTRONAUT_FACE)
        assert best_iou((x1, y1, x2, y2), found[0]["faces"]) > 0.5


async def test_a_bad_item_fails_alone(backend: Backend) -> None:
    worker = _worker(backend)
    good = await _upload(worker, 1)
    tiny = (await worker.images.upload(encode(photo("coffee").resize((20, 20)), "PNG"))).id
    crop = TaskPipeline.model_validate(
        {"steps": [{"op": "crop", "x": 100, "y": 100, "width": 50, "height": 50}]}
    )
    task_id = _create(worker, [*good, tiny], crop)
    assert await worker.start(task_id)
    await _until_idle(worker)
    view = worker.store.view(task_id)
    assert view is not None and view.task.status == "partially_failed"
    assert [i.status for i in view.items] == ["succeeded", "failed"]
    assert view.items[1].error_code == "invalid_parameter"


async def test_a_dead_runners_task_is_resumed_after_its_lease(backend: Backend) -> None:
    worker = _worker(backend)
    task_id = _create(worker, await _upload(worker, 2))
    # Another runner claimed it, finished one item, then died without a word.
    dead = worker.store.claim(task_id, "dead-runner", lease_s=1.0)
    assert dead is not None
    lease = Lease.of(dead)
    worker.store.item_succeeded(task_id, 0, lease, None, [{"op": "note", "by": "dead-runner"}])
    worker.store.item_running(task_id, 1, lease)
    assert await worker.sweep() == 0  # its lease is still fresh
    time.sleep(1.2)
    assert await worker.sweep() == 1
    await _until_idle(worker)
    view = worker.store.view(task_id)
    assert view is not None and view.task.status == "succeeded"
    assert view.task.attempts == 2 and view.task.runner == worker.name
    assert view.items[0].results and "dead-runner" in view.items[0].results  # not redone
    assert view.items[1].result_image_id is not None


async def test_a_task_that_keeps_killing_runners_is_failed_with_the_reason(
    backend: Backend,
) -> None:
    worker = _worker(backend, max_attempts=2)
    task_id = _create(worker, await _upload(worker, 1))
    for runner in ("dead-1", "dead-2"):
        assert worker.store.claim(task_id, runner, lease_s=0.0) is not None
        time.sleep(0.05)
    time.sleep(1.1)
    assert await worker.sweep() == 1
    await _until_idle(worker)
    view = worker.store.view(task_id)
    assert view is not None and view.task.status == "failed"
    assert "gave up after 2 attempts" in (view.task.error or "")
    assert view.items[0].error_code == "task_failed"


@pytest.mark.parametrize("max_active", [1])
async def test_a_runner_takes_no_more_than_max_active(backend: Backend, max_active: int) -> None:
    worker = _worker(backend, max_active=max_active)
    sources = await _upload(worker, 1)
    first, second = _create(worker, sources), _create(worker, sources)
    assert await worker.sweep() == 1
    assert await worker.sweep() == 0  # full
    await _until_idle(worker)
    assert await worker.sweep() == 1
    await _until_idle(worker)
    for task_id in (first, second):
        view = worker.store.view(task_id)
        assert view is not None and view.task.status == "succeeded"


class _PausableStore(TaskStore):
    """A runner's store whose lease renewals stall while `paused` is clear: the runner's
    process is frozen (SIGSTOP, a long GC pause) as far as the database can tell."""

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.running = threading.Event()
        self.running.set()

    def heartbeat(self, task_id: str, lease: Lease) -> bool:
        self.running.wait()
        return super().heartbeat(task_id, lease)


async def test_a_runner_paused_past_its_lease_leaves_the_outcome_to_its_successor(
    backend: Backend,
) -> None:
    stale = _worker(backend)
    store = _PausableStore(backend.db)
    stale.store = store
    gate = asyncio.Event()
    in_item = asyncio.Event()

    async def stalled(pipeline: TaskPipeline, item: Any) -> Any:
        in_item.set()
        await gate.wait()  # frozen mid-item; once resumed, its item fails
        raise BadImage("the stale runner's late verdict")

    stale._process = stalled  # type: ignore[method-assign]
    task_id = _create(stale, await _upload(stale, 2))
    store.running.clear()
    assert await stale.start(task_id)
    await asyncio.wait_for(in_item.wait(), 5)
    await asyncio.sleep(1.3)  # past the 1 s lease: another runner takes the task over
    successor = _worker(backend)
    assert await successor.sweep() == 1
    await _until_idle(successor)
    after = successor.store.view(task_id)
    assert after is not None and after.task.status == "succeeded"
    # The stale runner resumes believing it owns the task.
    gate.set()
    store.running.set()
    await asyncio.wait_for(_until_idle(stale), 10)
    view = successor.store.view(task_id)
    assert view is not None and view.task.status == "succeeded", view.task.error
    assert view.task.runner == successor.name and view.task.attempts == 2
    assert [(i.status, i.result_image_id, i.error_code) for i in view.items] == [
        (i.status, i.result_image_id, i.error_code) for i in after.items
    ]
    assert all(i.status == "succeeded" for i in view.items)


async def test_a_batch_watermarks_from_the_sources(backend: Backend, tmp_path: Path) -> None:
    """A watermark step in a batch reads its mark as /process and the URL API do (it failed
    every item with "the watermark image was not provided")."""
    from PIL import Image

    from serve_app.settings import SourceSettings
    from serve_app.sources import Sources

    marks = tmp_path / "sources"
    (marks / "marks").mkdir(parents=True)
    (marks / "marks" / "wm.png").write_bytes(encode(Image.new("RGBA", (40, 20), "red"), "PNG"))
    worker = _worker(backend)
    worker.images.assets = Sources(SourceSettings(), f"file://{marks}", worker.images).with_assets
    steps = [{"op": "resize", "width": 256}, {"op": "watermark", "image": "marks/wm.png"}]
    task_id = _create(
        worker, await _upload(worker, 2), TaskPipeline.model_validate({"steps": steps})
    )
    assert await worker.start(task_id)
    await _until_idle(worker)
    view = worker.store.view(task_id)
    assert view is not None and view.task.status == "succeeded", view.items[0].error_message
    _, data = await worker.images.load(view.items[0].result_image_id or "")
    r, g, b = decode(data).convert("RGB").getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60  # the red mark at the top left
