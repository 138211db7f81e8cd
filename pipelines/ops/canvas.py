"""What is painted around or behind the picture (thumbor's `fill`, `background_color` and
`round_corner` filters).

- fill: a canvas of the given box — or, when none is given, of the box the last `thumbnail`
  step aimed at (thumbor's requested size, as `fit-in/300x300/filters:fill(white)` pads to
  300x300), else the image's own size — with the image centred on it (cut where it is larger);
  the rest painted with a colour, `transparent`, `auto` (the image's mean colour) or `blur`
  (the image itself, blurred and stretched to the canvas). Transparent pixels of the image
  stay transparent unless `fill_transparent`.
- background: transparent parts of the image shown over a colour.
- round_corner: elliptic corners (radii `a`|`b`) painted with a colour, or made transparent.

Colours are CSS names or hex (with or without `#`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFilter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipelines import regions as rg
from pipelines.cost import StepCost, megapixels
from pipelines.limits import Limits, check_pixels
from pipelines.ops.registry import StepContext, register, register_contextual

RGBA = tuple[int, int, int, int]
_SPECIAL_FILLS = ("transparent", "auto", "blur")
_BLUR_RADIUS = 50  # thumbor's fill(blur)
_SUPERSAMPLE = 4  # round corners are drawn 4x larger and shrunk: smooth edges


def parse_colour(text: str) -> RGBA:
    """A CSS colour name or hex, with or without '#'; ValueError when it is neither."""
    name = text.strip()
    if name.lower() == "transparent":
        return (0, 0, 0, 0)
    for candidate in (name, f"#{name}"):
        try:
            colour = ImageColor.getrgb(candidate)
        except ValueError:
            continue
        return (colour[0], colour[1], colour[2], colour[3] if len(colour) == 4 else 255)
    raise ValueError(f"{text!r} is not a colour (a name such as red, or hex such as ff0000)")


def _rgba(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGBA" else img.convert("RGBA")


def _opaque_result(img: Image.Image, keep_alpha: bool) -> Image.Image:
    """An RGBA canvas as RGB when nothing on it is transparent (operations see RGB, RGBA or L)."""
    return img if keep_alpha else img.convert("RGB")


class FillStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["fill"] = "fill"
    color: str = Field("black", max_length=32, description="a colour, transparent, auto or blur")
    width: int | None = Field(None, ge=1, le=16384, description="canvas; None: see above")
    height: int | None = Field(None, ge=1, le=16384, description="canvas; None: see above")
    fill_transparent: bool = Field(False, description="paint the image's transparent pixels too")

    @field_validator("color")
    @classmethod
    def _known_colour(cls, color: str) -> str:
        if color.lower() in _SPECIAL_FILLS:
            return color.lower()
        parse_colour(color)
        return color

    def canvas(
        self, width: int, height: int, aimed: tuple[int | None, int | None] | None = None
    ) -> tuple[int, int]:
        """The canvas for a width x height image (`aimed`: the thumbnail's box, if any)."""
        bw, bh = (self.width, self.height) if self.width or self.height else aimed or (None, None)
        return bw or width, bh or height

    def cost(self, width: int, height: int) -> StepCost:
        cw, ch = self.canvas(width, height)  # a thumbnail's box is priced by the thumbnail
        # Painting the canvas and pasting the image: measured 3 table lookups' time per canvas
        # pixel. blur also blurs the image at radius 50 (RGBA) and stretches it to the canvas:
        # measured ~70 per image pixel.
        work = 3.0 * megapixels(cw, ch)
        if self.color == "blur":
            work += 70.0 * megapixels(width, height) + 4.0 * megapixels(cw, ch)
        return StepCost(work, cw, ch)


class BackgroundStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["background"] = "background"
    color: str = Field(max_length=32, description="a CSS name or hex")

    @field_validator("color")
    @classmethod
    def _known_colour(cls, color: str) -> str:
        parse_colour(color)
        return color

    def cost(self, width: int, height: int) -> StepCost:
        # Paint, composite in RGBA, convert back: measured 11.4 table lookups' time per pixel.
        return StepCost(12.0 * megapixels(width, height), width, height)


class RoundCornerStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["round_corner"] = "round_corner"
    radius: int = Field(ge=1, le=16384, description="horizontal radius (a)")
    radius_y: int | None = Field(None, ge=1, le=16384, description="vertical radius (b)")
    color: str = Field("white", max_length=32, description="what the corners are painted with")
    transparent: bool = Field(False, description="make the corners transparent instead")

    @field_validator("color")
    @classmethod
    def _known_colour(cls, color: str) -> str:
        parse_colour(color)
        return color

    def cost(self, width: int, height: int) -> StepCost:
        # A mask the image's size, made and composited: measured 4.9 table lookups' time per
        # pixel (the corners are drawn at 4x on patches no larger than the radii).
        return StepCost(5.0 * megapixels(width, height), width, height)


def _mean_colour(img: Image.Image) -> RGBA:
    rgb = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]), 255)


@register_contextual("fill")
def fill(img: Image.Image, step: FillStep, limits: Limits, ctx: StepContext) -> Image.Image:
    cw, ch = step.canvas(img.width, img.height, ctx.box)
    check_pixels(cw, ch, limits, what="the filled canvas")
    x, y = (cw - img.width) // 2, (ch - img.height) // 2
    has_alpha = img.mode == "RGBA"
    if step.color == "blur":
        background = _rgba(img).filter(ImageFilter.GaussianBlur(_BLUR_RADIUS))
        background = background.resize((cw, ch), Image.Resampling.BILINEAR)
        keep_alpha = has_alpha
    else:
        colour = _mean_colour(img) if step.color == "auto" else parse_colour(step.color)
        background = Image.new("RGBA", (cw, ch), colour)
        keep_alpha = colour[3] < 255 or (has_alpha and not step.fill_transparent)
    if step.fill_transparent:
        background.alpha_composite(_rgba(img), (x, y))
    else:
        background.paste(_rgba(img), (x, y))
    ctx.regions = rg.crop(rg.shift(ctx.regions, x, y), (0, 0, cw, ch))
    return _opaque_result(background, keep_alpha)


@register("background")
def background(img: Image.Image, step: BackgroundStep, limits: Limits) -> Image.Image:
    if img.mode != "RGBA":
        return img  # nothing transparent to show it through
    colour = parse_colour(step.color)
    canvas = Image.new("RGBA", img.size, colour)
    canvas.alpha_composite(img)
    return _opaque_result(canvas, colour[3] < 255)


def _corner_mask(a: int, b: int) -> Image.Image:
    """An a x b patch: 255 inside the ellipse quarter at its bottom-right, 0 in the corner."""
    big = Image.new("L", (a * _SUPERSAMPLE, b * _SUPERSAMPLE), 0)
    ImageDraw.Draw(big).ellipse(
        (0, 0, 2 * a * _SUPERSAMPLE - 1, 2 * b * _SUPERSAMPLE - 1), fill=255
    )
    return big.resize((a, b), Image.Resampling.BOX)


@register("round_corner")
def round_corner(img: Image.Image, step: RoundCornerStep, limits: Limits) -> Image.Image:
    width, height = img.size
    a = min(step.radius, width // 2)
    b = min(step.radius_y or step.radius, height // 2)
    if a < 1 or b < 1:
        return img
    mask = Image.new("L", img.size, 255)
    corner = _corner_mask(a, b)
    mask.paste(corner, (0, 0))
    mask.paste(corner.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (width - a, 0))
    mask.paste(corner.transpose(Image.Transpose.FLIP_TOP_BOTTOM), (0, height - b))
    mask.paste(corner.transpose(Image.Transpose.ROTATE_180), (width - a, height - b))
    if step.transparent:
        out = _rgba(img).copy()
        alpha = out.getchannel("A")
        out.putalpha(Image.fromarray(np.minimum(np.asarray(alpha), np.asarray(mask))))
        return out
    colour = parse_colour(step.color)
    painted = Image.new(img.mode, img.size, colour if img.mode == "RGBA" else colour[:3])
    if img.mode == "L":
        painted = Image.new("RGB", img.size, colour[:3])
        img = img.convert("RGB")
    return Image.composite(img, painted, mask)
