"""FaceDetector: OpenCV's Haar cascade, or MTCNN (a CNN) when asked.

user_config: default_engine (haar | mtcnn).

The default engine loads at start, the other on its first request (engine_slot.py): MTCNN
brings torch, most of an idle replica's memory, so a Haar replica never imports it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from ray import serve

from deployments import metrics
from deployments.engine_slot import EngineSlot
from deployments.health import check_memory
from pipelines.detection import pick_device
from pipelines.faces import FaceEngineName, FaceParams, HaarEngine, MtcnnEngine
from pipelines.results import FacesResult
from pipelines.spec import validated


@serve.deployment(name="FaceDetector", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=8)
class FaceDetector:
    def __init__(self, default_engine: FaceEngineName = "haar") -> None:
        self.default_engine: FaceEngineName = default_engine
        self.slots: dict[str, EngineSlot[Any]] = {
            "haar": EngineSlot("Haar cascade", HaarEngine, lazy=default_engine != "haar"),
            "mtcnn": EngineSlot("MTCNN", self._mtcnn, lazy=default_engine != "mtcnn"),
        }

    @staticmethod
    def _mtcnn() -> MtcnnEngine:
        import torch

        # Ray sets OMP_NUM_THREADS from num_cpus (floor, at least 1); one thread, deliberately.
        torch.set_num_threads(1)
        return MtcnnEngine(device=pick_device())  # pick_device imports torch: here, not at start

    def reconfigure(self, config: dict[str, Any]) -> None:
        if config.get("default_engine"):
            self.default_engine = FaceParams(engine=config["default_engine"]).engine or "haar"

    async def detect(
        self, image: np.ndarray, params: FaceParams | dict[str, Any] | None = None
    ) -> FacesResult:
        checked = validated(FaceParams, params)
        engine = await self.slots[checked.engine or self.default_engine].aget()
        started = time.monotonic()
        result: FacesResult = await asyncio.to_thread(engine.detect, image, checked)
        metrics.observe("detect_faces", time.monotonic() - started)
        if result.faces:  # Ray's counters refuse an increment of 0
            metrics.faces_detected().inc(len(result.faces), tags={"engine": result.engine})
        return result

    def check_health(self) -> None:
        check_memory()

    def status(self) -> dict[str, Any]:
        return {
            "default_engine": self.default_engine,
            "engines": {name: slot.status() for name, slot in self.slots.items()},
        }
