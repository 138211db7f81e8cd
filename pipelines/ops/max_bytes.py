"""max_bytes: the encoded result should not be larger than `bytes` (thumbor's
`max_bytes(n)`). Pixels are untouched here: the pipeline lowers the quality of a JPEG, WebP or
AVIF, a quarter at a time, until the result fits; other formats are written as they are."""

from __future__ import annotations

from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pipelines.cost import StepCost, megapixels
from pipelines.limits import Limits
from pipelines.ops.registry import register


class MaxBytesStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["max_bytes"] = "max_bytes"
    bytes: int = Field(ge=1, le=1_000_000_000, description="largest result wanted, in bytes")

    def cost(self, width: int, height: int) -> StepCost:
        # Up to ~8 extra encodes of the result (quality x0.75 from 85 down to 10); a JPEG
        # encode costs about 5 copies of its pixels.
        return StepCost(40.0 * megapixels(width, height), width, height)


@register("max_bytes")
def apply(img: Image.Image, step: MaxBytesStep, limits: Limits) -> Image.Image:
    return img
