"""convert: choose the output format and quality. Pixels are untouched here; the pipeline
encodes once, at the end, in the format the last convert step (or the request) names."""

from __future__ import annotations

from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pipelines.cost import StepCost
from pipelines.encode import OutputFormat
from pipelines.limits import Limits
from pipelines.ops.registry import register


class ConvertStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["convert"] = "convert"
    format: OutputFormat
    quality: int | None = Field(None, ge=1, le=100, description="jpeg and webp")

    def cost(self, width: int, height: int) -> StepCost:
        """Free here: the encoding it chooses is priced once, at the pipeline's end."""
        return StepCost(0.0, width, height)


@register("convert")
def apply(img: Image.Image, step: ConvertStep, limits: Limits) -> Image.Image:
    return img
