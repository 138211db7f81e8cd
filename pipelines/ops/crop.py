"""crop: a box (x, y, width, height) in source pixels, or the largest window of an aspect ratio
("16:9") placed by gravity. A box reaching past the edge is clipped to the image; a box that
starts outside it is an error."""

from __future__ import annotations

import re
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from pipelines import regions as rg
from pipelines.cost import StepCost, megapixels
from pipelines.errors import InvalidParameter
from pipelines.limits import Limits
from pipelines.ops.gravity import Gravity, gravity_finding, place
from pipelines.ops.registry import StepContext, also_contextual, register
from pipelines.regions import Regions

# Work per megapixel (bench/cost_calibration.py, "crop"): a copy of the window; smart gravity
# scores a small copy of the whole image first.
CROP_WORK_PER_RESULT_MP = 0.5
SMART_WORK_PER_SOURCE_MP = 2.0

_ASPECT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*$")


def parse_aspect(text: str) -> float:
    match = _ASPECT.match(text)
    if not match or float(match.group(1)) <= 0 or float(match.group(2)) <= 0:
        raise ValueError('aspect must look like "16:9" with positive numbers')
    return float(match.group(1)) / float(match.group(2))


class CropStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["crop"] = "crop"
    x: int = Field(0, ge=0, le=1_000_000)
    y: int = Field(0, ge=0, le=1_000_000)
    aspect: str | None = Field(None, description='aspect ratio such as "16:9"; replaces the box')
    gravity: Gravity = Field(
        "center", description="aspect: center, smart, faces, objects or objects:label,..."
    )
    width: int | None = Field(None, ge=1, le=1_000_000)
    height: int | None = Field(None, ge=1, le=1_000_000, validate_default=True)
    outside: Literal["error", "ignore"] = Field(
        "error", description="a box starting outside the image: refused, or no crop (thumbor's)"
    )

    @field_validator("aspect")
    @classmethod
    def _aspect_parses(cls, aspect: str | None) -> str | None:
        if aspect is not None:
            parse_aspect(aspect)
        return aspect

    @field_validator("height")
    @classmethod
    def _box_or_aspect(cls, height: int | None, info: ValidationInfo) -> int | None:
        if "aspect" not in info.data or "width" not in info.data:
            return height  # an earlier field failed and reports itself
        if info.data["aspect"] is None and (info.data["width"] is None or height is None):
            raise ValueError("give width and height (with x, y), or aspect")
        return height

    def cost(self, width: int, height: int) -> StepCost:
        w, h = _size(self, width, height)
        work = CROP_WORK_PER_RESULT_MP * megapixels(w, h)
        if self.aspect is not None and self.gravity != "center":  # detections fall back to smart
            work += SMART_WORK_PER_SOURCE_MP * megapixels(width, height)
        return StepCost(work, w, h)

    def findings(self) -> list[tuple[str, bool]]:
        """The detection its gravity aims at (not required: without it, smart)."""
        key = gravity_finding(self.gravity) if self.aspect is not None else None
        return [(key, False)] if key else []


def _size(step: CropStep, src_w: int, src_h: int) -> tuple[int, int]:
    """The window's size on a src_w x src_h image (clipped as `apply` clips it)."""
    if step.aspect is not None:
        ratio = parse_aspect(step.aspect)
        if src_w / src_h > ratio:
            return max(1, round(src_h * ratio)), src_h
        return src_w, max(1, round(src_w / ratio))
    assert step.width is not None and step.height is not None
    return (
        max(1, min(step.x + step.width, src_w) - step.x),
        max(1, min(step.y + step.height, src_h) - step.y),
    )


def crop_box(img: Image.Image, step: CropStep, regions: Regions = ()) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) this step cuts out of `img` (`regions`: in its pixels,
    what a detection gravity aims at)."""
    src_w, src_h = img.size
    if step.aspect is not None:
        ratio = parse_aspect(step.aspect)
        crop_w, crop_h = (
            (src_h * ratio, float(src_h))
            if src_w / src_h > ratio
            else (
                float(src_w),
                src_w / ratio,
            )
        )
        x, y = place(img, crop_w, crop_h, step.gravity, regions)
        # Round the size, not each edge, so even a sliver of a window keeps one pixel.
        w, h = max(1, round(crop_w)), max(1, round(crop_h))
        left, top = min(round(x), src_w - w), min(round(y), src_h - h)
        box = (left, top, left + w, top + h)
    else:
        assert step.width is not None and step.height is not None
        if (step.x >= src_w or step.y >= src_h) and step.outside == "ignore":
            return (0, 0, src_w, src_h)
        if step.x >= src_w or step.y >= src_h:
            raise InvalidParameter(
                f"the crop box starts outside the {src_w}x{src_h} image",
                field="x" if step.x >= src_w else "y",
            )
        box = (
            step.x,
            step.y,
            min(step.x + step.width, src_w),
            min(step.y + step.height, src_h),
        )
    return box


def _cut(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    return img if box == (0, 0, img.width, img.height) else img.crop(box)


@register("crop")
def apply(img: Image.Image, step: CropStep, limits: Limits) -> Image.Image:
    return _cut(img, crop_box(img, step))


@also_contextual("crop")
def follow(img: Image.Image, step: CropStep, limits: Limits, ctx: StepContext) -> Image.Image:
    box = crop_box(img, step, ctx.regions)
    ctx.regions = rg.crop(ctx.regions, box)
    return _cut(img, box)
