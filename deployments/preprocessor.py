"""Preprocessor: runs image pipelines and image-info for the ingress and for other Ray apps.

Other apps call it through a handle with raw bytes and a pipeline (a dict or a PipelineSpec):

    handle = serve.get_deployment_handle("Preprocessor", app_name="image-service")
    result = handle.process.remote(image_bytes, {"steps": [{"op": "resize", "width": 300}]})
    thumbnail = result.result()  # a pipelines.pipeline.ProcessedImage

Every call is priced before decoding and refused with 422 too_costly over LIMITS_MAX_WORK; it
runs on a thread when cheap and in a killable child when not (placement.py), and answers 504
and stops at its deadline: LIMITS_PIPELINE_TIMEOUT_S, or less when the caller passes
`timeout_s` (what remains of its own; with `sent_at`, the `time.time()` it was counted at, the
time the call then waited for a replica is charged too: `pipelines.limits.time_left(deadline)`
gives both). A caller that cancels (its client left) stops it too.

Limits come from the app builder at construction (the settings) and change live through
`user_config: {limits: {...}}` (the same block as every other deployment's); `workers` (children
for expensive work, default 2) and `threads` (cheap work at once, default 2) too.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve

from deployments.killable import WorkerPool
from deployments.placement import process_placed, run_placed
from pipelines import admission, analysis
from pipelines.analysis import decode_estimate, image_info, probe
from pipelines.annotate import annotate
from pipelines.decode import open_image, read_header
from pipelines.detection import DetectParams
from pipelines.encode import FormatName
from pipelines.faces import FaceParams
from pipelines.limits import Limits, apply_live, deadline_after
from pipelines.ocr import OcrParams
from pipelines.pipeline import ProcessedImage
from pipelines.results import Box
from pipelines.sizing import ModelImage
from pipelines.spec import PipelineSpec, parse_pipeline

PRELOAD = ("pipelines.pipeline", "pipelines.analysis", "pipelines.admission")


def _decode_rgb(data: bytes, limits: Limits) -> np.ndarray:
    return np.asarray(open_image(data, limits).image.convert("RGB"))


@serve.deployment(
    name="Preprocessor",
    ray_actor_options={"num_cpus": 0.5},
    max_ongoing_requests=8,
)
class Preprocessor:
    def __init__(
        self, limits: dict[str, Any] | None = None, workers: int = 2, threads: int = 2
    ) -> None:
        self.base_limits = Limits.model_validate(limits or {})
        self.limits = self.base_limits.model_copy()
        self.pool = WorkerPool(workers, preload=PRELOAD)
        self.pool.warm()  # started now, not on the first expensive request
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="image-work")

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_live(self.limits, self.base_limits, config.get("limits"))
        workers = int(config.get("workers", self.pool.size))
        if workers != self.pool.size:
            old, self.pool = self.pool, WorkerPool(workers, preload=PRELOAD)
            self.pool.warm()
            old.close()

    async def process(
        self,
        data: bytes,
        pipeline: PipelineSpec | dict[str, Any],
        timeout_s: float | None = None,
        sent_at: float | None = None,
    ) -> ProcessedImage:
        spec = parse_pipeline(pipeline)
        return await process_placed(
            data,
            spec,
            self.limits,
            deadline=deadline_after(self.limits, timeout_s, sent_at),
            executor=self.threads,
            pool=self.pool,
        )

    async def _decoding(
        self,
        fn: Any,
        data: bytes,
        *args: Any,
        analysis: bool,
        timeout_s: float | None,
        sent_at: float | None,
    ) -> Any:
        header = read_header(data, self.limits)
        priced = decode_estimate(header.format, header.width, header.height, analysis=analysis)
        return await run_placed(
            fn,
            data,
            *args,
            work=priced.total,
            deadline=deadline_after(self.limits, timeout_s, sent_at),
            executor=self.threads,
            pool=self.pool,
        )

    async def info(
        self, data: bytes, timeout_s: float | None = None, sent_at: float | None = None
    ) -> dict[str, Any]:
        info: dict[str, Any] = await self._decoding(
            image_info, data, self.limits, analysis=True, timeout_s=timeout_s, sent_at=sent_at
        )
        return info

    async def probe(
        self, data: bytes, timeout_s: float | None = None, sent_at: float | None = None
    ) -> dict[str, Any]:
        """Decode fully (so damaged files are caught) and report format and size."""
        meta: dict[str, Any] = await self._decoding(
            probe, data, self.limits, analysis=False, timeout_s=timeout_s, sent_at=sent_at
        )
        return meta

    async def decode_rgb(
        self, data: bytes, timeout_s: float | None = None, sent_at: float | None = None
    ) -> np.ndarray:
        """The upright RGB pixels at full size under the limits (for handle callers; the AI
        routes use `decode_for_model`, which decodes only what the model will look at)."""
        pixels: np.ndarray = await self._decoding(
            _decode_rgb, data, self.limits, analysis=False, timeout_s=timeout_s, sent_at=sent_at
        )
        return pixels

    async def decode_for_model(
        self,
        data: bytes,
        params: DetectParams | FaceParams | OcrParams,
        timeout_s: float | None = None,
        sent_at: float | None = None,
    ) -> ModelImage:
        """The pixels a model will look at for `params`, priced (decode and model) and checked
        before decoding. The ingress hands this method's DeploymentResponse straight to the
        model deployment (no round trip)."""
        header = read_header(data, self.limits)
        estimate = admission.check_model_cost(
            params, header.width, header.height, self.limits, header.format
        )
        decode = next(part.work for part in estimate.parts if part.what == "decode")
        image: ModelImage = await run_placed(
            admission.decode_for_model,
            data,
            params,
            self.limits,
            work=decode,
            deadline=deadline_after(self.limits, timeout_s, sent_at),
            executor=self.threads,
            pool=self.pool,
        )
        return image

    async def annotate(
        self,
        data: bytes,
        boxes: list[tuple[Box, str]],
        fmt: FormatName | None = None,
        quality: int | None = None,
        timeout_s: float | None = None,
        sent_at: float | None = None,
    ) -> ProcessedImage:
        """The image with boxes and labels drawn (annotate=true)."""
        header = read_header(data, self.limits)
        priced = analysis.decode_estimate(header.format, header.width, header.height, analysis=True)
        image: ProcessedImage = await run_placed(
            annotate,
            data,
            boxes,
            self.limits,
            fmt,
            quality,
            work=priced.total,
            deadline=deadline_after(self.limits, timeout_s, sent_at),
            executor=self.threads,
            pool=self.pool,
        )
        return image

    def status(self) -> dict[str, Any]:
        return {
            "workers": self.pool.size,
            "killed": self.pool.kills,
            "calls_in_workers": self.pool.calls,
            "pace": round(self.pool.pace, 2),
            "limits": self.limits.model_dump(mode="json"),
        }

    def __del__(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
