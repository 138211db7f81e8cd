"""YoloDetector: object detection with dynamic batching (@serve.batch), on the GPU when the
replica has one (`ray_actor_options.num_gpus` in serve_config.yaml), else on the CPU.

user_config (changes live through reconfigure): weights, max_batch_size, batch_wait_timeout_s,
threads (torch CPU threads; ultralytics and Ray both lower it, so it is set on every batch),
limits (pipelines/limits.py: the same block as every other deployment's), registry and
max_num_models_per_replica.

Several models: the default weights are always loaded; the operator's registry
(MODELS_YOLO_REGISTRY: name -> weights) is served with `@serve.multiplexed`, so a request
naming a model (`DetectParams.model`, sent as the handle's multiplexed_model_id) goes to a
replica that has it, and each replica keeps at most max_num_models_per_replica of them (least
recently used out). Weights only ever come from the registry: a client names a model, never
sends one (a .pt file is a pickle). Serve splits a batch by model id, and `_infer` runs one
model call per model all the same, so a batch never mixes models.

Each image is priced (pipelines/detection.py: a fixed figure at its image_size) and checked
against the live limits, and reaches the model at its input size (pipelines/sizing.py). A batch
serves several requests at once, so it is not killed for one of them: its work is bounded by
max_batch_size times the priciest admitted image; a request whose deadline passes before its
batch starts is answered 504 and never joins one.
"""

from __future__ import annotations

import asyncio
import os
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
from pipelines.errors import DeadlineExceeded, InvalidParameter
from pipelines.limits import Limits, apply_live, deadline_after
from pipelines.results import ObjectsResult
from pipelines.sizing import ModelImage
from pipelines.spec import validated

DEFAULT_MAX_MODELS = 2  # registry models a replica keeps (max_num_models_per_replica)
DEFAULT_MAX_BATCH = 4  # the CPU's best (serve_config.yaml says why); user_config sets it


def _replica_id() -> str | None:
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - outside a replica (tests in process)
        return None


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
        registry: dict[str, str] | None = None,
    ) -> None:
        self.registry = dict(registry or {})
        self.max_models = DEFAULT_MAX_MODELS
        self.loads: Counter[str] = Counter()  # models loaded, by name
        self.calls: Counter[str] = Counter()  # model calls, by name
        self.split_batches = 0  # batches that arrived with several models (run per model)
        self.base_limits = Limits.model_validate(limits or {})
        self.limits = self.base_limits.model_copy()
        self.weights = weights
        self.threads = threads
        self.batches = 0
        self.images = 0
        self.max_batch_size = DEFAULT_MAX_BATCH
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

    def _build(self, weights: str, name: str) -> YoloEngine:
        engine = YoloEngine(weights, threads=self.threads)
        engine.warm_up()
        self.loads[name] += 1
        metrics.model_loads().inc(tags={"model": name})
        return engine

    def _load(self, weights: str) -> EngineSlot[YoloEngine]:
        name = os.path.basename(weights.removeprefix("pkg:"))
        return EngineSlot(
            f"YOLO model {weights!r}",
            lambda: self._inference.submit(self._build, weights, name).result(),
        )

    @serve.multiplexed(max_num_models_per_replica=DEFAULT_MAX_MODELS)
    async def _registered(self, name: str) -> YoloEngine:
        """A registry model, loaded on this replica (Serve keeps the LRU)."""
        loop = asyncio.get_running_loop()
        engine = await loop.run_in_executor(self._inference, self._build, self.registry[name], name)
        engine.name = name  # answers name the model asked for
        return engine

    def _multiplexer(self) -> Any:
        return getattr(self, "__serve_multiplex_wrapper", None)

    async def _engine(self, model: str | None) -> YoloEngine:
        if not model:
            return self.slot.get()
        if model not in self.registry:
            known = ", ".join(sorted(self.registry)) or "none"
            raise InvalidParameter(
                f"unknown model {model!r}; the registry has: {known}", field="model"
            )
        wrapper = self._multiplexer()
        if wrapper is not None:  # max_num_models_per_replica from user_config, live
            wrapper.max_num_models_per_replica = self.max_models
        engine: YoloEngine = await self._registered(model)
        return engine

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_live(self.limits, self.base_limits, config.get("limits"))
        if "registry" in config:
            self.registry = {str(k): str(v) for k, v in dict(config["registry"] or {}).items()}
        if "max_num_models_per_replica" in config:
            self.max_models = max(1, int(config["max_num_models_per_replica"]))
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
        sent_at: float | None = None,
    ) -> ObjectsResult:
        """Objects in one upright RGB image (batched with concurrent callers); boxes in its
        pixels (a ModelImage's source's)."""
        checked = validated(DetectParams, params)
        if checked.model and checked.model not in self.registry:
            await self._engine(checked.model)  # 422 before anything else
        if not checked.model:
            self.slot.get()  # 503 with the reason when the weights did not load
        source = ModelImage.of(image)
        estimate = check_model_cost(checked, source.source_width, source.source_height, self.limits)
        metrics.observe_estimate(estimate)
        deadline = deadline_after(self.limits, timeout_s, sent_at)
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
    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH, batch_wait_timeout_s=0.005)  # type: ignore[arg-type]
    async def _batched(  # type: ignore[misc]
        self, images: list[np.ndarray | ModelImage], params: list[DetectParams]
    ) -> list[ObjectsResult | Exception]:
        return await self._infer(images, params)

    async def _infer(
        self, images: list[np.ndarray | ModelImage], params: list[DetectParams]
    ) -> list[ObjectsResult | Exception]:
        self.batches += 1
        self.images += len(images)
        groups: dict[str | None, list[int]] = {}
        for index, p in enumerate(params):
            groups.setdefault(p.model, []).append(index)
        if len(groups) > 1:
            self.split_batches += 1
        out: list[ObjectsResult | Exception] = [RuntimeError("not run")] * len(images)
        # On the inference thread: torch releases the GIL, the event loop keeps batching.
        loop = asyncio.get_running_loop()
        self._model_free.clear()
        try:
            for model, indices in groups.items():  # one model per call, never mixed
                try:
                    engine = await self._engine(model)
                except Exception as exc:  # noqa: BLE001 - this model's requests fail alone
                    for i in indices:
                        out[i] = exc
                    continue
                self.calls[engine.name] += 1
                found = await loop.run_in_executor(
                    self._inference,
                    engine.predict,
                    [images[i] for i in indices],
                    [params[i] for i in indices],
                )
                for i, result in zip(indices, found, strict=True):
                    out[i] = result
            return out
        finally:
            self._model_free.set()

    def _loaded(self) -> list[str]:
        wrapper = self._multiplexer()
        return list(wrapper.models) if wrapper is not None else []

    def check_health(self) -> None:
        check_memory()

    def status(self) -> dict[str, Any]:
        engine = self.slot.engine
        return {
            **self.slot.status(),
            "model": self.weights,
            "device": engine.device if engine else None,
            "classes": len(engine.names) if engine else None,
            "loaded": [self.weights, *self._loaded()],
            "registry": sorted(self.registry),
            "max_num_models_per_replica": self.max_models,
            "loads": dict(self.loads),
            "calls": dict(self.calls),
            "split_batches": self.split_batches,
            "replica": _replica_id(),
            "batches": self.batches,
            "images": self.images,
            "max_batch_size": self.max_batch_size,
            "batch_wait_timeout_s": self.batch_wait_timeout_s,
        }
