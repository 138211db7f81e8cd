"""What the AI routes do: decode once in the Preprocessor, hand its DeploymentResponse straight
to a model deployment (Serve resolves it there, no round trip through the ingress), and draw
the boxes when asked."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.serve.handle import DeploymentHandle

from pipelines.detection import DetectParams
from pipelines.encode import FormatName
from pipelines.faces import FaceParams
from pipelines.limits import Limits, check_upload_size
from pipelines.ocr import OcrParams
from pipelines.pipeline import ProcessedImage
from pipelines.results import Box, FacesResult, ObjectsResult, OcrResult
from pipelines.tasks import AiStep, DetectFacesStep, DetectObjectsStep
from serve_app.observe.tracing import call_span


class AiService:
    def __init__(
        self,
        preprocessor: DeploymentHandle[Any],
        detector: DeploymentHandle[Any],
        ocr: DeploymentHandle[Any],
        faces: DeploymentHandle[Any],
        limits: Limits,
    ) -> None:
        self.preprocessor = preprocessor
        self.detector = detector
        self.ocr = ocr
        self.faces = faces
        self.limits = limits

    def _pixels(self, data: bytes) -> Any:
        check_upload_size(len(data), self.limits)
        return self.preprocessor.decode_rgb.remote(data)

    # Each span covers the decode in the Preprocessor and the model call it feeds.
    async def detect_objects(self, data: bytes, params: DetectParams) -> ObjectsResult:
        with call_span("YoloDetector", "detect"):
            result: ObjectsResult = await self.detector.detect.remote(self._pixels(data), params)
        return result

    async def read_text(self, data: bytes, params: OcrParams) -> OcrResult:
        with call_span("OcrReader", "read"):
            result: OcrResult = await self.ocr.read.remote(self._pixels(data), params)
        return result

    async def detect_faces(self, data: bytes, params: FaceParams) -> FacesResult:
        with call_span("FaceDetector", "detect"):
            result: FacesResult = await self.faces.detect.remote(self._pixels(data), params)
        return result

    # The same models on pixels the caller already has (the URL API's smart crop decodes a
    # small copy itself: no hop through the Preprocessor for a thumbnail's focal point).
    async def faces_in(self, pixels: np.ndarray, params: FaceParams) -> FacesResult:
        with call_span("FaceDetector", "detect"):
            result: FacesResult = await self.faces.detect.remote(pixels, params)
        return result

    async def objects_in(self, pixels: np.ndarray, params: DetectParams) -> ObjectsResult:
        with call_span("YoloDetector", "detect"):
            result: ObjectsResult = await self.detector.detect.remote(pixels, params)
        return result

    async def run_step(self, data: bytes, step: AiStep) -> ObjectsResult | OcrResult | FacesResult:
        """One AI step of a batch pipeline (a step is its engine's parameters plus `op`)."""
        if isinstance(step, DetectObjectsStep):
            return await self.detect_objects(data, step)
        if isinstance(step, DetectFacesStep):
            return await self.detect_faces(data, step)
        return await self.read_text(data, step)

    async def annotate(
        self,
        data: bytes,
        boxes: list[tuple[Box, str]],
        fmt: FormatName | None,
        quality: int | None,
    ) -> ProcessedImage:
        with call_span("Preprocessor", "annotate"):
            image: ProcessedImage = await self.preprocessor.annotate.remote(
                data, boxes, fmt, quality
            )
        return image

    async def status(self) -> dict[str, Any]:
        return {
            "objects": await self.detector.status.remote(),
            "ocr": await self.ocr.status.remote(),
            "faces": await self.faces.status.remote(),
        }
