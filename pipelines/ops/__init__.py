"""Image operations, one family per module, registered by name in `registry.OPERATIONS`
(those that need the step context also in `registry.CONTEXTUAL`)."""

from pipelines.ops import (
    canvas,
    color,
    convert,
    crop,
    detections,
    enhance,
    filters,
    max_bytes,
    orientation,
    resize,
    scale,
    thumbnail,
    trim,
    unsharp,
    watermark,
)
from pipelines.ops.registry import CONTEXTUAL, OPERATIONS, StepContext

__all__ = [
    "CONTEXTUAL",
    "OPERATIONS",
    "StepContext",
    "canvas",
    "color",
    "convert",
    "crop",
    "detections",
    "enhance",
    "filters",
    "max_bytes",
    "orientation",
    "resize",
    "scale",
    "thumbnail",
    "trim",
    "unsharp",
    "watermark",
]
