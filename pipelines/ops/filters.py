"""filter: blur, sharpen, edge, gaussian, median, emboss, contour.

Filters change colour, never transparency: on RGBA the colour channels are filtered and the
alpha channel is put back. The 3x3 kernels see the image padded by edge replication, so the
outermost pixels are filtered like the rest (Pillow alone leaves them untouched).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.cost import StepCost, megapixels
from pipelines.limits import Limits
from pipelines.ops.registry import register

# Work per megapixel (bench/cost_calibration.py, "filter"). Pillow's median keeps a size x size
# window per pixel, so its price grows with the kernel's area; box and gaussian blurs run
# sliding sums, flat in the radius as measured (r=2 and r=50 cost the same; gaussian is three
# box passes); the 3x3 kernels pay a padded copy and one convolution.
KERNEL_WORK_PER_MP = 18.0
BLUR_WORK_PER_MP = {"blur": 11.0, "gaussian": 25.0}
MEDIAN_WORK_PER_MP_PER_AREA = 12.0
RGBA_SPLIT_WORK_PER_MP = 4.0

FilterName = Literal["blur", "sharpen", "edge", "gaussian", "median", "emboss", "contour"]


class FilterStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @property
    def holds_the_gil(self) -> bool:
        """Pillow's rank (median) filter keeps the GIL for its whole run (seconds on a large
        image), unlike the convolutions, which release it: a caller sharing its process with
        an event loop should run it elsewhere."""
        return self.name == "median"

    op: Literal["filter"] = "filter"
    name: FilterName
    radius: float = Field(2.0, gt=0, le=100, description="blur and gaussian")
    size: int = Field(3, ge=3, le=15, description="median window; odd")

    def cost(self, width: int, height: int) -> StepCost:
        mp = megapixels(width, height)
        field: str | None = None
        if self.name == "median":
            per_mp, field = MEDIAN_WORK_PER_MP_PER_AREA * self.size * self.size, "size"
        elif self.name in ("blur", "gaussian"):
            per_mp, field = BLUR_WORK_PER_MP[self.name], "radius"
        else:
            per_mp = KERNEL_WORK_PER_MP
        # An RGBA source is split and put back together around the filter (`apply`); the
        # estimate is made before decoding, so it always counts that in.
        return StepCost((per_mp + RGBA_SPLIT_WORK_PER_MP) * mp, width, height, field)

    @field_validator("size")
    @classmethod
    def _odd(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError("size must be odd")
        return size


_KERNELS: dict[str, ImageFilter.BuiltinFilter] = {
    "sharpen": ImageFilter.SHARPEN(),
    "edge": ImageFilter.FIND_EDGES(),
    "emboss": ImageFilter.EMBOSS(),
    "contour": ImageFilter.CONTOUR(),
}
_SIZED: dict[str, Callable[[FilterStep], ImageFilter.Filter]] = {
    "blur": lambda s: ImageFilter.BoxBlur(s.radius),
    "gaussian": lambda s: ImageFilter.GaussianBlur(s.radius),
    "median": lambda s: ImageFilter.MedianFilter(s.size),
}


def _colour(img: Image.Image, step: FilterStep) -> Image.Image:
    if step.name in _KERNELS:
        arr = np.asarray(img)
        pad = [(1, 1), (1, 1)] + ([(0, 0)] if arr.ndim == 3 else [])
        padded = Image.fromarray(np.pad(arr, pad, mode="edge"), img.mode)
        filtered = padded.filter(_KERNELS[step.name])
        return filtered.crop((1, 1, img.width + 1, img.height + 1))
    return img.filter(_SIZED[step.name](step))


@register("filter")
def apply(img: Image.Image, step: FilterStep, limits: Limits) -> Image.Image:
    if img.mode != "RGBA":
        return _colour(img, step)
    out = _colour(img.convert("RGB"), step).convert("RGBA")
    out.putalpha(img.getchannel("A"))
    return out
