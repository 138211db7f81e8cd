"""Face detection: OpenCV's Haar cascade (OpenCV 4.x ships it) and MTCNN, a CNN whose weights
ship inside facenet-pytorch.

Both look at the image at most `sizing.FACES_MAX_SIDE` on its longest side; `min_size` is in
source pixels and shrinks with the image (never below the engine's own window), and boxes come
back in source pixels."""

from __future__ import annotations

import threading
from typing import Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from pipelines.cost import StepCost, megapixels
from pipelines.results import Face, FacesResult
from pipelines.sizing import FACES_MAX_SIDE, ModelImage, fit_side, working

FaceEngineName = Literal["haar", "mtcnn"]
DEFAULT_ENGINE: FaceEngineName = "haar"

# Work per megapixel of the working image at the default parameters (bench/cost_calibration.py,
# "models"). Haar scans a pyramid whose levels shrink by scale_factor, starting where its 24 px
# window matches min_size; MTCNN's first network scans a pyramid (factor 0.709) starting where
# its 12 px window matches min_size, so a small min_size enlarges the image it scans. Both are
# priced relative to min_size 30 as (30 / min_size)^2.
HAAR_WORK_PER_MP = 200.0
MTCNN_WORK_PER_MP = 110.0
MIN_WORKING_FACE = 24


def _pyramid(step: float) -> float:
    """Pixels of a pyramid whose sides shrink by `step` per level, per pixel of its base."""
    return 1.0 / (1.0 - 1.0 / (step * step))


class FaceParams(BaseModel):
    engine: FaceEngineName | None = Field(None, description="haar or mtcnn; default: set")
    scale_factor: float = Field(1.1, gt=1.0, le=2.0, description="haar: image pyramid step")
    min_neighbors: int = Field(5, ge=0, le=50, description="haar: overlapping hits needed")
    min_size: int = Field(30, ge=4, le=4096, description="smallest face side, pixels")
    confidence: float = Field(0.9, ge=0, le=1, description="mtcnn: minimum probability")

    def working_side(self) -> int:
        return FACES_MAX_SIDE

    def working_min_size(self, scale: float) -> int:
        """min_size on an image scaled by `scale` (working / source pixels). On a shrunk image
        a face must still span `MIN_WORKING_FACE` px: below that neither engine finds faces
        reliably, and MTCNN would enlarge its pyramid to look (the cost of a 27 MP photo
        would come back)."""
        if scale >= 1.0:
            return self.min_size
        return max(MIN_WORKING_FACE, round(self.min_size * scale))

    def cost(self, width: int, height: int) -> StepCost:
        w, h = fit_side(width, height, FACES_MAX_SIDE)
        smallest = max(4, self.working_min_size(w / width))
        if (self.engine or DEFAULT_ENGINE) == "haar":
            # Relative to the defaults: scale_factor 1.1 and a 30 px min_size.
            levels = _pyramid(self.scale_factor) / _pyramid(1.1)
            start = (30 / smallest) ** 2
            work = HAAR_WORK_PER_MP * megapixels(w, h) * levels * start
            field = "scale_factor" if levels > start else "min_size"
        else:
            start = (30 / smallest) ** 2
            work = MTCNN_WORK_PER_MP * megapixels(w, h) * start
            field = "min_size"
        return StepCost(work, width, height, field if work > 0 else None)


class HaarEngine:
    """One cascade per thread: a CascadeClassifier keeps scratch state between calls, and two
    threads sharing one mix up each other's detections (found when a batch's items, run
    concurrently, got each other's faces)."""

    name = "haar"
    PATH = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]

    def __init__(self) -> None:
        self._local = threading.local()
        self._cascade()  # fail at load time, not at the first request

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade: cv2.CascadeClassifier | None = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(self.PATH)
            if cascade.empty():
                raise RuntimeError(f"could not load the Haar cascade from {self.PATH}")
            self._local.cascade = cascade
        return cascade

    def detect(self, image: np.ndarray | ModelImage, params: FaceParams) -> FacesResult:
        work = working(image, FACES_MAX_SIDE)
        gray = cv2.equalizeHist(cv2.cvtColor(work.pixels, cv2.COLOR_RGB2GRAY))
        smallest = params.working_min_size(work.scale)
        found = self._cascade().detectMultiScale(
            gray,
            scaleFactor=params.scale_factor,
            minNeighbors=params.min_neighbors,
            minSize=(smallest, smallest),
        )
        faces = [
            Face(box=work.to_source(x, y, x + w, y + h))
            for x, y, w, h in (found if len(found) else [])
        ]
        return FacesResult(
            faces=faces, width=work.source_width, height=work.source_height, engine=self.name
        )


class MtcnnEngine:
    name = "mtcnn"

    def __init__(self, *, device: str = "cpu") -> None:
        from facenet_pytorch import MTCNN

        self.model = MTCNN(keep_all=True, device=device)
        # min_face_size is set on the shared model per call: one call at a time.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray | ModelImage, params: FaceParams) -> FacesResult:
        work = working(image, FACES_MAX_SIDE)
        with self._lock:
            self.model.min_face_size = params.working_min_size(work.scale)
            boxes, probs = self.model.detect(Image.fromarray(work.pixels))
        faces = []
        if boxes is None:  # no face: MTCNN answers boxes=None, probs=[None]
            boxes, probs = [], []
        for box, prob in zip(boxes, probs, strict=True):
            if float(prob) >= params.confidence:
                faces.append(
                    Face(
                        box=work.to_source(box[0], box[1], box[2], box[3]),
                        confidence=round(float(prob), 4),
                    )
                )
        return FacesResult(
            faces=faces, width=work.source_width, height=work.source_height, engine=self.name
        )
