"""OcrReader: text in images with Tesseract or EasyOCR, chosen per request.

user_config: default_engine (tesseract | easyocr), threads (torch CPU threads for EasyOCR).
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
from pipelines.ocr import EasyOcrEngine, OcrEngineName, OcrParams, TesseractEngine
from pipelines.results import OcrResult
from pipelines.spec import validated


@serve.deployment(name="OcrReader", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=4)
class OcrReader:
    def __init__(self, default_engine: OcrEngineName = "tesseract", threads: int = 1) -> None:
        import torch

        self.default_engine: OcrEngineName = default_engine
        torch.set_num_threads(threads)
        gpu = torch.cuda.is_available()
        self.slots: dict[str, EngineSlot[Any]] = {
            "tesseract": EngineSlot("Tesseract", TesseractEngine),
            "easyocr": EngineSlot("EasyOCR", lambda: EasyOcrEngine(gpu=gpu)),
        }

    def reconfigure(self, config: dict[str, Any]) -> None:
        if config.get("default_engine"):
            self.default_engine = OcrParams(engine=config["default_engine"]).engine or "tesseract"
        if "threads" in config:
            import torch

            torch.set_num_threads(int(config["threads"]))

    async def read(
        self, image: np.ndarray, params: OcrParams | dict[str, Any] | None = None
    ) -> OcrResult:
        checked = validated(OcrParams, params)
        engine = self.slots[checked.engine or self.default_engine].get()
        started = time.monotonic()
        result: OcrResult = await asyncio.to_thread(engine.read, image, checked.lang)
        metrics.observe("ocr", time.monotonic() - started)
        for block in result.blocks:
            if block.confidence is not None:
                metrics.ocr_confidence().observe(block.confidence, tags={"engine": result.engine})
        return result

    def check_health(self) -> None:
        check_memory()

    def status(self) -> dict[str, Any]:
        return {
            "default_engine": self.default_engine,
            "engines": {name: slot.status() for name, slot in self.slots.items()},
        }
