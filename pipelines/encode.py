"""Encoding the result: one place that knows each output format's options."""

from __future__ import annotations

import io
from typing import Annotated, Literal

from PIL import Image
from pydantic import BeforeValidator

FormatName = Literal["jpeg", "png", "webp", "bmp", "tiff"]

_ALIASES = {"jpg": "jpeg", "tif": "tiff"}


def _canonical(value: object) -> object:
    if isinstance(value, str):
        value = value.strip().lower()
        return _ALIASES.get(value, value)
    return value


# Accepts "JPG", "jpeg", "tif", ... and stores the canonical lower-case name.
OutputFormat = Annotated[FormatName, BeforeValidator(_canonical)]

MEDIA_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
DEFAULT_QUALITY = {"jpeg": 85, "webp": 80}

# What a source format becomes when the request names no output format.
_NATIVE = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
}


def default_format(source_format: str) -> FormatName:
    return _NATIVE.get(source_format, "png")  # type: ignore[return-value]


def _flatten(img: Image.Image) -> Image.Image:
    """JPEG and BMP show no alpha: composite on white rather than let transparent pixels go
    to whatever colour they hide."""
    if img.mode in ("RGB", "L"):
        return img
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def encode(img: Image.Image, fmt: FormatName, quality: int | None = None) -> bytes:
    out = io.BytesIO()
    q = quality or DEFAULT_QUALITY.get(fmt)
    if fmt == "jpeg":
        _flatten(img).save(out, "JPEG", quality=q)
    elif fmt == "webp":
        img.save(out, "WEBP", quality=q, method=4)
    elif fmt == "png":
        img.save(out, "PNG", compress_level=6)
    elif fmt == "tiff":
        img.save(out, "TIFF", compression="tiff_adobe_deflate")
    else:
        _flatten(img).save(out, "BMP")  # readers ignore BMP alpha; composite like JPEG
    return out.getvalue()
