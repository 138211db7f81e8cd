"""thumbnail: thumbor's geometry — the size of the result and which part of the picture fills
it — with thumbor's own arithmetic, so a thumbor URL gives the same width and height here.

- `fill` (thumbor's plain `WxH`): crop to the box's aspect, then resize to the box. Upscales
  unless `upscale` is false (thumbor's `no_upscale()`, which caps the box at the image's size).
  The crop window is centred on the regions of interest (their weighted centre, as thumbor's
  focal points), else on the most interesting part when `smart`, else placed by
  `halign`/`valign`. Aspects equal to two decimals are not cropped.
- `fit_in`: the largest size that fits in the box; never larger than the image unless
  `upscale` (thumbor's `upscale()` filter, which then fits the box).
- `full_fit_in`: the smallest size that covers the box (the image may stick out; never cropped).
- `stretch`: exactly the box, aspect ignored (thumbor's `stretch()`).
- `adaptive` (fit_in, full_fit_in): the box turns with the picture (a portrait box for a
  portrait image).
- A side of None keeps the aspect from the other; "orig" is the image's own size on that side.

Flips are a separate step (`flip`), as in thumbor they come after the resize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from pipelines import regions as rg
from pipelines.cost import StepCost, megapixels
from pipelines.errors import InvalidParameter
from pipelines.limits import Limits, check_pixels
from pipelines.ops.gravity import place
from pipelines.ops.registry import StepContext, register_contextual

_REDUCING_GAP = 3.0  # as resize.py: a box reduce() first, then Lanczos on the rest

ThumbnailMode = Literal["fill", "fit_in", "full_fit_in", "stretch"]
Side = int | Literal["orig"] | None
HAlign = Literal["left", "center", "right"]
VAlign = Literal["top", "middle", "bottom"]
_ALIGN = {"left": 0.0, "center": 0.5, "right": 1.0, "top": 0.0, "middle": 0.5, "bottom": 1.0}


@dataclass(frozen=True)
class Plan:
    """What the step does to a `source` image: cut `box` (None: all of it), resample to
    `size`."""

    box: tuple[float, float, float, float] | None
    size: tuple[int, int]


class ThumbnailStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["thumbnail"] = "thumbnail"
    width: Side = Field(None, description='pixels, "orig", or None to keep the aspect')
    height: Side = Field(None, description='pixels, "orig", or None to keep the aspect')
    mode: ThumbnailMode = Field("fill", description="fill, fit_in, full_fit_in or stretch")
    adaptive: bool = Field(False, description="fit_in/full_fit_in: turn the box with the image")
    upscale: bool | None = Field(
        None, description="None: thumbor's default (fill and stretch grow, fit_in does not)"
    )
    halign: HAlign = "center"
    valign: VAlign = "middle"
    smart: bool = Field(False, description="fill: crop where the picture is busiest")
    # The true source size when the image arrives shrunk on load (set by the pipeline).
    _source: tuple[int, int] | None = PrivateAttr(None)
    # The smart window chosen for the first frame of an animation, kept for the others.
    _window: tuple[float, float, float, float] | None = PrivateAttr(None)

    @field_validator("width", "height")
    @classmethod
    def _side_in_range(cls, side: Side) -> Side:
        if isinstance(side, int) and not 1 <= side <= 16384:
            raise ValueError("must be between 1 and 16384 pixels")
        return side

    # --- sizes -------------------------------------------------------------------------

    def _targets(self, sw: int, sh: int) -> tuple[float, float]:
        """thumbor's target dimensions (floats, as it keeps them)."""
        w: int | str | None = self.width
        h: int | str | None = self.height
        if self.upscale is False:  # no_upscale(): the box no larger than the image
            w = min(w, sw) if isinstance(w, int) else w
            h = min(h, sh) if isinstance(h, int) else h
        if not w and not h:
            return float(sw), float(sh)
        wn = float(sw) if w == "orig" else float(w) if w else None
        hn = float(sh) if h == "orig" else float(h) if h else None
        if wn is None:
            assert hn is not None
            wn = round(hn * sw / sh, 0)
        if hn is None:
            hn = round(wn * sh / sw, 0)
        return max(wn, 1.0), max(hn, 1.0)

    def _requested(self, sw: int, sh: int) -> tuple[float, float]:
        """The box as asked (0 for a side left out), after no_upscale's cap: thumbor's
        request size, which upscale() grows to and fill() pads to."""

        def side(value: Side, own: int) -> float:
            number = float(own) if value == "orig" else float(value or 0)
            return min(number, own) if self.upscale is False and number else number

        return side(self.width, sw), side(self.height, sh)

    def aimed(self, sw: int, sh: int) -> tuple[int | None, int | None]:
        """thumbor's request size after its geometry ran (None: a side left to the image):
        the box a later `fill` pads to. A fit that shrank the image aims at the larger of the
        box and the result, as full-fit-in may overshoot it."""
        rw, rh = self._requested(sw, sh)
        tw, th = self._targets(sw, sh)
        if self.mode in ("fit_in", "full_fit_in"):
            if self._turned(sw, sh, tw, th):
                rw, rh = rh, rw
            size, resized = self._fit(sw, sh, tw, th)
            if resized:
                return int(max(rw, size[0])), int(max(rh, size[1]))
        return (int(rw) or None), (int(rh) or None)

    def _turned(self, sw: int, sh: int, tw: float, th: float) -> bool:
        return self.adaptive and ((sw < sh and tw > th) or (sw > sh and tw < th))

    def plan(self, sw: int, sh: int, focus: tuple[float, float] | None = None) -> Plan:
        """What happens to an sw x sh image; `focus` (source pixels) centres a fill's crop
        (None: halign/valign). The smart window needs the pixels: see `apply`."""
        tw, th = self._targets(sw, sh)
        if self.mode in ("fit_in", "full_fit_in"):
            return Plan(None, self._fit(sw, sh, tw, th)[0])
        if self.mode == "stretch":
            return Plan(None, (int(tw), int(th)))
        return Plan(self._fill_box(sw, sh, tw, th, focus), (int(tw), int(th)))

    def _fit(self, sw: int, sh: int, tw: float, th: float) -> tuple[tuple[int, int], bool]:
        """The fitted size, and whether thumbor's fit resized (rather than left it alone)."""
        rw_box, rh_box = self._requested(sw, sh)
        if self._turned(sw, sh, tw, th):
            tw, th = th, tw
            rw_box, rh_box = rh_box, rw_box
        full = self.mode == "full_fit_in"
        if not full and tw >= sw and th >= sh:
            # Smaller than the box: left alone, unless upscale() grows it to fit the box.
            if self.upscale and rw_box and rh_box and sw < rw_box and sh < rh_box:
                if sw / rw_box >= sh / rh_box:
                    return (int(rw_box), max(1, int(sh * rw_box / sw))), False
                return (max(1, int(sw * rh_box / sh)), int(rh_box)), False
            return (sw, sh), False
        sign = -1 if full else 1
        # thumbor adds 1e-5 so that .5 rounds up, as it did under Python 2.
        if sw / tw * sign >= sh / th * sign:
            return (int(tw), max(1, round(sh * tw / sw + 1e-5))), True
        return (max(1, round(sw * th / sh + 1e-5)), int(th)), True

    def crop_size(self, sw: int, sh: int) -> tuple[int, int] | None:
        """fill's crop window size, or None when the aspects already agree."""
        if self.mode != "fill":
            return None
        tw, th = self._targets(sw, sh)
        if round(sw / sh, 2) == round(tw / th, 2):
            return None
        if tw / sw > th / sh:
            return sw, max(1, int(round(sw * th / tw, 0)))
        return max(1, int(round(math.ceil(tw * sh / th), 0))), sh

    def _fill_box(
        self, sw: int, sh: int, tw: float, th: float, focus: tuple[float, float] | None
    ) -> tuple[float, float, float, float] | None:
        crop = self.crop_size(sw, sh)
        if crop is None:
            return None
        cw, ch = crop
        fx, fy = (
            focus if focus is not None else (sw * _ALIGN[self.halign], sh * _ALIGN[self.valign])
        )
        left = round(min(max(fx - cw / 2, 0.0), sw - cw))
        top = round(min(max(fy - ch / 2, 0.0), sh - ch))
        return float(left), float(top), float(min(left + cw, sw)), float(min(top + ch, sh))

    def output_size(self, sw: int, sh: int) -> tuple[int, int]:
        return self.plan(sw, sh).size

    def decode_hint(self, src_w: int, src_h: int) -> tuple[int, int]:
        """Smallest source size this step needs (JPEG shrink-on-load): the crop window
        must still cover the output at 1:1."""
        ow, oh = self.output_size(src_w, src_h)
        cw, ch = self.crop_size(src_w, src_h) or (src_w, src_h)
        scale = min(1.0, max(ow / cw, oh / ch))
        return math.ceil(src_w * scale), math.ceil(src_h * scale)

    def pinned(self, src_w: int, src_h: int) -> ThumbnailStep:
        """This step, told the true source size (the image may arrive shrunk on load), so the
        result's size depends on the source only."""
        pinned = self.model_copy()
        pinned._source = (src_w, src_h)
        return pinned

    def cost(self, width: int, height: int) -> StepCost:
        # A box reduce() over the input, then Lanczos from the reduced image (~4 per output
        # pixel). Measured against a table lookup (the unit) on a 1920x1440 photo to 300 px:
        # 2.6 units per input megapixel for a fit, 4.9 for a fill (its crop window is cut out
        # and reduced off the integer grid); tests/pipelines/test_thumbnail.py checks it.
        ow, oh = self.output_size(width, height)
        per_input = 5.0 if self.crop_size(width, height) else 2.5
        return StepCost(per_input * megapixels(width, height) + 4.0 * megapixels(ow, oh), ow, oh)


def _focus(ctx: StepContext, fx: float, fy: float) -> tuple[float, float] | None:
    """thumbor's centre of mass of the focal points, in source pixels (floored, as it does)."""
    centre = rg.centre_of_mass(ctx.regions)
    if centre is None:
        return None
    return float(math.floor(centre[0] / fx)), float(math.floor(centre[1] / fy))


@register_contextual("thumbnail")
def apply(img: Image.Image, step: ThumbnailStep, limits: Limits, ctx: StepContext) -> Image.Image:
    iw, ih = img.size
    sw, sh = step._source or (iw, ih)
    fx, fy = iw / sw, ih / sh  # image pixels per source pixel (below 1 after shrink-on-load)
    focus = _focus(ctx, fx, fy)
    plan = step.plan(sw, sh, focus)
    w, h = plan.size
    if max(w, h) > limits.max_side:
        raise InvalidParameter(
            f"the result would be {w}x{h}; the longest side allowed is {limits.max_side}",
            field="width" if w > limits.max_side else "height",
        )
    check_pixels(w, h, limits, what="the result")
    if plan.box is not None:
        left, top, right, bottom = plan.box
        if focus is None and step.smart:
            if step._window is None:
                x, y = place(img, (right - left) * fx, (bottom - top) * fy, "smart")
                step._window = (x, y, x + (right - left) * fx, y + (bottom - top) * fy)
            box = step._window
        else:
            box = (left * fx, top * fy, right * fx, bottom * fy)
    else:
        box = (0.0, 0.0, float(iw), float(ih))
    ctx.regions = rg.window(ctx.regions, box, (w, h))
    ctx.box = step.aimed(sw, sh)
    if (w, h) == (iw, ih) and box == (0.0, 0.0, float(iw), float(ih)):
        return img
    return img.resize((w, h), Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP)
