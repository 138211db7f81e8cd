"""What the AI engines return, in the original image's upright pixel coordinates.

These are the JSON response bodies of /detect-objects, /detect-faces and /ocr, and what other
Ray apps get back from the deployments' handles.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Box(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def clipped(cls, x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
        """A box clamped to the image, rounded to 0.1 px."""

        def clamp(v: float, hi: int) -> float:
            return round(min(max(float(v), 0.0), float(hi)), 1)

        return cls(
            x1=clamp(x1, width), y1=clamp(y1, height), x2=clamp(x2, width), y2=clamp(y2, height)
        )

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


class Detection(BaseModel):
    label: str
    class_id: int
    confidence: float = Field(ge=0, le=1)
    box: Box


class ObjectsResult(BaseModel):
    detections: list[Detection]
    width: int
    height: int
    model: str


class Face(BaseModel):
    box: Box
    confidence: float | None = Field(None, description="absent for engines that give none")


class FacesResult(BaseModel):
    faces: list[Face]
    width: int
    height: int
    engine: str


class OcrBlock(BaseModel):
    text: str
    confidence: float = Field(ge=0, le=1)
    box: Box


class OcrResult(BaseModel):
    text: str
    blocks: list[OcrBlock]
    engine: str
    width: int
    height: int
