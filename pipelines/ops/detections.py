"""Steps over what a detector found: `redact` (blur, pixelate or fill the boxes) and
`draw_detections` (the boxes and labels drawn, as the single endpoints' annotate=true does).

The service runs each detection a pipeline needs once per image, before the pipeline
(serve_app/services/focus.py), and hands the boxes in as regions of that detection's kind
(pipelines/focus.py keys); the steps that move pixels move them, so these steps find each box
where its pixels are now, after any resize or crop. Run without the service (no regions), both
change nothing.
"""

from __future__ import annotations

import math
from typing import Literal

from PIL import Image, ImageFilter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.cost import StepCost, megapixels
from pipelines.drawing import draw_boxes
from pipelines.faces import FaceEngineName
from pipelines.focus import Target, finding_key
from pipelines.limits import Limits
from pipelines.ocr import OcrEngineName
from pipelines.ops.registry import StepContext, register_contextual
from pipelines.regions import Region, of_kind
from pipelines.results import Box

RedactStyle = Literal["blur", "pixelate", "fill"]
_ENGINES: dict[str, tuple[str, ...]] = {
    "faces": FaceEngineName.__args__,  # type: ignore[attr-defined]
    "text": OcrEngineName.__args__,  # type: ignore[attr-defined]
    "objects": (),
}
# Work per megapixel of the image (an upper bound: every pixel inside a box). A copy of the
# image, then a box blur (Pillow's Gaussian is three box passes, cost independent of radius).
REDACT_WORK_PER_MP = 4.0
DRAW_WORK_PER_MP = 2.0


class _Finding(BaseModel):
    """What a step looks at: a detection target, the labels kept, the engine."""

    model_config = ConfigDict(extra="forbid")

    target: Target = Field("faces", description="faces, objects or text")
    classes: list[str] | None = Field(
        None,
        max_length=20,
        description="objects: the labels to take (None: every object found)",
    )
    engine: str | None = Field(
        None,
        max_length=32,
        description="faces: haar or mtcnn; text: tesseract or easyocr; default: the service's",
    )
    model: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="objects: a MODELS_YOLO_REGISTRY name; default: MODELS_YOLO_WEIGHTS",
    )

    @model_validator(mode="after")
    def _engine_fits(self) -> _Finding:
        if self.engine is not None and self.engine not in _ENGINES[self.target]:
            known = ", ".join(_ENGINES[self.target]) or "none"
            raise ValueError(f"engine {self.engine!r} is not one of {self.target}'s: {known}")
        if self.classes is not None and self.target != "objects":
            raise ValueError("classes are for target objects")
        if self.model is not None and self.target != "objects":
            raise ValueError("model is for target objects")
        return self

    @property
    def key(self) -> str:
        return finding_key(self.target, self.model if self.target == "objects" else self.engine)

    def findings(self) -> list[tuple[str, bool]]:
        """The detection it needs, required: without it the step cannot do its job."""
        return [(self.key, True)]

    def picked(self, ctx: StepContext) -> list[Region]:
        found = of_kind(ctx.regions, self.key)
        if self.classes is not None:
            wanted = {c.strip().lower() for c in self.classes}
            found = [r for r in found if r.label.lower() in wanted]
        return found


class RedactStep(_Finding):
    op: Literal["redact"] = "redact"
    style: RedactStyle = Field("blur", description="blur, pixelate or fill (black)")
    strength: int = Field(
        50, ge=1, le=100, description="blur radius / pixel block size, in % of the box's side"
    )
    padding: float = Field(
        0.1, ge=0, le=1, description="added on each side, as a fraction of the box's size"
    )

    def cost(self, width: int, height: int) -> StepCost:
        return StepCost(REDACT_WORK_PER_MP * megapixels(width, height), width, height)


class DrawDetectionsStep(_Finding):
    op: Literal["draw_detections"] = "draw_detections"

    def cost(self, width: int, height: int) -> StepCost:
        return StepCost(DRAW_WORK_PER_MP * megapixels(width, height), width, height)


def padded(region: Region, padding: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The region grown by `padding` of its size on each side, on whole pixels, in the image."""
    dx, dy = (region.x2 - region.x1) * padding, (region.y2 - region.y1) * padding
    return (
        max(0, math.floor(region.x1 - dx)),
        max(0, math.floor(region.y1 - dy)),
        min(size[0], math.ceil(region.x2 + dx)),
        min(size[1], math.ceil(region.y2 + dy)),
    )


def _hidden(part: Image.Image, style: RedactStyle, strength: int) -> Image.Image:
    side = min(part.size)
    if style == "fill":
        return Image.new(part.mode, part.size, 0)
    if style == "pixelate":
        block = max(2, round(side * strength / 150))  # default: 3 blocks across the short side
        small = (max(1, part.width // block), max(1, part.height // block))
        return part.resize(small, Image.Resampling.BOX).resize(part.size, Image.Resampling.NEAREST)
    return part.filter(ImageFilter.GaussianBlur(max(2.0, side * strength / 200)))


@register_contextual("redact")
def redact(img: Image.Image, step: RedactStep, limits: Limits, ctx: StepContext) -> Image.Image:
    boxes = [padded(r, step.padding, img.size) for r in step.picked(ctx)]
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return img
    out = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    out = out.copy() if out is img else out
    for box in boxes:  # only inside the boxes: every other pixel stays as it was
        out.paste(_hidden(out.crop(box), step.style, step.strength), box[:2])
    return out


@register_contextual("draw_detections")
def draw(
    img: Image.Image, step: DrawDetectionsStep, limits: Limits, ctx: StepContext
) -> Image.Image:
    found = step.picked(ctx)
    if not found:
        return img
    boxes = [(Box(x1=r.x1, y1=r.y1, x2=r.x2, y2=r.y2), r.label) for r in found]
    return draw_boxes(img, boxes)
