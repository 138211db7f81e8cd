"""Safe decoding: identify, check limits from the header, then decode once.

Every image the service touches enters through `open_image`. The order matters: size, then
format, then header dimensions and frame count, and only then the pixel decode.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from pipelines.errors import BadImage, TooLarge, UnsupportedFormat
from pipelines.limits import Limits, check_pixels, check_upload_size

# Bytes that start common non-image files: these are "not an image" (415), unlike random bytes
# or a damaged image (400).
_NON_IMAGE_SIGNATURES = (
    b"%PDF",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"\x7fELF",
    b"MZ",
    b"<?xml",
    b"<svg",
    b"<!DOCTYPE",
    b"<html",
    b"{",
    b"[",
    b"#!",
    b"ID3",
    b"OggS",
    b"fLaC",
    b"\x00\x00\x00\x18ftypmp4",
    b"\x00\x00\x00\x20ftypisom",
)

# Errors Pillow's decoders raise on damaged data.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    KeyError,  # a TIFF tag of the wrong count (PhotometricInterpretation x3) in getexif()
)

_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}


@dataclass
class DecodedImage:
    """A decoded, upright image in RGB, RGBA or L, plus what was read from the source."""

    image: Image.Image
    format: str  # Pillow's name: JPEG, PNG, ...
    width: int  # upright source size, before any shrink-on-load
    height: int
    mode: str  # the source's mode before normalisation
    frames: int
    bytes: int
    exif: dict[int, object] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        # Incremental and not final: a multi-byte character cut at the end is not an error.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    if not text:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable / len(text) > 0.95


def _identify(data: bytes, limits: Limits) -> Image.Image:
    """Open the header with only the allowed plugins; classify what cannot be opened."""
    buffer = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(buffer, formats=list(limits.allowed_formats))
    except Image.DecompressionBombError as exc:
        raise TooLarge("the image declares too many pixels", code="too_many_pixels") from exc
    except UnidentifiedImageError:
        pass
    except _DECODE_ERRORS as exc:
        raise BadImage("the image header is damaged", code="corrupt_image") from exc
    # Not one of ours: is it some other image format, a known non-image, or plain garbage?
    other: str | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = Image.open(io.BytesIO(data)).format
    except Exception:  # noqa: BLE001 - any failure here only means "not a known image"
        other = None
    if other:
        raise UnsupportedFormat(f"images in {other} format are not accepted", field="file")
    head = data[:64]
    if head.lstrip().startswith(_NON_IMAGE_SIGNATURES) or _looks_like_text(data[:512]):
        raise UnsupportedFormat("the file is not an image", code="not_an_image", field="file")
    raise BadImage("the data is not a readable image", code="unreadable_image", field="file")


def _orientation(exif: dict[int, object]) -> int:
    value = exif.get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Bring every source to RGB, RGBA or L so operations see only those three modes."""
    mode = img.mode
    if mode in ("RGB", "L") and "transparency" in img.info:
        # A tRNS colour key lives in `info`, which `_bare` drops: make it an alpha channel.
        return img.convert("RGBA")
    if mode in ("RGB", "RGBA", "L"):
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max(initial=0))
        if mode.startswith("I;16") or peak > 255:
            top = 65535.0
        elif mode == "F" and peak <= 1.0:
            top = 1.0  # float images in 0..1
        else:
            top = 255.0
        return Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if mode == "1":
        return img.convert("L")
    if mode in ("LA", "La", "PA", "RGBa"):
        return img.convert("RGBA")
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def _bare(img: Image.Image) -> Image.Image:
    """The pixels without the source's metadata. Pillow's encoders copy what the image they
    save still holds: PNG and TIFF the ICC profile in `info`, JPEG the comment, TIFF the source
    file's tags (Make, Artist, XMP, IPTC...). Results carry no metadata of the source (hostile
    catalogue: jpeg_huge_icc, png_huge_text_chunk; test_hostile's metadata test)."""
    if hasattr(img, "tag_v2"):  # still the TIFF file object: a plain copy has no tags
        img = img.copy()
    img.info = {}
    return img


ShrinkHint = Callable[[int, int], tuple[int, int]]


@dataclass
class Header:
    """What the header says, read and checked against the limits before any pixel decodes."""

    image: Image.Image  # opened, not loaded
    format: str
    width: int  # upright
    height: int
    frames: int
    orientation: int
    exif: dict[int, object]
    bytes: int

    def shrunk(self, shrink_to: ShrinkHint | None) -> tuple[int, int]:
        return shrunk_size(self.format, self.width, self.height, shrink_to)


def shrunk_size(fmt: str, width: int, height: int, shrink_to: ShrinkHint | None) -> tuple[int, int]:
    """The upright size a decode with `shrink_to` produces: JPEG decodes at the largest 1/1,
    1/2, 1/4 or 1/8 scale still at least the size asked for (Pillow's draft rule)."""
    if shrink_to is None or fmt not in ("JPEG", "MPO"):
        return width, height
    want_w, want_h = shrink_to(width, height)
    ratio = min(width // max(1, want_w), height // max(1, want_h))
    scale = next((s for s in (8, 4, 2) if ratio >= s), 1)
    return -(-width // scale), -(-height // scale)


# Decoding, per megapixel (bench/cost_calibration.py, "decode"). A JPEG's entropy decoding
# reads every coefficient whatever the scale; its inverse DCT and colour conversion run only on
# the pixels it produces, so shrink-on-load pays the second part at the reduced size.
DECODE_WORK_PER_MP: dict[str, float] = {
    "PNG": 15.0,
    "WEBP": 7.0,
    "GIF": 3.5,
    "BMP": 1.0,
    "TIFF": 1.0,
}
DECODE_FALLBACK_PER_MP = 25.0
JPEG_ENTROPY_PER_SOURCE_MP = 1.0
JPEG_PIXELS_PER_DECODED_MP = 1.7


def decode_cost(
    fmt: str | None, width: int, height: int, shrink_to: ShrinkHint | None = None
) -> tuple[float, int, int]:
    """(work, width, height) of decoding a `fmt` image of width x height, shrunk as asked. An
    unknown format (None) is priced as the dearest decoder."""
    fmt = fmt or ""
    out_w, out_h = shrunk_size(fmt, width, height, shrink_to)
    source_mp = width * height / 1_000_000
    if fmt in ("JPEG", "MPO"):
        work = JPEG_ENTROPY_PER_SOURCE_MP * source_mp
        work += JPEG_PIXELS_PER_DECODED_MP * out_w * out_h / 1_000_000
    else:
        work = DECODE_WORK_PER_MP.get(fmt, DECODE_FALLBACK_PER_MP) * source_mp
    return work, out_w, out_h


def read_header(data: bytes, limits: Limits) -> Header:
    """Identify `data` and check bytes, format, dimensions and frames against `limits`; decode
    nothing. Cheap (the header only): the cost check runs on what it returns."""
    check_upload_size(len(data), limits)
    img = _identify(data, limits)
    fmt = img.format or "UNKNOWN"
    width, height = img.size
    if width < 1 or height < 1:
        raise BadImage("the image has no pixels", code="corrupt_image", field="file")
    check_pixels(width, height, limits)
    try:
        frames = int(getattr(img, "n_frames", 1))
    except _DECODE_ERRORS as exc:
        raise BadImage("the image's frames are damaged", code="corrupt_image") from exc
    if frames > limits.max_frames:
        raise TooLarge(
            f"the image has {frames} frames; the limit is {limits.max_frames}",
            code="too_many_frames",
        )
    if frames > 1:
        img.seek(0)
    try:
        exif = dict(img.getexif())
    except _DECODE_ERRORS:
        exif = {}
    orientation = _orientation(exif)
    upright = (height, width) if orientation in _SWAPS_AXES else (width, height)
    return Header(img, fmt, upright[0], upright[1], frames, orientation, exif, len(data))


def open_image(
    data: bytes,
    limits: Limits,
    *,
    shrink_to: ShrinkHint | None = None,
    admit: Callable[[Header], object] | None = None,
) -> DecodedImage:
    """Decode `data` under `limits`.

    `shrink_to(width, height)` gives, for the upright source size, the smallest size the caller
    needs; JPEG sources are then decoded at a reduced DCT scale still at least that large
    (shrink-on-load), the largest single speed-up for thumbnails. `admit(header)` runs after
    the header checks and before any pixel is decoded: the cost check's place.
    """
    header = read_header(data, limits)
    if admit is not None:
        admit(header)
    return decode(header, shrink_to=shrink_to)


def decode(header: Header, *, shrink_to: ShrinkHint | None = None) -> DecodedImage:
    """The pixels `header` announced, upright, normalised and without the source's metadata."""
    img, fmt, orientation = header.image, header.format, header.orientation
    if shrink_to is not None and fmt in ("JPEG", "MPO"):
        want_w, want_h = shrink_to(header.width, header.height)
        stored = (want_h, want_w) if orientation in _SWAPS_AXES else (want_w, want_h)
        img.draft(img.mode if img.mode in ("RGB", "L") else None, stored)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as exc:
        raise TooLarge("the image declares too many pixels", code="too_many_pixels") from exc
    except MemoryError as exc:
        raise TooLarge("the image is too large to decode", code="too_many_pixels") from exc
    except _DECODE_ERRORS as exc:
        raise BadImage("the image data is truncated or damaged", code="corrupt_image") from exc
    source_mode = img.mode
    info = {k: v for k, v in img.info.items() if k in ("dpi", "icc_profile", "transparency")}
    if orientation != 1:
        # A broken EXIF block should not cost the user the image.
        with contextlib.suppress(*_DECODE_ERRORS):
            img = ImageOps.exif_transpose(img)
    return DecodedImage(
        image=_bare(_normalise_mode(img)),
        format=fmt,
        width=header.width,
        height=header.height,
        mode=source_mode,
        frames=header.frames,
        bytes=header.bytes,
        exif=header.exif,
        info=info,
    )


@dataclass
class Animation:
    """Every frame of an animated source (RGBA, each the full picture, not a patch), how long
    each is shown (ms) and how often the whole loops (0: for ever)."""

    frames: list[Image.Image]
    durations: list[int]
    loop: int


def read_frames(data: bytes, limits: Limits) -> Animation:
    """All frames of an animated GIF or WebP, for a pipeline that keeps them. `open_image` has
    already judged the source (size, format, frame count); here the frames together must also
    fit in `max_pixels`, since each is decoded and held at once."""
    img = _identify(data, limits)
    frames = int(getattr(img, "n_frames", 1))
    check_pixels(img.width * frames, img.height, limits, what="the animation's frames together")
    out: list[Image.Image] = []
    durations: list[int] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            for frame in ImageSequence.Iterator(img):
                durations.append(int(frame.info.get("duration", 100) or 100))
                out.append(_bare(frame.convert("RGBA")))
    except _DECODE_ERRORS as exc:
        raise BadImage("the image's frames are damaged", code="corrupt_image") from exc
    loop = img.info.get("loop", 0)
    return Animation(out, durations, loop if isinstance(loop, int) else 0)
