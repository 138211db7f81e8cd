"""TaskRunner: the deployment that runs batch tasks, in parallel across the other deployments.

It lives in serve_app, not deployments/, because it is persistence-driven: every state change
goes to the database first (serve_app/store/task_store.py), and the replica holds nothing a crash
could lose. Serve does not retry a request whose replica died, so the ingress does not wait on
the runner: it writes the task, answers 202, and nudges a runner with `submit()`. Any runner
replica's sweeper also finds queued tasks and tasks whose runner stopped renewing its lease, and
takes them over (resuming their unfinished items) until `max_attempts`, then fails them with
the reason. The sweeper also counts tasks (`ray_image_tasks`), keeps the result cache within its
limits and enforces retention (store/retention.py), and posts the webhooks of ended tasks
(services/callbacks.py): at once when this runner ends a task, else at the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from pipelines.errors import Overloaded, ServiceError
from pipelines.pipeline import ProcessedImage
from pipelines.spec import Step
from pipelines.tasks import TaskPipeline
from serve_app.errors import Unavailable
from serve_app.observe.metrics import record_retention_deleted, record_tasks
from serve_app.services.ai import AiService
from serve_app.services.build import build_services, reconfigure_limits
from serve_app.services.callbacks import CallbackSender, callback_client
from serve_app.services.images import ImageService
from serve_app.services.offload import offload
from serve_app.settings import TaskSettings, get_settings
from serve_app.sources import Sources
from serve_app.store.models import TaskItem, TaskRecord
from serve_app.store.result_cache import ResultCache
from serve_app.store.retention import Retention
from serve_app.store.task_store import Lease, TaskStore

log = logging.getLogger("ray.serve")


def _transient(exc: BaseException) -> bool:
    """Worth another try: a dependency outage or a dead downstream replica; not bad input or
    a model that cannot load."""
    # Overloaded: the Preprocessor's expensive-work slots were all busy (a 503 with Retry-After),
    # which a batch item waits out rather than fails on.
    # Never a cancellation (a lost lease): tenacity would otherwise swallow and retry it.
    if not isinstance(exc, Exception):
        return False
    return isinstance(exc, Unavailable | Overloaded) or not isinstance(exc, ServiceError)


class LeaseLost(Exception):
    """This runner's lease on the task ran out or was taken: it must stop writing and working."""


def _replica_name() -> str:
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - outside a replica (tests): any unique name will do
        return f"local-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class TaskWorker:
    """Runs tasks for one process; no Ray here beyond the handles the services hold."""

    def __init__(
        self,
        images: ImageService,
        ai: AiService,
        store: TaskStore,
        settings: TaskSettings,
        callbacks: CallbackSender | None = None,
    ) -> None:
        self.images = images
        self.ai = ai
        self.store = store
        self.settings = settings
        self.callbacks = callbacks
        self.name = _replica_name()
        self.active: dict[str, asyncio.Task[None]] = {}

    def has_room(self) -> bool:
        return len(self.active) < self.settings.max_active

    async def start(self, task_id: str) -> bool:
        """Claim and run a task in the background; False if it is not ours to run."""
        if task_id in self.active or not self.has_room():
            return False
        task = await offload(
            "database", self.store.claim, task_id, self.name, self.settings.lease_s
        )
        if task is None:
            return False
        running = asyncio.create_task(self._run(task))
        self.active[task_id] = running
        running.add_done_callback(lambda _: self.active.pop(task_id, None))
        return True

    async def _run(self, task: TaskRecord) -> None:
        lease = Lease.of(task)
        try:
            if task.attempts > self.settings.max_attempts:
                reason = (
                    f"gave up after {task.attempts - 1} attempts: the task's runner stopped "
                    "before finishing each time"
                )
                await offload("database", self.store.fail, task.id, reason, lease)
                return
            if task.attempts > 1:
                log.warning("task %s: resuming (attempt %d)", task.id, task.attempts)
            pipeline = TaskPipeline.model_validate_json(task.pipeline)
            items = await offload("database", self.store.pending_items, task.id)
            if not await self._run_items(task.id, lease, pipeline, items):
                raise LeaseLost
            status = await offload("database", self.store.finish, task.id, lease)
            log.info("task %s: %s", task.id, status or "ended elsewhere (cancelled or taken)")
        except LeaseLost:
            log.warning("task %s: lease lost (cancelled or taken over), stopped", task.id)
        except Unavailable:
            # The database went away mid-task: stop here; the lease runs out and a sweep
            # resumes the task once it is back.
            log.warning("task %s: database unavailable, leaving it to be resumed", task.id)
        except Exception:
            log.exception("task %s: runner error", task.id)
            with contextlib.suppress(Exception):
                await offload(
                    "database", self.store.fail, task.id, "internal error in the task runner", lease
                )
        await self.post_callback(task.id)

    async def post_callback(self, task_id: str) -> None:
        """The webhook of a task that just ended, if it has one and it is due (a no-op
        otherwise); a failure is left to the sweep."""
        if self.callbacks is None:
            return
        try:
            await self.callbacks.deliver(task_id)
        except Exception:  # the claim's lease lapses and a sweep retries
            log.warning("task %s: callback not sent now; a sweep will", task_id, exc_info=True)

    async def deliver_callbacks(self) -> int:
        """Post the webhooks due now (ended elsewhere, cancelled, or due a retry)."""
        return await self.callbacks.deliver_due() if self.callbacks is not None else 0

    async def _run_items(
        self, task_id: str, lease: Lease, pipeline: TaskPipeline, items: list[TaskItem]
    ) -> bool:
        """Run the items while the lease holds; False, with the work in flight cancelled, the
        moment it is lost (a renewal refused, or none got through for a whole lease)."""
        queue: asyncio.Queue[TaskItem] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)

        async def heartbeat() -> None:
            renewed = time.monotonic()
            while True:
                await asyncio.sleep(self.settings.lease_s / 3)
                try:
                    if not await offload("database", self.store.heartbeat, task_id, lease):
                        return  # cancelled, or another runner took it over
                    renewed = time.monotonic()
                except Unavailable:
                    # Whoever resumes redoes unfinished items; past a lease, that may be now.
                    if time.monotonic() - renewed >= self.settings.lease_s:
                        return

        async def worker() -> None:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._run_item(task_id, lease, pipeline, item)

        async def all_workers() -> None:
            count = min(self.settings.item_concurrency, len(items)) or 1
            running = [asyncio.create_task(worker()) for _ in range(count)]
            try:
                await asyncio.gather(*running)
            finally:  # one worker's lost lease stops the others too
                for each in running:
                    each.cancel()

        work = asyncio.create_task(all_workers())
        beat = asyncio.create_task(heartbeat())
        try:
            await asyncio.wait({work, beat}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            beat.cancel()
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                await work
        if work.cancelled() or isinstance(work.exception(), LeaseLost):
            return False
        work.result()  # anything else a worker raised
        return True

    async def _write(self, method: Any, *args: Any) -> None:
        """A fenced item write; LeaseLost when the lease no longer holds."""
        if not await offload("database", method, *args):
            raise LeaseLost

    async def _run_item(
        self, task_id: str, lease: Lease, pipeline: TaskPipeline, item: TaskItem
    ) -> None:
        await self._write(self.store.item_running, task_id, item.index, lease)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_transient),
                stop=stop_after_attempt(3),
                wait=wait_exponential(multiplier=0.5, max=4),
                reraise=True,
            ):
                with attempt:
                    result_id, results = await self._process(pipeline, item)
        except ServiceError as exc:
            await self._write(
                self.store.item_failed, task_id, item.index, lease, exc.code, exc.message
            )
            return
        except Exception:
            log.exception("task %s item %d failed", task_id, item.index)
            await self._write(
                self.store.item_failed,
                task_id,
                item.index,
                lease,
                "internal_error",
                "the item could not be processed",
            )
            return
        await self._write(self.store.item_succeeded, task_id, item.index, lease, result_id, results)

    async def _process(
        self, pipeline: TaskPipeline, item: TaskItem
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """Run the pipeline on one image: image stages through the cache, AI steps on what
        they left. Returns the stored result image's id (if the image changed) and AI outputs."""
        _, data = await self.images.load(item.source_image_id)
        current = data
        last: ProcessedImage | None = None
        image_steps: list[Step] = []
        outputs: list[dict[str, Any]] = []
        for stage in pipeline.plan():
            if stage.image:
                image_steps += stage.image
                outcome = await self.images.process_cached(
                    current, pipeline.image_spec(stage.image)
                )
                last, current = outcome.result, outcome.result.data
            for step in stage.ai:
                found = await self.ai.run_step(current, step)
                outputs.append({"op": step.op, **found.model_dump(mode="json")})
        if last is None:
            return None, outputs
        spec_json = pipeline.image_spec(image_steps).canonical_json()
        record = await self.images.store_result(last, spec_json, item.source_image_id)
        return record.id, outputs

    async def count(self) -> dict[str, int]:
        """Count unfinished tasks into the `ray_image_tasks` gauge."""
        counts = await offload("database", self.store.counts)
        record_tasks(counts)
        return counts

    async def sweep(self) -> int:
        """Start whatever is claimable and fits; the number started."""
        if not self.has_room():
            return 0
        room = self.settings.max_active - len(self.active)
        ids = await offload("database", self.store.claimable, self.settings.lease_s, room * 2)
        started = 0
        for task_id in ids:
            if not self.has_room():
                break
            started += await self.start(task_id)
        return started


async def keep_house(cache: ResultCache, retention: Retention) -> dict[str, int]:
    """Keep the result cache within its limits and delete what is past its retention,
    counted in `ray_image_retention_deleted_total`; what was deleted, by kind."""
    await offload("result cache", cache.evict)
    done = await offload("database", retention.sweep)
    for kind, count in done.items():
        record_retention_deleted(kind, count)
    return done


@serve.deployment(name="TaskRunner", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
class TaskRunner:
    def __init__(
        self,
        preprocessor: DeploymentHandle[Any],
        detector: DeploymentHandle[Any],
        ocr: DeploymentHandle[Any],
        faces: DeploymentHandle[Any],
    ) -> None:
        settings = get_settings()
        images, ai = build_services(settings, preprocessor, detector, ocr, faces)
        # A batch's watermarks come from the same sources as the URL API's.
        images.assets = Sources(settings.source, settings.source_url, images).with_assets
        assert images.cache is not None
        self.cache = images.cache
        self.retention = Retention(images.db, images.store, settings.retention)
        store = TaskStore(images.db)
        callbacks = CallbackSender(
            store, settings.tasks, callback_client(settings.tasks, settings.source)
        )
        self.worker = TaskWorker(images, ai, store, settings.tasks, callbacks)
        self._sweeper: asyncio.Task[None] | None = None
        self._ensure_sweeper()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """`user_config: {limits: {...}}`, live, like every deployment that applies limits."""
        reconfigure_limits(self.worker.images, get_settings(), config)

    def _ensure_sweeper(self) -> None:
        """The sweep loop runs on the replica's event loop; (re)start it when it is not."""
        if self._sweeper is not None and not self._sweeper.done():
            return
        try:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        except RuntimeError:
            self._sweeper = None  # no loop yet: the first call or health check starts it

    async def _sweep_forever(self) -> None:
        last_kept = 0.0
        while True:
            try:
                await self.worker.sweep()
                await self.worker.deliver_callbacks()
                await self.worker.count()
                if time.monotonic() - last_kept > self.retention.settings.every_s:
                    last_kept = time.monotonic()
                    await keep_house(self.cache, self.retention)
            except Unavailable:
                pass  # logged by offload; try again next round
            except Exception:
                log.exception("task sweep failed")
            await asyncio.sleep(self.worker.settings.sweep_interval_s)

    async def submit(self, task_id: str) -> bool:
        """Start a task now if this replica has room; otherwise a sweep will."""
        self._ensure_sweeper()
        return await self.worker.start(task_id)

    async def status(self) -> dict[str, Any]:
        self._ensure_sweeper()
        return {
            "runner": self.worker.name,
            "active": sorted(self.worker.active),
            "sweeper": self._sweeper is not None and not self._sweeper.done(),
        }

    async def check_health(self) -> None:
        """Keeps the sweeper alive. A database outage is not a reason to restart: tasks wait
        in the database and resume when it is back."""
        self._ensure_sweeper()
