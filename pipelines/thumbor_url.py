"""thumbor's URL grammar: the path of a GET URL in, a `PipelineSpec` out (and back again).

    /{signature|unsafe}/[meta/][trim[:top-left|:bottom-right][:tolerance]/][AxB:CxD/]
    [fit-in/|adaptive-fit-in/|full-fit-in/|adaptive-full-fit-in/][-][W]x[-][H]/
    [left|center|right/][top|middle|bottom/][smart/][filters:NAME(ARGS):NAME(ARGS)/]IMAGE

Pure translation, no I/O: `parse` reads the path (as it arrived, still percent-encoded, which
is what a signature covers), `plan` turns it into the same `PipelineSpec` that
/api/v1/process runs, plus what only the HTTP answer needs (max_age, meta). `compose` writes
a path back from the parsed form, and `url_for` from a pipeline where one maps.

Steps come in thumbor's order: manual crop, trim, the geometry (`thumbnail`), flips, then the
filters in the order the URL names them. Unknown filters are ignored, as thumbor does; a known
filter with arguments it cannot take is a 400 (thumbor would skip it silently).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote, unquote

from pydantic import ValidationError

from pipelines.errors import ServiceError
from pipelines.ops.canvas import BackgroundStep, FillStep, RoundCornerStep, parse_colour
from pipelines.ops.color import (
    BrightnessStep,
    ContrastStep,
    EqualizeStep,
    GrayscaleStep,
    RgbStep,
    SaturationStep,
)
from pipelines.ops.convert import ConvertStep
from pipelines.ops.crop import CropStep
from pipelines.ops.filters import FilterStep
from pipelines.ops.max_bytes import MaxBytesStep
from pipelines.ops.orientation import FlipStep, RotateStep
from pipelines.ops.resize import ResizeStep
from pipelines.ops.scale import ScaleStep
from pipelines.ops.thumbnail import ThumbnailStep
from pipelines.ops.trim import TrimStep
from pipelines.ops.unsharp import UnsharpStep
from pipelines.ops.watermark import WatermarkStep
from pipelines.regions import Region
from pipelines.spec import MAX_STEPS, PipelineSpec, Step

MAX_PATH = 8192  # longer paths are refused before any parsing
MAX_FILTERS = MAX_STEPS


class MalformedUrl(ServiceError):
    """The path is not a URL of this grammar, or a filter's arguments are wrong: 400, as
    thumbor answers."""

    status = 400
    code = "malformed_url"


Fit = Literal["fit-in", "adaptive-fit-in", "full-fit-in", "adaptive-full-fit-in"]
Side = int | Literal["orig"] | None


@dataclass(frozen=True)
class Filter:
    name: str
    args: tuple[str, ...] = ()

    def text(self) -> str:
        return f"{self.name}({','.join(self.args)})"


@dataclass(frozen=True)
class ThumborUrl:
    """A parsed path. `signature` is None for unsafe/ URLs; `signed` is the text after the
    signature segment exactly as it arrived: what the HMAC covers."""

    image: str
    signature: str | None = None
    signed: str = ""
    meta: bool = False
    debug: bool = False
    trim: tuple[Literal["top-left", "bottom-right"], int] | None = None
    crop: tuple[int, int, int, int] | None = None
    fit: Fit | None = None
    width: Side = None
    height: Side = None
    flip_horizontal: bool = False
    flip_vertical: bool = False
    halign: Literal["left", "center", "right"] = "center"
    valign: Literal["top", "middle", "bottom"] = "middle"
    smart: bool = False
    filters: tuple[Filter, ...] = field(default_factory=tuple)

    @property
    def unsafe(self) -> bool:
        return self.signature is None


# thumbor's own grammar, segment by segment (libthumbor's Url.regex, read and rewritten).
_OPTIONS = re.compile(
    r"(?:(?P<debug>debug)/)?"
    r"(?:(?P<meta>meta)/)?"
    r"(?:(?P<trim>trim(?::(?:top-left|bottom-right))?(?::\d+)?)/)?"
    r"(?:(?P<crop>\d+x\d+:\d+x\d+)/)?"
    r"(?:(?P<fit>(?:adaptive-)?(?:full-)?fit-in)/)?"
    r"(?:(?P<hflip>-)?(?P<width>\d+|orig)?x(?P<vflip>-)?(?P<height>\d+|orig)?/)?"
    r"(?:(?P<halign>left|right|center)/)?"
    r"(?:(?P<valign>top|bottom|middle)/)?"
    r"(?:(?P<smart>smart)/)?"
    r"(?:filters:(?P<filters>.+?\))/)?"
    r"(?P<image>.+)",
    re.DOTALL,
)
_CROP = re.compile(r"(\d+)x(\d+):(\d+)x(\d+)")
_FILTER_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_MAX_SIDE = 16384


def split_signature(path: str) -> tuple[str, str]:
    """("unsafe" or the signature, the rest) of a path, leading slash or not."""
    path = path.lstrip("/")
    if len(path) > MAX_PATH:
        raise MalformedUrl(f"the URL is longer than {MAX_PATH} characters")
    head, sep, rest = path.partition("/")
    if not sep or not rest:
        raise MalformedUrl("the URL names no image after its signature (or unsafe/)")
    return head, rest


def parse(path: str) -> ThumborUrl:
    """Read a URL path (percent-encoded, as received). Raises MalformedUrl (400)."""
    head, rest = split_signature(path)
    match = _OPTIONS.fullmatch(rest)
    if match is None:  # pragma: no cover - the image group takes anything left
        raise MalformedUrl("the URL does not follow thumbor's grammar")
    g = match.groupdict()
    image = _image(g["image"])
    return ThumborUrl(
        image=image,
        signature=None if head == "unsafe" else unquote(head),
        signed=rest,
        meta=bool(g["meta"]),
        debug=bool(g["debug"]),
        trim=_trim(g["trim"]),
        crop=_crop(g["crop"]),
        fit=g["fit"],  # type: ignore[arg-type]
        width=_side(g["width"]),
        height=_side(g["height"]),
        flip_horizontal=bool(g["hflip"]),
        flip_vertical=bool(g["vflip"]),
        halign=g["halign"] or "center",  # type: ignore[arg-type]
        valign=g["valign"] or "middle",  # type: ignore[arg-type]
        smart=bool(g["smart"]),
        filters=split_filters(unquote(g["filters"])) if g["filters"] else (),
    )


def _image(raw: str) -> str:
    image = unquote(raw)
    # A URL-encoded source URL may arrive encoded twice ("http%253A%252F%252F...").
    if re.match(r"https?%3a", image, re.IGNORECASE):
        image = unquote(image)
    if not image or image.strip("/") == "":
        raise MalformedUrl("the URL names no image", field="image")
    if "\x00" in image:
        raise MalformedUrl("the image name holds a NUL character", field="image")
    return image


def _trim(text: str | None) -> tuple[Literal["top-left", "bottom-right"], int] | None:
    if not text:
        return None
    parts = text.split(":")[1:]
    reference: Literal["top-left", "bottom-right"] = "top-left"
    tolerance = 0
    for part in parts:
        if part in ("top-left", "bottom-right"):
            reference = part  # type: ignore[assignment]
        else:
            tolerance = _whole(part, "trim")
    if tolerance > 442:
        raise MalformedUrl("trim's tolerance is a colour distance, 0 to 442", field="trim")
    return reference, tolerance


def _crop(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    match = _CROP.fullmatch(text)
    assert match is not None
    left, top, right, bottom = (_whole(v, "crop") for v in match.groups())
    return left, top, right, bottom


def _whole(digits: str, where: str) -> int:
    """A run of digits as a number, refusing absurd lengths before int() sees them."""
    if len(digits.lstrip("-").lstrip("0")) > 9:
        raise MalformedUrl(f"{where}: {digits[:12]}... is far too large", field=where)
    return int(digits)


def _side(text: str | None) -> Side:
    if text is None:
        return None
    if text == "orig":
        return "orig"
    value = _whole(text, "width")
    if value > _MAX_SIDE:
        raise MalformedUrl(f"a side is at most {_MAX_SIDE} pixels", field="width")
    return value or None


def split_filters(text: str) -> tuple[Filter, ...]:
    """`name(a,b):name2()...` as filters; commas inside quotes do not split arguments."""
    out: list[Filter] = []
    i, n = 0, len(text)
    while i < n:
        match = _FILTER_NAME.match(text, i)
        if match is None or match.end() >= n or text[match.end()] != "(":
            raise MalformedUrl(f"a filter must look like name(arguments): {text[i : i + 40]!r}")
        name = match.group()
        args, i = _arguments(text, match.end() + 1)
        out.append(Filter(name, args))
        if len(out) > MAX_FILTERS:
            raise MalformedUrl(f"at most {MAX_FILTERS} filters")
        if i < n:
            if text[i] != ":":
                raise MalformedUrl("filters are separated by ':'")
            i += 1
    return tuple(out)


def _arguments(text: str, i: int) -> tuple[tuple[str, ...], int]:
    """Arguments from text[i:] up to the closing parenthesis; returns them and the index
    after it. Quotes ('...') group; a nested (...) stays inside its argument."""
    args: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    while i < len(text):
        ch = text[i]
        if quoted:
            current.append(ch)
            quoted = ch != "'"
        elif ch == "'":
            current.append(ch)
            quoted = True
        elif ch == "(":
            depth += 1
            current.append(ch)
        elif ch == ")" and depth:
            depth -= 1
            current.append(ch)
        elif ch == ")":
            joined = "".join(current).strip()
            if joined or args:
                args.append(joined)
            return tuple(args), i + 1
        elif ch == ",":
            args.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    raise MalformedUrl("a filter's parenthesis is not closed")


# --- URL -> pipeline -------------------------------------------------------------------


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
    value = _whole(text, f.name)
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
    match = _CROP.fullmatch(f.args[0])
    if match is None:
        raise MalformedUrl("focal() takes a box: focal(LEFTxTOP:RIGHTxBOTTOM)", field="focal")
    left, top, right, bottom = (_whole(v, "focal") for v in match.groups())
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
    # Anything else (thumbor's noise, colorize, curve, ... or a plugin's) is ignored.


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


# --- and back --------------------------------------------------------------------------


def compose(url: ThumborUrl) -> str:
    """The path for `url` after its signature segment (what gets signed), image quoted."""
    parts: list[str] = []
    if url.debug:
        parts.append("debug")
    if url.meta:
        parts.append("meta")
    if url.trim is not None:
        reference, tolerance = url.trim
        parts.append(f"trim:{reference}:{tolerance}" if tolerance else f"trim:{reference}")
    if url.crop is not None:
        parts.append("{}x{}:{}x{}".format(*url.crop))
    if url.fit:
        parts.append(url.fit)
    if url.width is not None or url.height is not None or url.flip_horizontal or url.flip_vertical:
        w = "" if url.width is None else str(url.width)
        h = "" if url.height is None else str(url.height)
        if url.flip_horizontal:
            w = f"-{w or 0}"
        if url.flip_vertical:
            h = f"-{h or 0}"
        parts.append(f"{w}x{h}")
    if url.halign != "center":
        parts.append(url.halign)
    if url.valign != "middle":
        parts.append(url.valign)
    if url.smart:
        parts.append("smart")
    if url.filters:
        parts.append("filters:" + ":".join(f.text() for f in url.filters))
    parts.append(quote_image(url.image))
    return "/".join(parts)


def quote_image(image: str) -> str:
    """An image reference as a path's last part: a source URL is percent-encoded whole (its
    '?', '#' and '/' would otherwise belong to our URL), a key keeps its slashes."""
    if re.match(r"https?://", image, re.IGNORECASE):
        return quote(image, safe="")
    return quote(image, safe="/")


def with_options(url: ThumborUrl, **changes: Any) -> ThumborUrl:
    return replace(url, **changes)


class NoUrlForm(ServiceError):
    """A pipeline some step of which thumbor's grammar cannot say (an `enhance`, a crop by
    aspect, steps out of thumbor's order): 422 naming why."""

    status = 422
    code = "no_url_form"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _filter_for(step: Step) -> list[Filter]:
    """The URL filters that say `step` (raises NoUrlForm when none does)."""
    if isinstance(step, FilterStep) and step.name == "gaussian":
        return [Filter("blur", (str(max(1, math.ceil(step.radius))), _number(step.radius)))]
    if isinstance(step, UnsharpStep):
        lum = "true" if step.luminance_only else "false"
        return [Filter("sharpen", (_number(step.amount), _number(step.radius), lum))]
    if isinstance(step, BrightnessStep):
        return [Filter("brightness", (str(step.amount),))]
    if isinstance(step, ContrastStep):
        return [Filter("contrast", (str(step.amount),))]
    if isinstance(step, SaturationStep):
        return [Filter("saturation", (_number(step.factor),))]
    if isinstance(step, RgbStep):
        return [Filter("rgb", (str(step.red), str(step.green), str(step.blue)))]
    if isinstance(step, GrayscaleStep):
        return [Filter("grayscale")]
    if isinstance(step, EqualizeStep):
        return [Filter("equalize")]
    if isinstance(step, RotateStep):
        return [Filter("rotate", (str(step.degrees),))]
    if isinstance(step, ScaleStep):
        return [Filter("proportion", (_number(step.factor),))]
    if isinstance(step, MaxBytesStep):
        return [Filter("max_bytes", (str(step.bytes),))]
    if isinstance(step, BackgroundStep):
        return [Filter("background_color", (step.color.lstrip("#"),))]
    if isinstance(step, FillStep) and step.width is None and step.height is None:
        args = (
            (step.color.lstrip("#"), "true") if step.fill_transparent else (step.color.lstrip("#"),)
        )
        return [Filter("fill", args)]
    if isinstance(step, RoundCornerStep):
        r, g, b, _ = parse_colour(step.color)
        radius = f"{step.radius}|{step.radius_y}" if step.radius_y else str(step.radius)
        args = (radius, str(r), str(g), str(b), *(("true",) if step.transparent else ()))
        return [Filter("round_corner", args)]
    if isinstance(step, WatermarkStep):
        ratios = [_number(r) if r else "none" for r in (step.w_ratio, step.h_ratio)]
        tail = ratios if step.w_ratio or step.h_ratio else []
        return [Filter("watermark", (step.image, step.x, step.y, str(step.alpha), *tail))]
    if isinstance(step, ConvertStep):
        out = [Filter("format", (step.format,))]
        return out + ([Filter("quality", (str(step.quality),))] if step.quality else [])
    raise NoUrlForm(f"the URL grammar has no form for this {step.op} step", field="steps")


def _thumbnail_of(step: Step) -> tuple[ThumbnailStep, list[Filter]] | None:
    """A resizing step as the URL's geometry (ResizeStep's nearest thumbor form)."""
    if isinstance(step, ThumbnailStep):
        return step, []
    if not isinstance(step, ResizeStep):
        return None
    mode = {"fit": "fit_in", "exact": "stretch", "fill": "fill"}[step.mode]
    thumb = ThumbnailStep(
        width=step.width,
        height=step.height,
        mode=mode,
        smart=step.gravity == "smart",
    )
    extra: list[Filter] = []
    if step.upscale and mode == "fit_in":
        extra.append(Filter("upscale"))
    if not step.upscale and mode != "fit_in":
        extra.append(Filter("no_upscale"))
    if mode == "stretch":
        extra.append(Filter("stretch"))
    return thumb, extra


def url_for(spec: PipelineSpec, image: str) -> str:
    """The URL path (after the signature segment) that asks for `spec` on `image`: steps in
    thumbor's order (crop box, trim, one resize, flips) then filters. Raises NoUrlForm."""
    url = ThumborUrl(image=image)
    steps = list(spec.steps)
    filters: list[Filter] = []
    if steps and isinstance(steps[0], CropStep) and steps[0].aspect is None:
        crop = steps.pop(0)
        assert isinstance(crop, CropStep) and crop.width and crop.height
        url = replace(url, crop=(crop.x, crop.y, crop.x + crop.width, crop.y + crop.height))
    if steps and isinstance(steps[0], TrimStep):
        trim = steps.pop(0)
        assert isinstance(trim, TrimStep)
        url = replace(url, trim=(trim.reference, trim.tolerance))
    if steps and (found := _thumbnail_of(steps[0])) is not None:
        steps.pop(0)
        thumb, extra = found
        fit = {"fit_in": "fit-in", "full_fit_in": "full-fit-in"}.get(thumb.mode)
        if fit and thumb.adaptive:
            fit = f"adaptive-{fit}"
        url = replace(
            url,
            width=thumb.width,
            height=thumb.height,
            fit=fit,  # type: ignore[arg-type]
            halign=thumb.halign,
            valign=thumb.valign,
            smart=thumb.smart,
        )
        if thumb.mode == "stretch" and not any(f.name == "stretch" for f in extra):
            extra.append(Filter("stretch"))
        if thumb.upscale is True and not any(f.name == "upscale" for f in extra):
            extra.append(Filter("upscale"))
        if thumb.upscale is False and not any(f.name == "no_upscale" for f in extra):
            extra.append(Filter("no_upscale"))
        filters += extra
    if steps and isinstance(steps[0], FlipStep):
        flip = steps.pop(0)
        assert isinstance(flip, FlipStep)
        url = replace(url, flip_horizontal=flip.horizontal, flip_vertical=flip.vertical)
    for step in steps:
        filters += _filter_for(step)
    for region in spec.regions:
        box = f"{int(region.x1)}x{int(region.y1)}:{math.ceil(region.x2)}x{math.ceil(region.y2)}"
        filters.append(Filter("focal", (box,)))
    if spec.format:
        filters.append(Filter("format", (spec.format,)))
    if spec.quality:
        filters.append(Filter("quality", (str(spec.quality),)))
    if spec.frames == "first":
        filters.append(Filter("cover"))
    return compose(replace(url, filters=tuple(filters)))
