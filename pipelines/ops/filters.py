"""filter: blur, sharpen, edge, gaussian, median, emboss, contour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from PIL import Image, ImageFilter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines.limits import Limits
from pipelines.ops.registry import register

FilterName = Literal["blur", "sharpen", "edge", "gaussian", "median", "emboss", "contour"]


class FilterStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["filter"] = "filter"
    name: FilterName
    radius: float = Field(2.0, gt=0, le=100, description="blur and gaussian")
    size: int = Field(3, ge=3, le=15, description="median window; odd")

    @field_validator("size")
    @classmethod
    def _odd(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError("size must be odd")
        return size


def _kernel(
    f: ImageFilter.Filter | type[ImageFilter.Filter],
) -> Callable[[FilterStep], object]:
    return lambda _step: f


_FILTERS: dict[str, Callable[[FilterStep], object]] = {
    "blur": lambda s: ImageFilter.BoxBlur(s.radius),
    "gaussian": lambda s: ImageFilter.GaussianBlur(s.radius),
    "median": lambda s: ImageFilter.MedianFilter(s.size),
    "sharpen": _kernel(ImageFilter.SHARPEN),
    "edge": _kernel(ImageFilter.FIND_EDGES),
    "emboss": _kernel(ImageFilter.EMBOSS),
    "contour": _kernel(ImageFilter.CONTOUR),
}


@register("filter")
def apply(img: Image.Image, step: FilterStep, limits: Limits) -> Image.Image:
    return img.filter(_FILTERS[step.name](step))  # type: ignore[arg-type]
