"""Encoding the result: one place that knows each output format's options."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Annotated, Literal

from PIL import Image
from pydantic import BeforeValidator

FormatName = Literal["jpeg", "png", "webp", "avif", "gif", "bmp", "tiff"]

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
    "avif": "image/avif",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
DEFAULT_QUALITY = {"jpeg": 85, "webp": 80, "avif": 70}
# Formats whose encoders take a quality (the others ignore it).
LOSSY = frozenset(DEFAULT_QUALITY)
# Formats that can carry several frames (an animation).
ANIMATED = frozenset({"gif", "webp"})
# libavif's speed, 0 (slowest, smallest) to 10: Pillow's default (6) takes ~10x the time of a
# WebP at 300 px for ~5% fewer bytes; 8 keeps an AVIF thumbnail within a few WebPs' time.
AVIF_SPEED = 8

# What a source format becomes when the request names no output format.
_NATIVE = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "AVIF": "avif",
    "GIF": "gif",
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


_CLEAR = 255  # the palette index GIF frames use for transparent pixels


def _paletted(img: Image.Image) -> Image.Image:
    """GIF's 256 colours by fast octree: a few ms at thumbnail size, where Pillow's median cut
    on save costs ~30x that. With alpha: 255 colours, and index 255 for pixels under half
    opacity (GIF has one transparent colour, no partial transparency)."""
    if img.mode == "P":
        return img
    if img.mode != "RGBA":
        return img.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    out = img.convert("RGB").quantize(_CLEAR, method=Image.Quantize.FASTOCTREE)
    palette = out.getpalette() or []
    out.putpalette(palette + [0] * (768 - len(palette)))
    out.paste(_CLEAR, mask=img.getchannel("A").point(lambda a: 255 if a < 128 else 0))
    out.info["transparency"] = _CLEAR
    return out


def _transparency(img: Image.Image) -> dict[str, int]:
    clear = img.info.get("transparency")
    return {"transparency": clear} if isinstance(clear, int) else {}


def encode(img: Image.Image, fmt: FormatName, quality: int | None = None) -> bytes:
    out = io.BytesIO()
    q = quality or DEFAULT_QUALITY.get(fmt)
    if fmt == "jpeg":
        _flatten(img).save(out, "JPEG", quality=q)
    elif fmt == "webp":
        img.save(out, "WEBP", quality=q, method=4)
    elif fmt == "avif":
        img.save(out, "AVIF", quality=q, speed=AVIF_SPEED)
    elif fmt == "gif":
        paletted = _paletted(img)
        paletted.save(out, "GIF", **_transparency(paletted))
    elif fmt == "png":
        img.save(out, "PNG", compress_level=6)
    elif fmt == "tiff":
        img.save(out, "TIFF", compression="tiff_adobe_deflate")
    else:
        _flatten(img).save(out, "BMP")  # readers ignore BMP alpha; composite like JPEG
    return out.getvalue()


def encode_frames(
    frames: Sequence[Image.Image],
    durations: Sequence[int],
    loop: int,
    fmt: FormatName,
    quality: int | None = None,
) -> bytes:
    """An animation (GIF or WebP) of `frames`, each shown for its duration in ms. A format
    that cannot animate gets the first frame alone."""
    if fmt not in ANIMATED or len(frames) < 2:
        return encode(frames[0], fmt, quality)
    out = io.BytesIO()
    if fmt == "gif":
        paletted = [_paletted(frame) for frame in frames]
        paletted[0].save(
            out,
            "GIF",
            save_all=True,
            append_images=paletted[1:],
            duration=list(durations),
            loop=loop,
            disposal=2,
            **_transparency(paletted[0]),
        )
    else:
        frames[0].save(
            out,
            "WEBP",
            save_all=True,
            append_images=list(frames[1:]),
            duration=list(durations),
            loop=loop,
            quality=quality or DEFAULT_QUALITY["webp"],
            method=4,
        )
    return out.getvalue()
