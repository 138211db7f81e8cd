"""Where image pipelines run: in this process (`LocalImageWork`) or one hop away in the
Preprocessor deployment (`RemoteImageWork`). Both answer the same three calls, so the ingress
picks one at start (PROCESSING_INLINE) and its routes never know which.

Inline is the default for the ingress (`InlineFirst`): a thumbnail is ~10 ms of Pillow work,
and a handle hop to another replica costs more CPU than that (bench/RESULTS.md). Pipelines that
would hold the GIL for seconds still take the hop. The Preprocessor stays for them, for handle
callers from other apps, for the batch runner and for decoding for the models.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from ray.serve.handle import DeploymentHandle

from deployments.preprocessor import process_image
from pipelines.analysis import image_info, probe
from pipelines.errors import Overloaded
from pipelines.limits import Limits, check_upload_size
from pipelines.ops.filters import FilterStep
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec


class ImageWork(Protocol):
    """What the image routes need done to bytes; `where` names it in traces."""

    where: str

    def doer(self, spec: PipelineSpec) -> ImageWork:
        """The ImageWork that will run `spec` (itself, or the one a dispatcher picks)."""
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

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self.pending >= self.capacity:
            raise Overloaded("the image workers are at capacity; try again shortly")
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self.pending -= 1

    def doer(self, spec: PipelineSpec) -> ImageWork:
        return self

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage:
        check_upload_size(len(data), self.limits)
        result: ProcessedImage = await self._run(process_image, data, spec, self.limits)
        return result

    async def info(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        info: dict[str, Any] = await self._run(image_info, data, self.limits)
        return info

    async def probe(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        meta: dict[str, Any] = await self._run(probe, data, self.limits)
        return meta


def holds_the_gil(spec: PipelineSpec) -> bool:
    return any(isinstance(step, FilterStep) and step.holds_the_gil for step in spec.steps)


class InlineFirst:
    """Pipelines in this process, except those with a step that holds the GIL for long (a
    median filter): that one would stall this replica's event loop, so it goes to the
    Preprocessor. Info and probe only decode: inline."""

    where = "inline"

    def __init__(self, local: LocalImageWork, remote: RemoteImageWork) -> None:
        self.local = local
        self.remote = remote

    def doer(self, spec: PipelineSpec) -> ImageWork:
        return self.remote if holds_the_gil(spec) else self.local

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage:
        return await self.doer(spec).process(data, spec)

    async def info(self, data: bytes) -> dict[str, Any]:
        return await self.local.info(data)

    async def probe(self, data: bytes) -> dict[str, Any]:
        return await self.local.probe(data)


class RemoteImageWork:
    """The same calls, sent to the Preprocessor deployment through its handle."""

    where = "Preprocessor"

    def __init__(self, preprocessor: DeploymentHandle[Any], limits: Limits) -> None:
        self.preprocessor = preprocessor
        self.limits = limits

    def doer(self, spec: PipelineSpec) -> ImageWork:
        return self

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage:
        check_upload_size(len(data), self.limits)  # cheap refusal before the hop
        result: ProcessedImage = await self.preprocessor.process.remote(data, spec)
        return result

    async def info(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        info: dict[str, Any] = await self.preprocessor.info.remote(data)
        return info

    async def probe(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        meta: dict[str, Any] = await self.preprocessor.probe.remote(data)
        return meta
