"""Regions of interest found by the detectors, as a pipeline takes them.

The detectors see a copy of the source no larger than DETECTION_SIDE (a face or a person is
found as well at 640 px as at 4000, for a fraction of the work); their boxes are scaled back to
the source's upright pixels here.
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.decode import open_image
from pipelines.limits import Limits
from pipelines.regions import Region
from pipelines.results import Box

DETECTION_SIDE = 640


def detection_image(
    data: bytes, limits: Limits, side: int = DETECTION_SIDE
) -> tuple[np.ndarray, float]:
    """Upright RGB pixels no larger than `side`, and source pixels per pixel of them."""

    def hint(width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, side / max(width, height))
        return math.ceil(width * scale), math.ceil(height * scale)

    decoded = open_image(data, limits, shrink_to=hint)
    img = decoded.image.convert("RGB")
    img.thumbnail((side, side))
    return np.asarray(img), decoded.width / img.width


def regions_from(boxes: list[tuple[Box, str]], scale: float) -> list[Region]:
    """Detector boxes (in the detection image's pixels) as regions in source pixels."""
    out = []
    for box, label in boxes:
        if box.x2 > box.x1 and box.y2 > box.y1:
            out.append(
                Region(
                    x1=box.x1 * scale,
                    y1=box.y1 * scale,
                    x2=box.x2 * scale,
                    y2=box.y2 * scale,
                    label=label[:64],
                )
            )
    return out
