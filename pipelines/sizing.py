"""Models fed at the size they need (issue #18).

A detector or OCR engine never sees more pixels than its working size: YOLO its input size
(`image_size`, where ultralytics would letterbox it anyway), faces `FACES_MAX_SIDE`, OCR a
per-engine overview size plus detail tiles (pipelines/ocr.py). A 27 MP photo then costs a model
what a 2-3 MP one does. Boxes found on the working image are mapped back to the source's upright
pixels, so callers never see the working size.

The Preprocessor decodes straight to about that size (JPEG shrink-on-load), and hands a
`ModelImage`: the pixels plus the source size they stand for. A handle caller may still pass a
bare array; the engine shrinks it itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.results import Box

# Faces: the longest side they are looked for at (a 2 MP image's). A face must span about 24 px
# of the working image for Haar (its window) and 12 px for MTCNN, so on a 6000 px photo faces
# smaller than ~90 / 45 source px are not found; `min_size` below that changes nothing there.
FACES_MAX_SIDE = 1600


@dataclass(frozen=True)
class ModelImage:
    """Upright RGB pixels at (or above) a model's working size, standing for a
    `source_width` x `source_height` image."""

    pixels: np.ndarray
    source_width: int
    source_height: int

    @classmethod
    def of(cls, image: np.ndarray | ModelImage) -> ModelImage:
        if isinstance(image, ModelImage):
            return image
        return cls(image, int(image.shape[1]), int(image.shape[0]))

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def scale(self) -> float:
        """Working pixels per source pixel (<= 1)."""
        return self.width / self.source_width

    def to_source(self, x1: float, y1: float, x2: float, y2: float) -> Box:
        """A box on these pixels, in the source's pixels (clamped to it)."""
        sx = self.source_width / self.width
        sy = self.source_height / self.height
        return Box.clipped(
            x1 * sx,
            y1 * sy,
            x2 * sx,
            y2 * sy,
            width=self.source_width,
            height=self.source_height,
        )


def fit_side(width: int, height: int, max_side: int) -> tuple[int, int]:
    """width x height shrunk (never enlarged) so that its longest side is at most `max_side`."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def working(image: np.ndarray | ModelImage, max_side: int) -> ModelImage:
    """`image` at most `max_side` on its longest side (area-averaged, as a camera would see
    it smaller), still standing for the same source."""
    model_image = ModelImage.of(image)
    w, h = fit_side(model_image.width, model_image.height, max_side)
    if (w, h) == (model_image.width, model_image.height):
        return model_image
    pixels = cv2.resize(model_image.pixels, (w, h), interpolation=cv2.INTER_AREA)
    return ModelImage(pixels, model_image.source_width, model_image.source_height)


@dataclass(frozen=True)
class Tile:
    """A window of a working image: (x, y, w, h) in its pixels, and the core it answers for
    (words whose centre lies in the core are kept; the margin around it only lets words cut
    by the core's edge be read whole)."""

    x: int
    y: int
    w: int
    h: int
    core: tuple[int, int, int, int]


def tiles(width: int, height: int, side: int, margin: int) -> list[Tile]:
    """Cover width x height with as few side x side windows as the grid needs, each core a
    cell of an even grid, each window its core widened by `margin` (clipped to the image)."""
    cols, rows = math.ceil(width / side), math.ceil(height / side)
    out = []
    for row in range(rows):
        for col in range(cols):
            cx1, cx2 = width * col // cols, width * (col + 1) // cols
            cy1, cy2 = height * row // rows, height * (row + 1) // rows
            x1, y1 = max(0, cx1 - margin), max(0, cy1 - margin)
            x2, y2 = min(width, cx2 + margin), min(height, cy2 + margin)
            out.append(Tile(x1, y1, x2 - x1, y2 - y1, (cx1, cy1, cx2, cy2)))
    return out
