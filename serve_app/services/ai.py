"""What the AI routes do: decode once in the Preprocessor, hand its DeploymentResponse straight
to a model deployment (Serve resolves it there, no round trip through the ingress), and draw
the boxes when asked.

The Preprocessor decodes only what the model will look at (its working size, pipelines/
sizing.py), after pricing the call from the header (decode and model) against the live limits.
Each call has a deadline, LIMITS_PIPELINE_TIMEOUT_S from its start: both hops get what remains
of it, and past it the client gets 504 and the calls are cancelled (Serve carries that to the
replicas, whose children are killed: deployments/killable.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.serve.handle import DeploymentHandle

from pipelines.detection import DetectParams
from pipelines.encode import FormatName
from pipelines.faces import FaceParams
from pipelines.limits import Limits, check_upload_size, deadline_after, time_left
from pipelines.ocr import OcrParams
from pipelines.pipeline import ProcessedImage
from pipelines.results import Box, FacesResult, ObjectsResult, OcrResult
from pipelines.tasks import AiStep, DetectFacesStep, DetectObjectsStep
from serve_app.observe.tracing import call_span
from serve_app.services.image_work import deployments_of, within

ModelParams = DetectParams | OcrParams | FaceParams


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

    def _yolo(self, params: DetectParams) -> DeploymentHandle[Any]:
        """The detector's handle, routed to a replica with the named model loaded."""
        if params.model:
            return self.detector.options(multiplexed_model_id=params.model)
        return self.detector

    async def _model(self, model: Any, data: bytes, params: ModelParams) -> Any:
        """Decode for the model in the Preprocessor, feed its response to `model`, by the
        deadline."""
        check_upload_size(len(data), self.limits)
        deadline = deadline_after(self.limits)
        pixels = self.preprocessor.decode_for_model.remote(data, params, **time_left(deadline))
        # Counted now, sent on when the decode is done: the model is charged for its time.
        call = model.remote(pixels, params, **time_left(deadline))
        return await within(deadline, call, deployments_of(self.preprocessor, model))

    # Each span covers the decode in the Preprocessor and the model call it feeds.
    async def detect_objects(self, data: bytes, params: DetectParams) -> ObjectsResult:
        with call_span("YoloDetector", "detect"):
            result: ObjectsResult = await self._model(self._yolo(params).detect, data, params)
        return result

    async def read_text(self, data: bytes, params: OcrParams) -> OcrResult:
        with call_span("OcrReader", "read"):
            result: OcrResult = await self._model(self.ocr.read, data, params)
        return result

    async def detect_faces(self, data: bytes, params: FaceParams) -> FacesResult:
        with call_span("FaceDetector", "detect"):
            result: FacesResult = await self._model(self.faces.detect, data, params)
        return result

    # The same models on pixels the caller already has (the URL API's smart crop decodes a
    # small copy itself: no hop through the Preprocessor for a thumbnail's focal point).
    async def faces_in(self, pixels: np.ndarray, params: FaceParams) -> FacesResult:
        with call_span("FaceDetector", "detect"):
            result: FacesResult = await self.faces.detect.remote(pixels, params)
        return result

    async def objects_in(self, pixels: np.ndarray, params: DetectParams) -> ObjectsResult:
        with call_span("YoloDetector", "detect"):
            result: ObjectsResult = await self._yolo(params).detect.remote(pixels, params)
        return result

    async def text_in(self, pixels: np.ndarray, params: OcrParams) -> OcrResult:
        with call_span("OcrReader", "read"):
            result: OcrResult = await self.ocr.read.remote(pixels, params)
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
        deadline = deadline_after(self.limits)
        with call_span("Preprocessor", "annotate"):
            call = self.preprocessor.annotate.remote(
                data, boxes, fmt, quality, **time_left(deadline)
            )
            image: ProcessedImage = await within(deadline, call, deployments_of(self.preprocessor))
        return image

    async def status(self) -> dict[str, Any]:
        return {
            "objects": await self.detector.status.remote(),
            "ocr": await self.ocr.status.remote(),
            "faces": await self.faces.status.remote(),
        }
