"""The URL API's `smart`: regions of interest from our own deployments, found before the
pipeline runs — faces (FaceDetector), else objects (YoloDetector), through their handles —
on a small copy of the source decoded here. What they find becomes the pipeline's regions
(in source pixels), which the thumbnail's crop aims at; when they find nothing, the pipeline
falls back to the busiest part of the picture (its own `smart` energy).

A detector that fails (weights not loaded, replica down) is skipped, as thumbor's
IGNORE_SMART_ERRORS does; the result is then marked not to be kept, so the full answer is
computed again once the detector is back.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from pipelines.detection import DetectParams
from pipelines.faces import FaceParams
from pipelines.focus import detection_image, regions_from
from pipelines.limits import Limits
from pipelines.regions import MAX_REGIONS
from pipelines.results import Box
from pipelines.spec import DetectKind, PipelineSpec
from serve_app.services.ai import AiService

log = logging.getLogger("ray.serve")
OBJECT_CONFIDENCE = 0.35


class FocusFinder:
    def __init__(self, ai: AiService, limits: Limits) -> None:
        self.ai = ai
        self.limits = limits

    async def _find(self, kind: DetectKind, pixels: np.ndarray) -> list[tuple[Box, str]]:
        if kind == "faces":
            faces = await self.ai.faces_in(pixels, FaceParams())
            return [(face.box, "face") for face in faces.faces]
        objects = await self.ai.objects_in(pixels, DetectParams(confidence=OBJECT_CONFIDENCE))
        return [(d.box, d.label) for d in objects.detections]

    async def __call__(self, data: bytes, spec: PipelineSpec) -> tuple[PipelineSpec, bool]:
        """`spec` with what the first kind in `spec.detect` to find anything found, and
        whether every detector asked could answer."""
        if not spec.detect:
            return spec, True
        pixels, scale = await asyncio.to_thread(detection_image, data, self.limits)
        complete = True
        for kind in spec.detect:
            try:
                found = await self._find(kind, pixels)
            except Exception as exc:  # noqa: BLE001 - any detector failure only loses the hint
                log.warning("smart: %s detection failed, skipped: %r", kind, exc)
                complete = False
                continue
            if found:
                regions = [*spec.regions, *regions_from(found, scale)][:MAX_REGIONS]
                return spec.model_copy(update={"regions": regions}), complete
        return spec, complete
