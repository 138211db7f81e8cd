"""enhance: brightness, contrast, saturation, sharpness as factors (1.0 leaves it unchanged)."""

from __future__ import annotations

from typing import Literal

from PIL import Image, ImageEnhance
from pydantic import BaseModel, ConfigDict, Field

from pipelines.cost import StepCost, megapixels
from pipelines.limits import Limits
from pipelines.ops.registry import register

# Work per megapixel of each factor that is not 1.0 (bench/cost_calibration.py, "enhance"):
# a blend with a degenerate copy, which for sharpness is a smoothing filter.
ENHANCE_WORK_PER_MP = {"brightness": 3.0, "contrast": 4.5, "saturation": 4.0, "sharpness": 11.0}


class EnhanceStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["enhance"] = "enhance"
    brightness: float = Field(1.0, ge=0.0, le=10.0)
    contrast: float = Field(1.0, ge=0.0, le=10.0)
    saturation: float = Field(1.0, ge=0.0, le=10.0)
    sharpness: float = Field(1.0, ge=0.0, le=10.0)

    def cost(self, width: int, height: int) -> StepCost:
        used = [name for name in ENHANCE_WORK_PER_MP if getattr(self, name) != 1.0]
        work = sum(ENHANCE_WORK_PER_MP[name] for name in used) * megapixels(width, height)
        field = max(used, key=ENHANCE_WORK_PER_MP.__getitem__) if used else None
        return StepCost(work, width, height, field)


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
