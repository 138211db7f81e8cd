"""image-info: what the file is (format, size, EXIF) and what the picture looks like
(dominant colours, tone, texture, composition). Runs on a <=512 px copy: the figures describe
the picture, not its resolution, and stay cheap for large sources."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from PIL import ExifTags, Image

from pipelines.cost import Estimate, Part, refuse_over
from pipelines.decode import DecodedImage, Header, decode_cost, open_image
from pipelines.limits import Limits
from pipelines.ops.gravity import energy_map

_ANALYSIS_SIDE = 512
_EXIF_FIELDS = {
    "Make",
    "Model",
    "Software",
    "DateTime",
    "Orientation",
    "Artist",
    "Copyright",
    "ImageDescription",
    "XResolution",
    "YResolution",
}
_COMMON_ASPECTS = {"1:1": 1.0, "4:3": 4 / 3, "3:2": 1.5, "16:9": 16 / 9, "21:9": 21 / 9}


def _plain(value: object) -> object:
    """EXIF values as JSON-friendly scalars; rationals become floats, bytes short text."""
    if isinstance(value, str):
        return value.strip("\x00 ")[:200]
    if isinstance(value, int | float):
        return value
    if isinstance(value, numbers.Rational):
        num, den = int(value.numerator), int(value.denominator)
        return num / den if den else None
    if isinstance(value, bytes):
        return value[:64].decode("ascii", "replace").strip("\x00 ")
    return str(value)[:200]


def exif_summary(exif: dict[int, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for tag, value in exif.items():
        name = ExifTags.TAGS.get(tag)
        if name in _EXIF_FIELDS:
            out[name] = _plain(value)
    return out


def dominant_colors(rgb: Image.Image, count: int = 5) -> list[dict[str, object]]:
    """Median-cut palette of a 64 px copy, largest share first."""
    small = rgb.resize((64, 64), Image.Resampling.BILINEAR)
    quantized = small.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    palette: list[int] = quantized.getpalette() or []
    counts = sorted(quantized.getcolors() or [], reverse=True)
    total = sum(n for n, _ in counts) or 1
    colors = []
    for n, index in counts:
        start = int(index) * 3  # type: ignore[call-overload]  # P-mode colours are indices
        r, g, b = palette[start : start + 3]
        colors.append(
            {
                "hex": f"#{r:02x}{g:02x}{b:02x}",
                "rgb": [r, g, b],
                "share": round(n / total, 4),
            }
        )
    return colors


def _entropy(gray: np.ndarray) -> float:
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def _thirds_balance(img: Image.Image) -> dict[str, float]:
    """Where the picture's weight sits, and how close that is to a rule-of-thirds point."""
    energy = energy_map(img)
    h, w = energy.shape
    total = float(energy.sum()) or 1.0
    cx = float((energy.sum(axis=0) * np.arange(w)).sum() / total) / max(w - 1, 1)
    cy = float((energy.sum(axis=1) * np.arange(h)).sum() / total) / max(h - 1, 1)
    nearest = min(math.dist((cx, cy), (px, py)) for px in (1 / 3, 2 / 3) for py in (1 / 3, 2 / 3))
    # 0 on a thirds point; 1 at a corner, the farthest a centroid can be from every point.
    return {
        "center_of_mass_x": round(cx, 4),
        "center_of_mass_y": round(cy, 4),
        "thirds_score": round(1.0 - nearest / math.dist((0, 0), (1 / 3, 1 / 3)), 4),
        "horizontal_balance": round(1.0 - abs(cx - 0.5) * 2, 4),
        "vertical_balance": round(1.0 - abs(cy - 0.5) * 2, 4),
    }


def _aspect(width: int, height: int) -> dict[str, object]:
    ratio = width / height
    name = min(_COMMON_ASPECTS, key=lambda k: abs(math.log(ratio / _COMMON_ASPECTS[k])))
    if abs(math.log(ratio / _COMMON_ASPECTS[name])) > 0.03:
        inv = min(
            _COMMON_ASPECTS,
            key=lambda k: abs(math.log((1 / ratio) / _COMMON_ASPECTS[k])),
        )
        if abs(math.log((1 / ratio) / _COMMON_ASPECTS[inv])) <= 0.03:
            name = ":".join(reversed(inv.split(":")))
        else:
            name = "other"
    elif ratio < 1:
        name = ":".join(reversed(name.split(":")))
    orientation = "square" if abs(ratio - 1) < 0.02 else ("landscape" if ratio > 1 else "portrait")
    return {"ratio": round(ratio, 4), "nearest": name, "orientation": orientation}


def analyse(decoded: DecodedImage) -> dict[str, Any]:
    img = decoded.image.convert("RGB")
    img.thumbnail((_ANALYSIS_SIDE, _ANALYSIS_SIDE))
    gray = np.asarray(img.convert("L"))
    edges = cv2.Canny(gray, 100, 200)
    return {
        "colors": {"dominant": dominant_colors(img)},
        "tone": {
            "brightness": round(float(gray.mean()) / 255.0, 4),
            "contrast": round(float(gray.std()) / 255.0, 4),
            "dark_fraction": round(float((gray < 32).mean()), 4),
            "bright_fraction": round(float((gray > 223).mean()), 4),
        },
        "texture": {
            "edge_density": round(float((edges > 0).mean()), 4),
            "entropy": round(_entropy(gray), 4),
            "sharpness": round(float(cv2.Laplacian(gray, cv2.CV_64F).var()), 2),
        },
        "composition": {
            **_thirds_balance(img),
            "aspect": _aspect(decoded.width, decoded.height),
        },
    }


def _basics(decoded: DecodedImage) -> dict[str, Any]:
    return {
        "format": decoded.format.lower(),
        "width": decoded.width,
        "height": decoded.height,
        "mode": decoded.mode,
        "bytes": decoded.bytes,
        "frames": decoded.frames,
        "has_alpha": decoded.image.mode == "RGBA",
    }


# The analysis of the <=512 px copy (bench/cost_calibration.py, "analysis"): a fixed price,
# plus the full decode and the downscale to 512, which grow with the source.
ANALYSIS_WORK = 30.0
COPY_WORK_PER_MP = 2.0


def decode_estimate(fmt: str | None, width: int, height: int, *, analysis: bool) -> Estimate:
    """What probe (a full decode) or image_info (that, then the analysis) costs."""
    work, _, _ = decode_cost(fmt, width, height)
    parts = [Part("decode", work, "file")]
    if analysis:
        extra = ANALYSIS_WORK + COPY_WORK_PER_MP * width * height / 1_000_000
        parts.append(Part("info", extra, "file"))
    return Estimate(tuple(parts), width, height)


def _admit(limits: Limits, *, analysis: bool) -> Callable[[Header], Estimate]:
    def check(header: Header) -> Estimate:
        priced = decode_estimate(header.format, header.width, header.height, analysis=analysis)
        return refuse_over(priced, limits.max_work)

    return check


def probe(data: bytes, limits: Limits) -> dict[str, Any]:
    """Format, size and mode, after a full decode under the limits (damaged files fail here)."""
    return _basics(open_image(data, limits, admit=_admit(limits, analysis=False)))


def image_info(data: bytes, limits: Limits) -> dict[str, Any]:
    decoded = open_image(data, limits, admit=_admit(limits, analysis=True))
    return {
        **_basics(decoded),
        "exif": exif_summary(decoded.exif),
        "analysis": analyse(decoded),
    }
