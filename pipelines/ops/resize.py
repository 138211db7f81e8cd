"""resize: fit (keep aspect), exact, fill (cover, then crop at a gravity). Never upscales
unless `upscale` is true: a target larger than the source is scaled down, keeping its aspect."""

from __future__ import annotations

import math
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from pipelines import regions as rg
from pipelines.cost import StepCost, megapixels
from pipelines.errors import InvalidParameter
from pipelines.limits import Limits, check_pixels
from pipelines.ops.gravity import Gravity, gravity_finding, place
from pipelines.ops.registry import StepContext, also_contextual, register
from pipelines.regions import Regions

# Lanczos after a box `reduce()` by an integer factor: near Lanczos quality at a fraction of the
# cost for big shrinks (Pillow's own recommendation for reducing_gap >= 3).
_REDUCING_GAP = 3.0

ResizeMode = Literal["fit", "exact", "fill"]

# Work per megapixel (bench/cost_calibration.py, "resize"): the box reduce reads every source
# pixel, Lanczos writes every result pixel; smart gravity adds a pass over a small copy, which
# costs a thumbnail of the source.
RESIZE_WORK_PER_SOURCE_MP = 1.5
RESIZE_WORK_PER_RESULT_MP = 9.0
SMART_WORK_PER_SOURCE_MP = 2.0


class ResizeStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["resize"] = "resize"
    mode: ResizeMode = Field("fit", description="fit keeps the aspect ratio")
    gravity: Gravity = Field(
        "center",
        description="where fill crops: center, smart, faces, objects or objects:label,...",
    )
    upscale: bool = Field(False, description="allow a result larger than the source")
    width: int | None = Field(None, ge=1, le=16384)
    height: int | None = Field(None, ge=1, le=16384, validate_default=True)

    @field_validator("height")
    @classmethod
    def _dimensions_given(cls, height: int | None, info: ValidationInfo) -> int | None:
        width = info.data.get("width")
        mode = info.data.get("mode", "fit")
        if "width" not in info.data:  # width itself failed validation; it has its own error
            return height
        if width is None and height is None:
            raise ValueError("give width, height or both")
        if mode != "fit" and (width is None or height is None):
            raise ValueError(f"mode {mode} needs both width and height")
        return height

    def target_box(self, src_w: int, src_h: int) -> tuple[int, int]:
        """The result's size for a src_w x src_h source."""
        if self.mode == "fit":
            scales = [s for s in (_ratio(self.width, src_w), _ratio(self.height, src_h)) if s]
            scale = min(scales)
            if not self.upscale:
                scale = min(scale, 1.0)
            return max(1, round(src_w * scale)), max(1, round(src_h * scale))
        assert self.width is not None and self.height is not None
        w, h = self.width, self.height
        if not self.upscale and (w > src_w or h > src_h):
            k = min(src_w / w, src_h / h)
            w, h = max(1, math.floor(w * k)), max(1, math.floor(h * k))
        return w, h

    def cost(self, width: int, height: int) -> StepCost:
        w, h = self.target_box(width, height)
        work = RESIZE_WORK_PER_SOURCE_MP * megapixels(width, height)
        work += RESIZE_WORK_PER_RESULT_MP * megapixels(w, h)
        if self.mode == "fill" and self.gravity != "center":  # detections fall back to smart
            work += SMART_WORK_PER_SOURCE_MP * megapixels(width, height)
        # What grows the work past the source's own price is the result's size.
        field = (
            ("width" if (self.width or 0) >= (self.height or 0) else "height")
            if (w * h > width * height)
            else None
        )
        return StepCost(work, w, h, field)

    def findings(self) -> list[tuple[str, bool]]:
        """The detection a fill's gravity aims at (not required: without it, smart)."""
        key = gravity_finding(self.gravity) if self.mode == "fill" else None
        return [(key, False)] if key else []

    def pinned(self, src_w: int, src_h: int) -> ResizeStep:
        """This step with its result size fixed from the true source size.

        After shrink-on-load the decoded image is a rounded-up DCT scale of the source, so its
        aspect is off by a fraction of a pixel; a fit recomputed from it could differ by a
        pixel from the same request on a PNG. Pinning makes the size depend on the source only.
        """
        if self.mode != "fit":
            return self  # exact and fill sizes come from the request, not the source's aspect
        w, h = self.target_box(src_w, src_h)
        return self.model_copy(update={"mode": "exact", "width": w, "height": h, "upscale": True})

    def decode_hint(self, src_w: int, src_h: int) -> tuple[int, int]:
        """Smallest source size this step needs (for JPEG shrink-on-load)."""
        w, h = self.target_box(src_w, src_h)
        if self.mode == "fill":
            scale = max(w / src_w, h / src_h)
            return math.ceil(src_w * scale), math.ceil(src_h * scale)
        return w, h


def _ratio(target: int | None, source: int) -> float | None:
    return None if target is None else target / source


@register("resize")
def apply(img: Image.Image, step: ResizeStep, limits: Limits) -> Image.Image:
    return _resized(img, step, limits, ())[0]


def _resized(
    img: Image.Image, step: ResizeStep, limits: Limits, regions: Regions
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The result, and the window of `img` it shows."""
    src_w, src_h = img.size
    whole = (0.0, 0.0, float(src_w), float(src_h))
    w, h = step.target_box(src_w, src_h)
    if max(w, h) > limits.max_side:
        raise InvalidParameter(
            f"the result would be {w}x{h}; the longest side allowed is {limits.max_side}",
            field="width" if w > limits.max_side else "height",
        )
    check_pixels(w, h, limits, what="the result")
    if (w, h) == (src_w, src_h):
        return img, whole
    if step.mode != "fill":
        return img.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP), whole
    box = _window(img, step, w, h, regions)
    out = img.resize((w, h), Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP)
    return out, box


def _window(
    img: Image.Image, step: ResizeStep, w: int, h: int, regions: Regions
) -> tuple[float, float, float, float]:
    """Cover: the largest window of the target's aspect, placed by gravity (resampled once)."""
    src_w, src_h = img.size
    if src_w * h > src_h * w:
        crop_w, crop_h = src_h * w / h, float(src_h)
    else:
        crop_w, crop_h = float(src_w), src_w * h / w
    x, y = place(img, crop_w, crop_h, step.gravity, regions)
    return (x, y, x + crop_w, y + crop_h)


@also_contextual("resize")
def follow(img: Image.Image, step: ResizeStep, limits: Limits, ctx: StepContext) -> Image.Image:
    out, box = _resized(img, step, limits, ctx.regions)
    if ctx.regions and out is not img:
        ctx.regions = rg.window(ctx.regions, box, out.size)
    return out
