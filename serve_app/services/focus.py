"""Detections a pipeline needs, found before it runs through our own deployments' handles
(FaceDetector, YoloDetector, OcrReader) on a small copy of the source decoded here, never by a
model in the ingress.

- The URL API's `smart` (`spec.detect`): faces, else objects; what the first kind finds
  becomes regions the thumbnail's crop aims at. When nothing is found, the pipeline falls back
  to the busiest part of the picture (its own `smart` energy).
- Steps that need a detection (`spec.findings()`: a redaction, drawn detections, a `faces` or
  `objects` gravity): each detection runs once per image however many steps use it (one a
  smart crop already ran is reused), and its boxes become regions of that kind, not aimed at,
  which the steps take wherever earlier steps moved them.

A detector that fails (weights not loaded, replica down) is skipped for what can do without
it (smart, a gravity: thumbor's IGNORE_SMART_ERRORS), and the result is then marked not to be
kept, so the full answer is computed again once the detector is back. A step that cannot do
without it (a redaction must never answer with the faces showing) makes the request fail with
503 model_unavailable.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from pipelines.detection import DetectParams
from pipelines.errors import ModelUnavailable, ServiceError
from pipelines.faces import FaceParams
from pipelines.focus import DETECTION_SIDE, FINDING_SIDE, detection_image, parse_key, regions_from
from pipelines.limits import Limits
from pipelines.ocr import OcrParams
from pipelines.regions import MAX_REGIONS, Region
from pipelines.results import Box
from pipelines.spec import PipelineSpec
from serve_app.errors import unwrap
from serve_app.services.ai import AiService

log = logging.getLogger("ray.serve")
OBJECT_CONFIDENCE = 0.35
Found = list[tuple[Box, str]]


class FocusFinder:
    def __init__(self, ai: AiService, limits: Limits) -> None:
        self.ai = ai
        self.limits = limits

    async def _find(self, key: str, pixels: np.ndarray) -> Found:
        target, engine = parse_key(key)
        if target == "faces":
            faces = await self.ai.faces_in(pixels, FaceParams(engine=engine))
            return [(face.box, "face") for face in faces.faces]
        if target == "text":
            text = await self.ai.text_in(pixels, OcrParams(engine=engine))
            return [(block.box, block.text) for block in text.blocks]
        params = DetectParams(confidence=OBJECT_CONFIDENCE, model=engine)  # key: objects:<model>
        objects = await self.ai.objects_in(pixels, params)
        return [(d.box, d.label) for d in objects.detections]

    async def _try(self, key: str, pixels: np.ndarray) -> Found | BaseException:
        try:
            return await self._find(key, pixels)
        except Exception as exc:  # noqa: BLE001 - the caller decides what a failure costs
            log.warning("detection %s failed: %r", key, exc)
            return exc

    async def __call__(self, data: bytes, spec: PipelineSpec) -> tuple[PipelineSpec, bool]:
        """`spec` with the regions its smart crop aims at and those its steps need, and
        whether every detector asked could answer."""
        needed = spec.findings()
        if not spec.detect and not needed:
            return spec, True
        # Steps that must find every face or word (a redaction) look at a larger copy than a
        # window's aim (smart, a detection gravity) needs.
        side = FINDING_SIDE if any(needed.values()) else DETECTION_SIDE
        pixels, scale = await asyncio.to_thread(detection_image, data, self.limits, side)
        found: dict[str, Found | BaseException] = {}
        aimed: list[Region] = []
        for kind in spec.detect:  # smart: in order, until one kind finds something
            found[kind] = await self._try(kind, pixels)
            result = found[kind]
            if not isinstance(result, BaseException) and result:
                aimed = regions_from(result, scale, kind=kind)
                break
        missing = [key for key in needed if key not in found]
        answers = await asyncio.gather(*(self._try(key, pixels) for key in missing))
        found.update(zip(missing, answers, strict=True))
        complete = True
        aimed_kind = aimed[0].kind if aimed else None
        regions = [*spec.regions, *aimed]
        if aimed_kind not in needed:  # a focal point needs no more than MAX_REGIONS boxes
            regions = regions[:MAX_REGIONS]
        for key, result in found.items():
            if isinstance(result, BaseException):
                complete = False
                if needed.get(key):
                    raise _unavailable(key, result)
            elif key in needed and key != aimed_kind:
                # Every box a step needs (a redaction must miss none): not capped.
                regions += regions_from(result, scale, kind=key, aim=False)
        return spec.model_copy(update={"regions": regions}), complete


def _unavailable(key: str, exc: BaseException) -> ServiceError:
    inner = unwrap(exc)
    if isinstance(inner, ServiceError) and inner.status < 500:
        return inner  # the request's own fault (a bad parameter): said as it is
    return ModelUnavailable(
        f"the {key} detection this pipeline needs is unavailable; try again later",
        field="steps",
    )
