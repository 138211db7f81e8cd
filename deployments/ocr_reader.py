"""OcrReader: text in images with Tesseract or EasyOCR, chosen per request.

user_config: default_engine (tesseract | easyocr), threads (torch CPU threads for EasyOCR).

The default engine loads at start, the other on its first request (engine_slot.py): EasyOCR
brings torch, most of an idle replica's memory, so a Tesseract replica never imports it.
"""

from __future__ import annotations

import asyncio
import sys
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
        self.default_engine: OcrEngineName = default_engine
        self.threads = threads
        self.slots: dict[str, EngineSlot[Any]] = {
            "tesseract": EngineSlot(
                "Tesseract", TesseractEngine, lazy=default_engine != "tesseract"
            ),
            "easyocr": EngineSlot("EasyOCR", self._easyocr, lazy=default_engine != "easyocr"),
        }

    def _easyocr(self) -> EasyOcrEngine:
        import torch

        # Ray sets OMP_NUM_THREADS from num_cpus (floor, at least 1); set ours before any run.
        torch.set_num_threads(self.threads)
        return EasyOcrEngine(gpu=torch.cuda.is_available())

    def reconfigure(self, config: dict[str, Any]) -> None:
        if config.get("default_engine"):
            self.default_engine = OcrParams(engine=config["default_engine"]).engine or "tesseract"
        if "threads" in config:
            self.threads = int(config["threads"])
            torch = sys.modules.get("torch")  # not imported yet: _easyocr applies it at load
            if torch is not None:
                torch.set_num_threads(self.threads)

    async def read(
        self, image: np.ndarray, params: OcrParams | dict[str, Any] | None = None
    ) -> OcrResult:
        checked = validated(OcrParams, params)
        engine = await self.slots[checked.engine or self.default_engine].aget()
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
