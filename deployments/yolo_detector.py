"""YoloDetector: object detection with dynamic batching (@serve.batch), on the GPU when the
replica has one (`ray_actor_options.num_gpus` in serve_config.yaml), else on the CPU.

user_config (changes live through reconfigure): weights, max_batch_size, batch_wait_timeout_s,
threads (torch CPU threads; ultralytics and Ray both lower it, so it is set on every batch),
limits (pipelines/limits.py: the same block as every other deployment's).

Each image is priced (pipelines/detection.py: a fixed figure at its image_size) and checked
against the live limits, and reaches the model at its input size (pipelines/sizing.py). A batch
serves several requests at once, so it is not killed for one of them: its work is bounded by
max_batch_size times the priciest admitted image; a request whose deadline passes before its
batch starts is answered 504 and never joins one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve

from deployments import metrics
from deployments.engine_slot import EngineSlot
from deployments.health import check_memory
from pipelines.admission import check_model_cost
from pipelines.detection import DetectParams, YoloEngine
from pipelines.errors import DeadlineExceeded
from pipelines.limits import Limits, apply_live, deadline_after
from pipelines.results import ObjectsResult
from pipelines.sizing import ModelImage
from pipelines.spec import validated


@serve.deployment(
    name="YoloDetector",
    ray_actor_options={"num_cpus": 0.5},
    max_ongoing_requests=32,  # at least max_batch_size, or batches never fill
)
class YoloDetector:
    def __init__(
        self,
        weights: str = "yolo11n.pt",
        threads: int | None = None,
        limits: dict[str, Any] | None = None,
    ) -> None:
        self.base_limits = Limits.model_validate(limits or {})
        self.limits = self.base_limits.model_copy()
        self.weights = weights
        self.threads = threads
        self.batches = 0
        self.images = 0
        self.max_batch_size = 8
        self.batch_wait_timeout_s = 0.005
        # One thread loads the model and runs every batch: torch's per-thread state (its
        # OpenMP team, ultralytics' first-predict settings) then stays warm. Batches run one
        # at a time anyway; inference spread over a pool of threads measured ~25% slower.
        self._inference = ThreadPoolExecutor(1, thread_name_prefix="yolo")
        self._in_flight = 0
        # Set while no batch is running (see detect).
        self._model_free = asyncio.Event()
        self._model_free.set()
        self.slot = self._load(weights)

    def _load(self, weights: str) -> EngineSlot[YoloEngine]:
        def build() -> YoloEngine:
            engine = YoloEngine(weights, threads=self.threads)
            engine.warm_up()
            return engine

        return EngineSlot(f"YOLO model {weights!r}", lambda: self._inference.submit(build).result())

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_live(self.limits, self.base_limits, config.get("limits"))
        if "threads" in config:
            self.threads = int(config["threads"])
            if self.slot.engine is not None:
                self.slot.engine.threads = self.threads
        if config.get("weights") and config["weights"] != self.weights:
            self.weights = str(config["weights"])
            self.slot = self._load(self.weights)
        if "max_batch_size" in config:
            self.max_batch_size = int(config["max_batch_size"])
            self._batched.set_max_batch_size(self.max_batch_size)  # type: ignore[attr-defined,misc]
        if "batch_wait_timeout_s" in config:
            self.batch_wait_timeout_s = float(config["batch_wait_timeout_s"])
            self._batched.set_batch_wait_timeout_s(self.batch_wait_timeout_s)  # type: ignore[attr-defined,misc]

    async def detect(
        self,
        image: np.ndarray | ModelImage,
        params: DetectParams | dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> ObjectsResult:
        """Objects in one upright RGB image (batched with concurrent callers); boxes in its
        pixels (a ModelImage's source's)."""
        self.slot.get()  # 503 with the reason when the weights did not load
        checked = validated(DetectParams, params)
        source = ModelImage.of(image)
        estimate = check_model_cost(checked, source.source_width, source.source_height, self.limits)
        metrics.observe_estimate(estimate)
        deadline = deadline_after(self.limits, timeout_s)
        started = time.monotonic()
        self._in_flight += 1
        try:
            if self._in_flight == 1:
                # Alone: nothing to batch with, so no batch wait (it only added latency: on
                # the CPU at concurrency 1 batching on was ~10% slower than max_batch_size=1).
                (result,) = await self._infer([image], [checked])
            else:
                # Join the batcher only once the model is free, all together. serve.batch forms
                # a batch every batch_wait_timeout_s whether or not the model can take it, so
                # with one batch at a time it queued many small ones (a mean of 2.4 images at
                # 16 clients, max_batch_size 8); held here, the requests that came in during a
                # batch make the next one.
                await self._model_free.wait()
                if time.monotonic() > deadline:
                    raise DeadlineExceeded("the detector was busy past this request's deadline")
                result = await self._batched(image, checked)  # type: ignore[misc,call-arg]
        finally:
            self._in_flight -= 1
        if isinstance(result, Exception):
            raise result
        metrics.observe("detect_objects", time.monotonic() - started)
        # One increment per label, not per object: a Ray metric call costs tens of
        # microseconds, and an image can hold hundreds of detections.
        for label, count in Counter(found.label for found in result.detections).items():
            metrics.objects_detected().inc(count, tags={"label": label})
        return result

    # serve.batch's stubs expect a one-argument function; it batches each argument separately.
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)  # type: ignore[arg-type]
    async def _batched(  # type: ignore[misc]
        self, images: list[np.ndarray | ModelImage], params: list[DetectParams]
    ) -> list[ObjectsResult | Exception]:
        return await self._infer(images, params)

    async def _infer(
        self, images: list[np.ndarray | ModelImage], params: list[DetectParams]
    ) -> list[ObjectsResult | Exception]:
        engine = self.slot.get()
        self.batches += 1
        self.images += len(images)
        # On the inference thread: torch releases the GIL, the event loop keeps batching.
        loop = asyncio.get_running_loop()
        self._model_free.clear()
        try:
            return await loop.run_in_executor(self._inference, engine.predict, images, params)
        finally:
            self._model_free.set()

    def check_health(self) -> None:
        check_memory()

    def status(self) -> dict[str, Any]:
        engine = self.slot.engine
        return {
            **self.slot.status(),
            "model": self.weights,
            "device": engine.device if engine else None,
            "classes": len(engine.names) if engine else None,
            "batches": self.batches,
            "images": self.images,
            "max_batch_size": self.max_batch_size,
            "batch_wait_timeout_s": self.batch_wait_timeout_s,
        }
