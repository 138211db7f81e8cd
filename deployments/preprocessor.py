"""Preprocessor: runs image pipelines and image-info for the ingress and for other Ray apps.

Other apps call it through a handle with raw bytes and a pipeline (a dict or a PipelineSpec):

    handle = serve.get_deployment_handle("Preprocessor", app_name="image-service")
    result = handle.process.remote(image_bytes, {"steps": [{"op": "resize", "width": 300}]})
    thumbnail = result.result()  # a pipelines.pipeline.ProcessedImage

Limits come from the app builder at construction and may be changed live through
`user_config: {limits: {...}}`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from ray import serve

from deployments import metrics
from pipelines.analysis import image_info, probe
from pipelines.annotate import annotate
from pipelines.decode import open_image
from pipelines.encode import FormatName
from pipelines.limits import Limits
from pipelines.pipeline import ProcessedImage, run_pipeline
from pipelines.results import Box
from pipelines.spec import PipelineSpec, parse_pipeline


def process_image(data: bytes, spec: PipelineSpec, limits: Limits) -> ProcessedImage:
    """Run one pipeline under `limits` (its deadline included) and record its duration.
    Blocking: Pillow releases the GIL while it decodes, resamples and encodes, so worker
    threads overlap on several cores."""
    started = time.monotonic()
    result = run_pipeline(data, spec, limits, deadline=started + limits.pipeline_timeout_s)
    ops = [step.op for step in spec.steps]
    operation = ops[0] if len(ops) == 1 else ("pipeline" if ops else "encode")
    metrics.observe(operation, time.monotonic() - started)
    return result


@serve.deployment(
    name="Preprocessor",
    ray_actor_options={"num_cpus": 0.5},
    max_ongoing_requests=8,
)
class Preprocessor:
    def __init__(self, limits: dict[str, Any] | None = None) -> None:
        self.limits = Limits.model_validate(limits or {})

    def reconfigure(self, config: dict[str, Any]) -> None:
        if "limits" in config:
            self.limits = Limits.model_validate({**self.limits.model_dump(), **config["limits"]})

    async def process(self, data: bytes, pipeline: PipelineSpec | dict[str, Any]) -> ProcessedImage:
        # A worker thread keeps the replica's event loop free for health checks and lets two
        # requests overlap (Pillow releases the GIL).
        return await asyncio.to_thread(process_image, data, parse_pipeline(pipeline), self.limits)

    async def info(self, data: bytes) -> dict[str, Any]:
        return await asyncio.to_thread(image_info, data, self.limits)

    async def decode_rgb(self, data: bytes) -> np.ndarray:
        """The upright RGB pixels under the limits: what the AI deployments take. The ingress
        hands this method's DeploymentResponse straight to a detector (no round trip)."""
        decoded = await asyncio.to_thread(open_image, data, self.limits)
        return np.asarray(decoded.image.convert("RGB"))

    async def annotate(
        self,
        data: bytes,
        boxes: list[tuple[Box, str]],
        fmt: FormatName | None = None,
        quality: int | None = None,
    ) -> ProcessedImage:
        """The image with boxes and labels drawn (annotate=true)."""
        return await asyncio.to_thread(annotate, data, boxes, self.limits, fmt, quality)

    async def probe(self, data: bytes) -> dict[str, Any]:
        """Decode fully (so damaged files are caught) and report format and size."""
        return await asyncio.to_thread(probe, data, self.limits)
