"""OcrReader: text in images with Tesseract or EasyOCR, chosen per request.

user_config: default_engine (tesseract | easyocr), threads (torch CPU threads for EasyOCR),
workers, limits (deployments/engine_host.py).

The engines run in a child process that a deadline or a departed client kills (engine_host.py);
the default one loads at start, the other on its first request: a Tesseract replica never
imports torch. Reads are bounded by an overview size plus detail tiles (pipelines/ocr.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from ray import serve

from deployments import metrics
from deployments.engine_host import EngineHost
from pipelines.ocr import OcrEngineName, OcrParams
from pipelines.results import OcrResult
from pipelines.sizing import ModelImage


@serve.deployment(name="OcrReader", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=4)
class OcrReader(EngineHost[OcrParams, OcrResult]):
    family = "ocr"
    params_model = OcrParams
    titles: ClassVar[dict[str, str]] = {"tesseract": "Tesseract", "easyocr": "EasyOCR"}

    def __init__(
        self,
        default_engine: OcrEngineName = "tesseract",
        threads: int = 1,
        limits: dict[str, Any] | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__(default_engine, limits, threads, workers)

    async def read(
        self,
        image: np.ndarray | ModelImage,
        params: OcrParams | dict[str, Any] | None = None,
        timeout_s: float | None = None,
        sent_at: float | None = None,
    ) -> OcrResult:
        """Text in one upright RGB image; boxes in its pixels (a ModelImage's source's)."""
        result: OcrResult = await self._call(image, params, timeout_s, sent_at)
        for block in result.blocks:
            if block.confidence is not None:
                metrics.ocr_confidence().observe(block.confidence, tags={"engine": result.engine})
        return result
