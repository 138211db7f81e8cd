"""Draw boxes and labels on an image (the `annotate=true` responses)."""

from __future__ import annotations

import time

from pipelines.decode import open_image
from pipelines.drawing import draw_boxes
from pipelines.encode import FormatName, default_format
from pipelines.limits import Limits
from pipelines.pipeline import ProcessedImage, finish
from pipelines.results import Box


def annotate(
    data: bytes,
    boxes: list[tuple[Box, str]],
    limits: Limits,
    fmt: FormatName | None = None,
    quality: int | None = None,
) -> ProcessedImage:
    """Decode (upright, under the limits), draw, encode: the boxes are in upright pixels."""
    started = time.monotonic()
    decoded = open_image(data, limits)
    out = draw_boxes(decoded.image, boxes)
    chosen = fmt or default_format(decoded.format)
    if chosen not in ("jpeg", "png", "webp"):
        chosen = "png"
    return finish(out, decoded, chosen, quality, started)
