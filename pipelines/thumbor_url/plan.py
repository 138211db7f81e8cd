"""A parsed URL as a pipeline: the same `PipelineSpec` /api/v1/process runs, plus what only the
HTTP answer needs (max_age, meta, whether the URL chose the format).

Steps come in thumbor's order: manual crop, trim, the geometry (`thumbnail`), flips, then the
filters in the order the URL names them. Unknown filters are ignored, as thumbor does; a known
filter with arguments it cannot take is a 400 (thumbor would skip it silently).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from pipelines.ops.canvas import BackgroundStep, FillStep, RoundCornerStep
from pipelines.ops.color import (
    BrightnessStep,
    ContrastStep,
    EqualizeStep,
    GrayscaleStep,
    RgbStep,
    SaturationStep,
)
from pipelines.ops.crop import CropStep
from pipelines.ops.detections import DrawDetectionsStep, RedactStep
from pipelines.ops.filters import FilterStep
from pipelines.ops.max_bytes import MaxBytesStep
from pipelines.ops.orientation import FlipStep, RotateStep
from pipelines.ops.scale import ScaleStep
from pipelines.ops.thumbnail import ThumbnailStep
from pipelines.ops.trim import TrimStep
from pipelines.ops.unsharp import UnsharpStep
from pipelines.ops.watermark import WatermarkStep
from pipelines.regions import Region
from pipelines.spec import MAX_STEPS, PipelineSpec, Step
from pipelines.thumbor_url.grammar import CROP, Filter, MalformedUrl, ThumborUrl, parse, whole


@dataclass(frozen=True)
class UrlPlan:
    """What a URL asks for: the pipeline, the image it runs on, and what only the HTTP
    answer needs. `format_given`: the URL chose the output format (no Accept negotiation)."""

    spec: PipelineSpec
    image: str
    meta: bool = False
    max_age: int | None = None
    format_given: bool = False


@dataclass
class _Build:
    """The pipeline as the filters shape it."""

    thumbnail: dict[str, Any]
    steps: list[Any] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    format: str | None = None
    quality: int | None = None
    max_age: int | None = None
    frames: Literal["first", "all"] = "all"


_NUMBER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\d*\.\d+)")
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}
_FORMATS = ("jpeg", "jpg", "png", "webp", "avif", "gif", "bmp", "tiff", "tif")


def _arity(f: Filter, least: int, most: int) -> None:
    if not least <= len(f.args) <= most:
        expected = f"{least}" if least == most else f"{least} to {most}"
        raise MalformedUrl(
            f"{f.name}() takes {expected} arguments, not {len(f.args)}", field=f.name
        )


def _int(f: Filter, index: int, low: int | None = None, high: int | None = None) -> int:
    text = f.args[index]
    if not _NUMBER.fullmatch(text):
        raise MalformedUrl(f"{f.name}(): {text[:40]!r} is not a whole number", field=f.name)
    value = whole(text, f.name)
    if low is not None:
        value = max(low, value)
    if high is not None:
        value = min(high, value)
    return value


def _float(f: Filter, index: int) -> float:
    text = f.args[index]
    if not _DECIMAL.fullmatch(text) or len(text) > 32:
        raise MalformedUrl(f"{f.name}(): {text!r} is not a number", field=f.name)
    return float(text)


def _bool(f: Filter, index: int, default: bool = False) -> bool:
    if index >= len(f.args) or f.args[index] == "":
        return default
    value = _BOOLEAN.get(f.args[index].lower())
    if value is None:
        raise MalformedUrl(f"{f.name}(): {f.args[index]!r} is not true or false", field=f.name)
    return value


def _text(f: Filter, index: int) -> str:
    text = f.args[index]
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    if not text:
        raise MalformedUrl(f"{f.name}(): an argument is empty", field=f.name)
    return text


def _focal(f: Filter) -> Region:
    _arity(f, 1, 1)
    match = CROP.fullmatch(f.args[0])
    if match is None:
        raise MalformedUrl("focal() takes a box: focal(LEFTxTOP:RIGHTxBOTTOM)", field="focal")
    left, top, right, bottom = (whole(v, "focal") for v in match.groups())
    if right <= left or bottom <= top:
        raise MalformedUrl("focal()'s box is empty", field="focal")
    return Region(x1=left, y1=top, x2=right, y2=bottom, label="focal")


def _apply_filter(f: Filter, b: _Build) -> None:
    name = f.name
    if name == "quality":
        _arity(f, 1, 1)
        b.quality = _int(f, 0, 1, 100)
    elif name == "format":
        _arity(f, 1, 1)
        fmt = _text(f, 0).lower()
        if fmt not in _FORMATS:
            raise MalformedUrl(f"format(): {fmt!r} is not one of {', '.join(_FORMATS)}", field=name)
        b.format = fmt
    elif name == "max_age":
        _arity(f, 1, 1)
        b.max_age = _int(f, 0, 0, 10 * 365 * 86400)
    elif name == "max_bytes":
        _arity(f, 1, 1)
        b.steps.append(MaxBytesStep(bytes=_int(f, 0, 1, 1_000_000_000)))
    elif name == "blur":
        _arity(f, 1, 2)
        radius = _int(f, 0)
        if radius < 1:
            raise MalformedUrl("blur()'s radius is at least 1", field=name)
        sigma = _float(f, 1) if len(f.args) > 1 else 0.0
        b.steps.append(FilterStep(name="gaussian", radius=min(sigma or radius, 100.0)))
    elif name == "sharpen":
        _arity(f, 3, 3)
        b.steps.append(
            UnsharpStep(
                amount=min(max(_float(f, 0), 0.0), 10.0),
                radius=min(max(_float(f, 1), 0.1), 50.0),
                luminance_only=_bool(f, 2),
            )
        )
    elif name == "brightness":
        _arity(f, 1, 1)
        b.steps.append(BrightnessStep(amount=_int(f, 0, -100, 100)))
    elif name == "contrast":
        _arity(f, 1, 1)
        b.steps.append(ContrastStep(amount=_int(f, 0, -100, 100)))
    elif name == "saturation":
        _arity(f, 1, 1)
        b.steps.append(SaturationStep(factor=min(max(_float(f, 0), -10.0), 10.0)))
    elif name == "rgb":
        _arity(f, 3, 3)
        red, green, blue = (_int(f, i, -100, 100) for i in range(3))
        b.steps.append(RgbStep(red=red, green=green, blue=blue))
    elif name in (
        "grayscale",
        "equalize",
        "strip_exif",
        "strip_icc",
        "no_upscale",
        "upscale",
        "stretch",
        "cover",
    ):
        _arity(f, 0, 0)
        if name == "grayscale":
            b.steps.append(GrayscaleStep())
        elif name == "equalize":
            b.steps.append(EqualizeStep())
        elif name == "no_upscale":
            b.thumbnail["upscale"] = False
        elif name == "upscale":
            if b.thumbnail.get("upscale") is not False:  # no_upscale() wins, as in thumbor
                b.thumbnail["upscale"] = True
        elif name == "stretch":
            b.thumbnail["stretch"] = True
        elif name == "cover":
            b.frames = "first"
        # strip_exif, strip_icc: results never carry the source's metadata anyway.
    elif name == "rotate":
        _arity(f, 1, 1)
        degrees = _int(f, 0)
        if degrees % 90 == 0 and degrees % 360:
            b.steps.append(RotateStep(degrees=degrees % 360))
    elif name == "proportion":
        _arity(f, 1, 1)
        factor = _float(f, 0)
        if 0 < factor <= 1:  # thumbor ignores anything else
            b.steps.append(ScaleStep(factor=factor))
    elif name == "fill":
        _arity(f, 1, 2)
        b.steps.append(FillStep(color=_text(f, 0), fill_transparent=_bool(f, 1)))
    elif name == "background_color":
        _arity(f, 1, 1)
        b.steps.append(BackgroundStep(color=_text(f, 0)))
    elif name == "round_corner":
        _arity(f, 4, 5)
        radii = f.args[0].split("|")
        if len(radii) > 2 or not all(re.fullmatch(r"\d{1,5}", r) for r in radii):
            raise MalformedUrl("round_corner()'s radius is a or a|b", field=name)
        red, green, blue = (_int(f, i, 0, 255) for i in (1, 2, 3))
        b.steps.append(
            RoundCornerStep(
                radius=max(1, int(radii[0])),
                radius_y=max(1, int(radii[1])) if len(radii) == 2 else None,
                color=f"#{red:02x}{green:02x}{blue:02x}",
                transparent=_bool(f, 4),
            )
        )
    elif name == "watermark":
        _arity(f, 4, 6)

        def ratio(index: int) -> float | None:
            if index >= len(f.args) or f.args[index] in ("none", ""):
                return None
            value = _int(f, index)
            return float(value) if value > 0 else None

        b.steps.append(
            WatermarkStep(
                image=_text(f, 0),
                x=f.args[1],
                y=f.args[2],
                alpha=_int(f, 3, 0, 100),
                w_ratio=ratio(4),
                h_ratio=ratio(5),
            )
        )
    elif name == "focal":
        b.regions.append(_focal(f))
    elif name in ("redact", "draw_detections"):
        _arity(f, 1, 22)
        b.steps.append(_detection_step(f))
    # Anything else (thumbor's noise, colorize, curve, ... or a plugin's) is ignored.


_STYLES = ("blur", "pixelate", "fill")
_ENGINES = ("haar", "mtcnn", "tesseract", "easyocr")


def _detection_step(f: Filter) -> RedactStep | DrawDetectionsStep:
    """`redact(target[,word...])` / `draw_detections(target[,word...])`: after the target
    (faces, objects, text), a style (blur, pixelate, fill), an engine (haar, mtcnn,
    tesseract, easyocr), `model=NAME` (objects: a registry model) or, for objects, labels to
    take: `redact(objects,person,pixelate)`."""
    words = [_text(f, i) for i in range(len(f.args))]
    options: dict[str, Any] = {"target": words[0]}
    classes = []
    for word in words[1:]:
        if word in _STYLES and f.name == "redact":
            options["style"] = word
        elif word in _ENGINES:
            options["engine"] = word
        elif word.startswith("model="):
            options["model"] = word.removeprefix("model=")
        else:
            classes.append(word)
    if classes:
        options["classes"] = classes
    if f.name == "redact":
        return RedactStep(**options)
    return DrawDetectionsStep(**options)


def _thumbnail(url: ThumborUrl, options: dict[str, Any]) -> ThumbnailStep | None:
    if url.width is None and url.height is None:
        return None  # thumbor keeps the source's size; its upscale/stretch have nothing to do
    fit = url.fit or ""
    mode = "fill"
    if fit.endswith("fit-in"):
        mode = "full_fit_in" if "full" in fit else "fit_in"
    elif options.get("stretch"):
        mode = "stretch"
    return ThumbnailStep(
        width=url.width,
        height=url.height,
        mode=mode,
        adaptive=fit.startswith("adaptive"),
        upscale=options.get("upscale"),
        halign=url.halign,
        valign=url.valign,
        smart=url.smart,
    )


def plan(url: ThumborUrl) -> UrlPlan:
    """The pipeline a parsed URL asks for. Raises MalformedUrl (400)."""
    try:
        return _plan(url)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise MalformedUrl(f"{where}: {message}" if where else message) from None


def _plan(url: ThumborUrl) -> UrlPlan:
    build = _Build(thumbnail={})
    for f in url.filters:
        _apply_filter(f, build)
    steps: list[Step] = []
    if url.crop is not None:
        left, top, right, bottom = url.crop
        if right > left and bottom > top:  # thumbor ignores an empty box
            box = {"x": left, "y": top, "width": right - left, "height": bottom - top}
            steps.append(CropStep(**box, outside="ignore"))
    if url.trim is not None:
        steps.append(TrimStep(reference=url.trim[0], tolerance=url.trim[1]))
    thumbnail = _thumbnail(url, build.thumbnail)
    if thumbnail is not None:
        steps.append(thumbnail)
    if url.flip_horizontal or url.flip_vertical:
        steps.append(FlipStep(horizontal=url.flip_horizontal, vertical=url.flip_vertical))
    steps.extend(build.steps)
    if len(steps) > MAX_STEPS:
        raise MalformedUrl(f"the URL makes {len(steps)} steps; at most {MAX_STEPS}")
    spec = PipelineSpec(
        steps=steps,
        format=build.format,
        quality=build.quality,
        regions=build.regions,
        detect=["faces", "objects"] if url.smart else [],
        frames=build.frames,
    )
    return UrlPlan(
        spec=spec,
        image=url.image,
        meta=url.meta,
        max_age=build.max_age,
        format_given=build.format is not None,
    )


def translate(path: str) -> UrlPlan:
    """`parse` then `plan`: a URL path to what it asks for."""
    return plan(parse(path))
