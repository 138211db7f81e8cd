"""Face detection: OpenCV's Haar cascade (OpenCV 4.x ships it) and MTCNN, a CNN whose weights
ship inside facenet-pytorch."""

from __future__ import annotations

import threading
from typing import Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from pipelines.results import Box, Face, FacesResult

FaceEngineName = Literal["haar", "mtcnn"]


class FaceParams(BaseModel):
    engine: FaceEngineName | None = Field(None, description="haar or mtcnn; default: set")
    scale_factor: float = Field(1.1, gt=1.0, le=2.0, description="haar: image pyramid step")
    min_neighbors: int = Field(5, ge=0, le=50, description="haar: overlapping hits needed")
    min_size: int = Field(30, ge=4, le=4096, description="smallest face side, pixels")
    confidence: float = Field(0.9, ge=0, le=1, description="mtcnn: minimum probability")


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

    def detect(self, image: np.ndarray, params: FaceParams) -> FacesResult:
        height, width = image.shape[:2]
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        found = self._cascade().detectMultiScale(
            gray,
            scaleFactor=params.scale_factor,
            minNeighbors=params.min_neighbors,
            minSize=(params.min_size, params.min_size),
        )
        faces = [
            Face(box=Box.clipped(x, y, x + w, y + h, width=width, height=height))
            for x, y, w, h in (found if len(found) else [])
        ]
        return FacesResult(faces=faces, width=width, height=height, engine=self.name)


class MtcnnEngine:
    name = "mtcnn"

    def __init__(self, *, device: str = "cpu") -> None:
        from facenet_pytorch import MTCNN

        self.model = MTCNN(keep_all=True, device=device)
        # min_face_size is set on the shared model per call: one call at a time.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, params: FaceParams) -> FacesResult:
        height, width = image.shape[:2]
        with self._lock:
            self.model.min_face_size = params.min_size
            boxes, probs = self.model.detect(Image.fromarray(image))
        faces = []
        if boxes is None:  # no face: MTCNN answers boxes=None, probs=[None]
            boxes, probs = [], []
        for box, prob in zip(boxes, probs, strict=True):
            if float(prob) >= params.confidence:
                faces.append(
                    Face(
                        box=Box.clipped(box[0], box[1], box[2], box[3], width=width, height=height),
                        confidence=round(float(prob), 4),
                    )
                )
        return FacesResult(faces=faces, width=width, height=height, engine=self.name)
