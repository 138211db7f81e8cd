"""Where image pipelines run: in this process (`LocalImageWork`) or one hop away in the
Preprocessor deployment (`RemoteImageWork`). Both answer the same three calls, so the ingress
picks one at start (PROCESSING_INLINE) and its routes never know which.

Inline is the default for the ingress (`InlineFirst`): a thumbnail is ~10 ms of Pillow work,
and a handle hop to another replica costs more CPU than that (bench/RESULTS.md). What its price
says is expensive (over `placement.INLINE_MAX_WORK`, priced from the header before anything
decodes: pipelines/cost.py) takes the hop, to the Preprocessor's killable workers, where a
deadline or a departed client stops it; so does whatever would hold the GIL for long.

Every call has a deadline, LIMITS_PIPELINE_TIMEOUT_S from when the work was asked for: past it
the client gets 504 (before Serve's 408) and the work stops. `limits` is the replica's one live
Limits object (pipelines.limits.apply_live), read at each call.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol, TypeVar

from ray.serve.handle import DeploymentHandle

from deployments import metrics
from deployments.placement import (
    INLINE_MAX_WORK,
    Admitted,
    admit_pipeline,
    in_thread,
    operation_name,
)
from pipelines.admission import check_task_cost
from pipelines.analysis import decode_estimate, image_info, probe
from pipelines.decode import read_header
from pipelines.errors import DeadlineExceeded, Overloaded
from pipelines.limits import Limits, check_upload_size, deadline_after, time_left
from pipelines.ops.filters import FilterStep
from pipelines.pipeline import ProcessedImage, run_within
from pipelines.spec import PipelineSpec
from pipelines.tasks import TaskPipeline
from serve_app.errors import RETRY_AFTER_S, Unavailable
from serve_app.services.readiness import without_replicas
from serve_app.store.db import ImageRecord

T = TypeVar("T")
# How long past the deadline the ingress waits for the Preprocessor's own 504 (it keeps the
# same deadline, so its answer normally comes first) before answering 504 itself.
HOP_GRACE_S = 1.0
WATCH_S = 1.0  # how often a waiting handle call looks whether its deployments have replicas
ADMITTED_KEPT = 16  # each holds its request's bytes until run


class ImageWork(Protocol):
    """What the image routes need done to bytes; `where` names it in traces."""

    where: str

    def doer(self, spec: PipelineSpec, data: bytes | None = None) -> ImageWork:
        """The ImageWork that will run `spec` on `data` (itself, or the one a dispatcher
        picks)."""
        ...

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage: ...

    async def info(self, data: bytes) -> dict[str, Any]: ...

    async def probe(self, data: bytes) -> dict[str, Any]: ...


class LocalImageWork:
    """Pipelines on a pool of `threads` worker threads in this process. The pool's size bounds
    how many images are decoded at once here (memory), whatever the request concurrency; up to
    `max_queued` more wait their turn, and past that a request is refused at once with 503
    `overloaded` (as Serve's max_queued_requests does for a deployment behind a handle)."""

    where = "inline"

    def __init__(self, limits: Limits, threads: int, max_queued: int = 32) -> None:
        self.limits = limits
        self.capacity = threads + max_queued
        self.pending = 0  # only touched on the event loop
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="image-work")
        # Requests a dispatcher already priced (InlineFirst.doer), so that the header is read
        # once per request: by (id(data), id(spec)), bounded, used on the event loop only.
        self.admitted: OrderedDict[tuple[int, int], tuple[bytes, PipelineSpec, Admitted]] = (
            OrderedDict()
        )

    def admit(self, data: bytes, spec: PipelineSpec, *, record: bool) -> Admitted:
        key = (id(data), id(spec))
        kept = self.admitted.pop(key, None)
        if kept is not None and kept[0] is data and kept[1] is spec:
            if record:
                metrics.observe_estimate(kept[2].estimate)
            return kept[2]
        admitted = admit_pipeline(data, spec, self.limits, record=record)
        if not record:  # priced for a dispatcher: whoever runs it comes back for it
            self.admitted[key] = (data, spec, admitted)
            while len(self.admitted) > ADMITTED_KEPT:
                self.admitted.popitem(last=False)
        return admitted

    async def _run(self, fn: Any, *args: Any, deadline: float, stoppable: bool = False) -> Any:
        if self.pending >= self.capacity:
            raise Overloaded("the image workers are at capacity; try again shortly")
        self.pending += 1
        try:
            return await in_thread(self._pool, fn, *args, deadline=deadline, stoppable=stoppable)
        finally:
            self.pending -= 1

    def doer(self, spec: PipelineSpec, data: bytes | None = None) -> ImageWork:
        return self

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage:
        check_upload_size(len(data), self.limits)
        deadline = deadline_after(self.limits)
        admitted = self.admit(data, spec, record=True)
        started = time.monotonic()
        result: ProcessedImage = await self._run(
            partial(run_within, header=admitted.header),
            data,
            spec,
            self.limits,
            deadline - started,
            deadline=deadline,
            stoppable=True,
        )
        metrics.observe(operation_name(spec), time.monotonic() - started)
        return result

    async def info(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        deadline = deadline_after(self.limits)
        info: dict[str, Any] = await self._run(image_info, data, self.limits, deadline=deadline)
        return info

    async def probe(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        deadline = deadline_after(self.limits)
        meta: dict[str, Any] = await self._run(probe, data, self.limits, deadline=deadline)
        return meta


def holds_the_gil(spec: PipelineSpec) -> bool:
    return any(isinstance(step, FilterStep) and step.holds_the_gil for step in spec.steps)


def expensive(spec: PipelineSpec, data: bytes, local: LocalImageWork) -> bool:
    """Whether `spec` on `data` should run where it can be killed: its price from the header
    (too_costly and the other limits refuse here already), or a step that holds the GIL."""
    priced = local.admit(data, spec, record=False).estimate  # refuses before any hop
    return holds_the_gil(spec) or priced.total > INLINE_MAX_WORK


class InlineFirst:
    """Pipelines in this process, except the expensive ones (by price, or a median filter
    that would stall this replica's event loop): those go to the Preprocessor, whose children
    a deadline can kill. Info and probe only decode: inline unless the decode is expensive."""

    where = "inline"

    def __init__(self, local: LocalImageWork, remote: RemoteImageWork) -> None:
        self.local = local
        self.remote = remote

    @property
    def capacity(self) -> int:
        """Requests this replica's own queue takes before refusing (small images stay here)."""
        return self.local.capacity

    def doer(self, spec: PipelineSpec, data: bytes | None = None) -> ImageWork:
        if data is not None:
            if expensive(spec, data, self.local):
                self.local.admitted.pop((id(data), id(spec)), None)  # priced again over there
                return self.remote
            return self.local
        return self.remote if holds_the_gil(spec) else self.local

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage:
        return await self.doer(spec, data).process(data, spec)

    def _decode_is_expensive(self, data: bytes, analysis: bool) -> bool:
        header = read_header(data, self.local.limits)
        priced = decode_estimate(header.format, header.width, header.height, analysis=analysis)
        return priced.total > INLINE_MAX_WORK

    async def info(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.local.limits)
        if self._decode_is_expensive(data, analysis=True):
            return await self.remote.info(data)
        return await self.local.info(data)

    async def probe(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.local.limits)
        if self._decode_is_expensive(data, analysis=False):
            return await self.remote.probe(data)
        return await self.local.probe(data)


async def within(deadline: float, call: Any, watch: tuple[str, ...] = ()) -> Any:
    """Await a handle call by `deadline` (plus the grace the callee's own 504 needs): past it,
    504, and the call is cancelled, which Serve carries to the replica doing it.

    `watch`: the deployments the call needs. While it waits, every WATCH_S, Serve's report of
    them (the one /health/ready reads, cached) is consulted: when one has no replica running
    (it died and its replacement is starting), the call is cancelled and the client gets a
    fast 503 to retry, not a 504 after waiting out the deadline in a queue for nobody."""
    budget = max(0.0, deadline - time.monotonic()) + HOP_GRACE_S
    waiting = asyncio.ensure_future(asyncio.wait_for(call, budget))
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=WATCH_S if watch else None)
            if done:
                return waiting.result()
            looking = asyncio.ensure_future(_first_without_replicas(watch))
            await asyncio.wait({waiting, looking}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                looking.cancel()
                return waiting.result()
            if (missing := looking.result()) is not None:
                raise Unavailable(
                    f"{missing} has no replica running; retry shortly", retry_after=RETRY_AFTER_S
                )
    except TimeoutError:
        raise DeadlineExceeded("the work ran out of time and was stopped") from None
    finally:
        waiting.cancel()


def deployments_of(*handles: Any) -> tuple[str, ...]:
    """The deployments behind handles (for `within`'s watch); stand-ins in tests have none."""
    names = (getattr(handle, "deployment_name", None) for handle in handles)
    return tuple(name for name in names if isinstance(name, str))


async def _first_without_replicas(deployments: tuple[str, ...]) -> str | None:
    for name in deployments:
        if (status := await without_replicas(name)) is not None:
            return f"{name} ({status})"
    return None


class RemoteImageWork:
    """The same calls, sent to the Preprocessor deployment through its handle."""

    where = "Preprocessor"

    def __init__(self, preprocessor: DeploymentHandle[Any], limits: Limits) -> None:
        self.preprocessor = preprocessor
        self.limits = limits

    def doer(self, spec: PipelineSpec, data: bytes | None = None) -> ImageWork:
        return self

    async def _call(self, method: str, *args: Any) -> Any:
        deadline = deadline_after(self.limits)
        call = getattr(self.preprocessor, method).remote(*args, **time_left(deadline))
        return await within(deadline, call, deployments_of(self.preprocessor))

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage:
        check_upload_size(len(data), self.limits)  # cheap refusal before the hop
        result: ProcessedImage = await self._call("process", data, spec)
        return result

    async def info(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        info: dict[str, Any] = await self._call("info", data)
        return info

    async def probe(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        meta: dict[str, Any] = await self._call("probe", data)
        return meta


def check_batch_cost(
    pipeline: TaskPipeline, files: list[bytes], stored: list[ImageRecord], limits: Limits
) -> None:
    """Every image of a batch priced through the whole task pipeline (its image stages and AI
    steps) before anything is stored: 422 too_costly names the first one over the limit."""
    for data in files:
        header = read_header(data, limits)
        check_task_cost(pipeline, header.width, header.height, limits, header.format)
    for record in stored:
        check_task_cost(pipeline, record.width, record.height, limits, record.format.upper())
