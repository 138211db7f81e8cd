"""trim: cut away a uniform border, as thumbor's `trim`. The border's colour is the top-left
(or bottom-right) pixel's; a pixel belongs to the picture when its colour is further than
`tolerance` from it (Euclidean distance over the channels, 0-442 for RGB). An image that is
all border is left as it is."""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pipelines import regions as rg
from pipelines.cost import StepCost, megapixels
from pipelines.limits import Limits
from pipelines.ops.registry import StepContext, register_contextual


class TrimStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["trim"] = "trim"
    reference: Literal["top-left", "bottom-right"] = Field(
        "top-left", description="the corner whose colour is the border's"
    )
    tolerance: int = Field(0, ge=0, le=510, description="colour distance still counted as border")

    def cost(self, width: int, height: int) -> StepCost:
        # int32 differences, squares and a channel sum, then two reductions: measured 17 table
        # lookups' time per pixel. The size it leaves depends on the pixels: priced as whole.
        return StepCost(17.0 * megapixels(width, height), width, height)


def bounding_box(img: Image.Image, step: TrimStep) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of what is not border, or None when nothing is."""
    pixels = np.asarray(img, dtype=np.int32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    reference = pixels[0, 0] if step.reference == "top-left" else pixels[-1, -1]
    distance2 = ((pixels - reference) ** 2).sum(axis=2)
    inside = distance2 > step.tolerance * step.tolerance
    rows = np.flatnonzero(inside.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(inside.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@register_contextual("trim")
def apply(img: Image.Image, step: TrimStep, limits: Limits, ctx: StepContext) -> Image.Image:
    box = bounding_box(img, step)
    if box is None or box == (0, 0, img.width, img.height):
        return img
    ctx.regions = rg.crop(ctx.regions, box)
    return img.crop(box)
