"""Where a smaller window sits inside an image: centred, where the picture is busiest, or
over what a detector found.

`faces` covers every face it can (the largest first when they do not all fit), `objects` the
largest objects first (`objects:person,dog`: only those labels); with nothing found, either is
`smart`. The detections arrive as regions of the step context (the service runs the detector
once per image, before the pipeline: pipelines/focus.py).

`smart` scores each candidate window by edge energy plus colour saturation on a small copy of
the image (the cues smartcrop.js and libvips' "attention" crop use), with a mild pull towards the
centre so flat images still crop centrally. Cost: one downscale and two cumulative sums.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

import cv2
import numpy as np
from PIL import Image
from pydantic import AfterValidator

from pipelines.focus import finding_key
from pipelines.regions import Region, of_kind

_GRAVITY = re.compile(r"^(center|smart|faces|objects(:[\w .-]{1,40}(,[\w .-]{1,40}){0,19})?)$")


def _gravity(value: str) -> str:
    if not _GRAVITY.match(value):
        raise ValueError("gravity is center, smart, faces, objects or objects:label,label...")
    return value


Gravity = Annotated[str, AfterValidator(_gravity)]
_ANALYSIS_SIDE = 256


def gravity_finding(gravity: str) -> str | None:
    """The detection (pipelines/focus.py key) a gravity aims at, if any."""
    if gravity == "faces":
        return finding_key("faces")
    if gravity.startswith("objects"):
        return finding_key("objects")
    return None


def aimed(gravity: str, regions: Sequence[Region]) -> list[Region]:
    """What a `faces` / `objects[:labels]` gravity aims at, largest first."""
    key = gravity_finding(gravity)
    if key is None:
        return []
    found = of_kind(regions, key)
    _, _, labels = gravity.partition(":")
    if labels:
        wanted = {label.strip().lower() for label in labels.split(",")}
        found = [r for r in found if r.label.lower() in wanted]
    return sorted(found, key=lambda r: r.area, reverse=True)


def covering(
    found: Sequence[Region], size: tuple[int, int], crop_w: float, crop_h: float
) -> tuple[float, float]:
    """Top-left of a crop_w x crop_h window over as many of `found` (largest first) as fit
    together, centred on them, inside a `size` image."""
    x1, y1, x2, y2 = found[0].x1, found[0].y1, found[0].x2, found[0].y2
    for r in found[1:]:
        nx1, ny1, nx2, ny2 = min(x1, r.x1), min(y1, r.y1), max(x2, r.x2), max(y2, r.y2)
        if nx2 - nx1 <= crop_w and ny2 - ny1 <= crop_h:
            x1, y1, x2, y2 = nx1, ny1, nx2, ny2
    width, height = size
    x = min(max((x1 + x2 - crop_w) / 2.0, 0.0), width - crop_w)
    y = min(max((y1 + y2 - crop_h) / 2.0, 0.0), height - crop_h)
    return x, y


def energy_map(img: Image.Image) -> np.ndarray:
    """Interest per pixel of a copy no larger than 256 px; returns (map, scale to source)."""
    small = img.convert("RGB")
    small.thumbnail((_ANALYSIS_SIDE, _ANALYSIS_SIDE))
    rgb = np.asarray(small, dtype=np.float32)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    edges = cv2.magnitude(gx, gy)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    energy = edges / (edges.max() + 1e-6) + 0.5 * saturation / 255.0
    return cv2.GaussianBlur(energy, (0, 0), 2.0)


def _best_offset(profile: np.ndarray, window: int) -> int:
    """Start of the `window`-long run of `profile` with the largest sum (centre-biased)."""
    n = profile.shape[0]
    if window >= n:
        return 0
    sums = np.convolve(profile, np.ones(window, dtype=np.float64), mode="valid")
    centre = (n - window) / 2.0
    bias = 1.0 - 0.15 * np.abs(np.arange(sums.shape[0]) - centre) / max(centre, 1.0)
    return int(np.argmax(sums * bias))


def place(
    img: Image.Image,
    crop_w: float,
    crop_h: float,
    gravity: str,
    regions: Sequence[Region] = (),
) -> tuple[float, float]:
    """Top-left corner, in `img` pixels, of a crop_w x crop_h window; `regions` (in `img`
    pixels) are what a detection gravity aims at."""
    width, height = img.size
    if gravity_finding(gravity) is not None:
        found = aimed(gravity, regions)
        if found:
            return covering(found, img.size, crop_w, crop_h)
        gravity = "smart"  # nothing found: the busiest part of the picture
    if gravity == "center":
        return (width - crop_w) / 2.0, (height - crop_h) / 2.0
    energy = energy_map(img)
    eh, ew = energy.shape
    sx, sy = ew / width, eh / height
    x = _best_offset(energy.sum(axis=0), max(1, round(crop_w * sx))) / sx
    y = _best_offset(energy.sum(axis=1), max(1, round(crop_h * sy))) / sy
    return min(max(x, 0.0), width - crop_w), min(max(y, 0.0), height - crop_h)
