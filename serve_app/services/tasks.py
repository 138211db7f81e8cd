"""What the task routes do: check a batch, store its images, write the task, nudge a runner.

The task is in the database before the client hears 202, and the nudge is fire-and-forget:
if no runner hears it (none up yet, or one dies), a runner's sweep finds the queued task.

Tenants (serve_app/guards/tenant.py): a task records the key that created it; `view` and
`cancel` take the requester's owner and answer 404 for another's task, and Idempotency-Keys
are stored scoped to the tenant, so two tenants' equal keys never meet.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from ray.serve.handle import DeploymentHandle

from pipelines.errors import InvalidParameter
from pipelines.tasks import TaskPipeline
from serve_app.errors import Conflict, NotFound
from serve_app.guards.tenant import Tenant, owns, scoped_key
from serve_app.services.callbacks import callback_client, check_callback_url
from serve_app.services.image_work import check_batch_cost
from serve_app.services.images import ImageService
from serve_app.services.offload import offload
from serve_app.settings import SourceSettings, TaskSettings
from serve_app.store.models import ImageRecord, TaskRecord
from serve_app.store.storage import sha256_hex
from serve_app.store.task_store import TERMINAL, TaskStore, TaskView

log = logging.getLogger("ray.serve")
# Uploads of one batch in flight at once. Each takes a slot of the ingress's image queue (its
# probe decodes the file), as interactive requests do: a batch of any size holds at most this
# many (never more than the queue has), so it is never refused for its own size, and leaves
# the rest of the queue to interactive work.
BATCH_UPLOADS_IN_FLIGHT = 2


def fingerprint(
    pipeline: TaskPipeline,
    files: list[bytes],
    image_ids: list[str],
    callback_url: str | None = None,
) -> str:
    """What makes two batch requests the same request (for Idempotency-Key)."""
    parts = [pipeline.model_dump_json(), *map(sha256_hex, files), "ids", *image_ids]
    if callback_url:
        parts += ["callback", callback_url]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class TaskService:
    def __init__(
        self,
        images: ImageService,
        store: TaskStore,
        runner: DeploymentHandle[Any],
        settings: TaskSettings,
        source: SourceSettings | None = None,
    ) -> None:
        self.images = images
        self.store = store
        self.runner = runner
        self.settings = settings
        # Checks a batch's callback_url by the rules its POST will meet (nothing is sent here).
        self.callback_urls = callback_client(settings, source or SourceSettings())
        self._nudges: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        pipeline: TaskPipeline,
        files: list[bytes],
        image_ids: list[str],
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        tenant: Tenant | None = None,
        callback_url: object = None,
    ) -> tuple[TaskView, bool]:
        """The task's view and whether this request created it (False: a replay). `tenant`:
        who asks (None: nobody in particular, as in tests and tools); the image_ids must be
        theirs (ImageService.record checks the request's tenant). `callback_url`: the batch's
        webhook (services/callbacks.py), 422 when the address rules refuse it outright."""
        total = len(files) + len(image_ids)
        if total == 0:
            raise InvalidParameter("a batch needs images: send files or image_ids", field="files")
        if total > self.settings.max_items:
            raise InvalidParameter(
                f"a batch takes at most {self.settings.max_items} images; this has {total}",
                field="files",
            )
        callback = (
            check_callback_url(callback_url, self.settings, self.callback_urls)
            if callback_url is not None
            else None
        )
        request_print = fingerprint(pipeline, files, image_ids, callback)
        owner = tenant.owner if tenant else None
        key = scoped_key(idempotency_key, tenant) if idempotency_key else None
        if key:
            earlier = await offload("database", self.store.by_key, key, request_print)
            if earlier is not None:
                return await self.view(earlier.id, owner), False
        sizes = [await self.images.record(image_id) for image_id in dict.fromkeys(image_ids)]
        # 404 naming a missing id above, 422 too_costly here: both before any write.
        check_batch_cost(pipeline, files, sizes, self.images.limits)
        uploaded = await self._upload_all(files)
        sources = [record.id for record in uploaded] + image_ids
        try:
            task, created = await offload(
                "database",
                lambda: self.store.create(
                    pipeline.model_dump_json(),
                    sources,
                    fingerprint=request_print,
                    idempotency_key=key,
                    request_id=request_id,
                    owner=owner,
                    callback_url=callback,
                ),
            )
        except BaseException:
            await asyncio.shield(self.images.discard(uploaded))
            raise
        if not created:  # a concurrent retry with the same key won: its task has the images
            await asyncio.shield(self.images.discard(uploaded))
        if created:
            self._nudge(task)
        return await self.view(task.id, owner), created

    async def _upload_all(self, files: list[bytes]) -> list[ImageRecord]:
        """Store a batch's files, at most BATCH_UPLOADS_IN_FLIGHT at a time. When one fails
        (a damaged file, real overload, an outage) no new one starts, those in flight end, and
        everything this batch stored is deleted before the error goes to the client."""
        stored: list[ImageRecord | None] = [None] * len(files)
        queue = iter(enumerate(files))
        failed: list[BaseException] = []

        async def uploader() -> None:
            for index, data in queue:
                if failed:
                    return
                try:
                    stored[index] = await self.images.upload(data)
                except Exception as exc:  # noqa: BLE001 - raised below, after the tidy-up
                    failed.append(exc)
                    return

        slots = getattr(self.images.work, "capacity", BATCH_UPLOADS_IN_FLIGHT)
        workers = min(BATCH_UPLOADS_IN_FLIGHT, slots, len(files))
        try:
            await asyncio.gather(*(uploader() for _ in range(workers)))
        except BaseException:  # cancelled (the client left): tidy up all the same
            await asyncio.shield(self.images.discard([r for r in stored if r is not None]))
            raise
        if failed:
            await asyncio.shield(self.images.discard([r for r in stored if r is not None]))
            raise failed[0]
        return [record for record in stored if record is not None]

    def _nudge(self, task: TaskRecord) -> None:
        async def nudge() -> None:
            try:
                await self.runner.submit.remote(task.id)
            except Exception as exc:  # noqa: BLE001 - the sweep picks the task up anyway
                log.warning("task %s: runner not reached (%r); a sweep will start it", task.id, exc)

        running = asyncio.create_task(nudge())
        self._nudges.add(running)
        running.add_done_callback(self._nudges.discard)

    async def view(self, task_id: str, owner: str | None) -> TaskView:
        """The task as `owner` (the requester's tenant.owner; None: open mode) may see it: 404
        when it does not exist or is another tenant's (the same answer: ids are not told)."""
        view = await offload("database", self.store.view, task_id)
        if view is None or not owns(owner, view.task.owner):
            raise NotFound(f"no task with id {task_id!r}", field="task_id")
        return view

    async def cancel(self, task_id: str, owner: str | None) -> TaskView:
        view = await self.view(task_id, owner)
        if view.task.status in TERMINAL:
            raise Conflict(f"the task has already ended ({view.task.status})", field="task_id")
        await offload("database", self.store.cancel, task_id)
        return await self.view(task_id, owner)
