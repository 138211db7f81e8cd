"""enhance: brightness, contrast, saturation, sharpness as factors (1.0 leaves it unchanged)."""

from __future__ import annotations

from typing import Literal

from PIL import Image, ImageEnhance
from pydantic import BaseModel, ConfigDict, Field

from pipelines.limits import Limits
from pipelines.ops.registry import register


class EnhanceStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["enhance"] = "enhance"
    brightness: float = Field(1.0, ge=0.0, le=10.0)
    contrast: float = Field(1.0, ge=0.0, le=10.0)
    saturation: float = Field(1.0, ge=0.0, le=10.0)
    sharpness: float = Field(1.0, ge=0.0, le=10.0)


_ENHANCERS = (
    ("brightness", ImageEnhance.Brightness),
    ("contrast", ImageEnhance.Contrast),
    ("saturation", ImageEnhance.Color),
    ("sharpness", ImageEnhance.Sharpness),
)


@register("enhance")
def apply(img: Image.Image, step: EnhanceStep, limits: Limits) -> Image.Image:
    for name, enhancer in _ENHANCERS:
        factor = getattr(step, name)
        if factor != 1.0:
            img = enhancer(img).enhance(factor)
    return img
