"""Regions of interest found by the detectors, as a pipeline takes them.

The detectors see a copy of the source no larger than DETECTION_SIDE (a face or a person is
found as well at 640 px as at 4000, for a fraction of the work) or, when a step must find every
face or word (a redaction), FINDING_SIDE; their boxes are scaled back to the source's upright
pixels here.

Each detection a pipeline needs has a key, "faces", "objects" or "text", with the engine or
model after a colon when not the default ("faces:mtcnn"). Steps name the keys they need
(`findings()`); the service runs each detection once per image, however many steps use it,
and its boxes travel as regions of that `kind` through the steps that move pixels.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from pipelines.decode import open_image
from pipelines.limits import Limits
from pipelines.regions import Region
from pipelines.results import Box
from pipelines.sizing import FACES_MAX_SIDE

DETECTION_SIDE = 640
FINDING_SIDE = FACES_MAX_SIDE

Target = Literal["faces", "objects", "text"]
TARGETS: tuple[Target, ...] = ("faces", "objects", "text")


def finding_key(target: Target, engine: str | None = None) -> str:
    """The key of a detection: its target, and the engine or model when one is named."""
    return f"{target}:{engine}" if engine else target


def parse_key(key: str) -> tuple[Target, str | None]:
    target, _, engine = key.partition(":")
    if target not in TARGETS:
        raise ValueError(f"unknown detection {key!r}")
    return target, engine or None


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


def regions_from(
    boxes: list[tuple[Box, str]], scale: float, kind: str | None = None, aim: bool = True
) -> list[Region]:
    """Detector boxes (in the detection image's pixels) as regions in source pixels, found by
    the detection `kind`; `aim`: whether window-placing steps aim at them."""
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
                    kind=kind,
                    aim=aim,
                )
            )
    return out
