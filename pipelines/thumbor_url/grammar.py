"""thumbor's URL grammar as text: a path into a `ThumborUrl` (`parse`) and back (`compose`).

    /{signature|unsafe}/[meta/][trim[:top-left|:bottom-right][:tolerance]/][AxB:CxD/]
    [fit-in/|adaptive-fit-in/|full-fit-in/|adaptive-full-fit-in/][-][W]x[-][H]/
    [left|center|right/][top|middle|bottom/][smart/][filters:NAME(ARGS):NAME(ARGS)/]IMAGE

`parse` reads the path as it arrived, still percent-encoded (which is what a signature
covers), and decodes each part once, as thumbor's router does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote

from pipelines.errors import ServiceError
from pipelines.spec import MAX_STEPS

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
CROP = re.compile(r"(\d+)x(\d+):(\d+)x(\d+)")
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
            tolerance = whole(part, "trim")
    if tolerance > 442:
        raise MalformedUrl("trim's tolerance is a colour distance, 0 to 442", field="trim")
    return reference, tolerance


def _crop(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    match = CROP.fullmatch(text)
    assert match is not None
    left, top, right, bottom = (whole(v, "crop") for v in match.groups())
    return left, top, right, bottom


def whole(digits: str, where: str) -> int:
    """A run of digits as a number, refusing absurd lengths before int() sees them."""
    if len(digits.lstrip("-").lstrip("0")) > 9:
        raise MalformedUrl(f"{where}: {digits[:12]}... is far too large", field=where)
    return int(digits)


def _side(text: str | None) -> Side:
    if text is None:
        return None
    if text == "orig":
        return "orig"
    value = whole(text, "width")
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
