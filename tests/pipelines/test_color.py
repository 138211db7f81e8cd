"""Colour steps in thumbor's units: the same arithmetic as thumbor's C filters (checked on
single pixel values), alpha untouched, grey images handled."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.limits import Limits
from pipelines.ops import color
from pipelines.ops.color import (
    BrightnessStep,
    ContrastStep,
    EqualizeStep,
    GrayscaleStep,
    RgbStep,
    SaturationStep,
)
from tests.conftest import photo

LIMITS = Limits()


def px(value: tuple[int, ...], mode: str = "RGB") -> Image.Image:
    return Image.new(mode, (2, 2), value)


def thumbor_brightness(v: int, amount: int) -> int:
    delta = int(255 * amount / 100)  # C: int division truncates towards zero
    return max(0, min(255, v + delta))


def thumbor_contrast(v: int, amount: int) -> int:
    factor = ((amount + 100) * (amount + 100)) // 100
    return max(0, min(255, int(factor * (v - 128) / 100) + 128))


@pytest.mark.parametrize("amount", [-100, -37, -1, 0, 20, 63, 100])
@pytest.mark.parametrize("value", [0, 10, 128, 200, 255])
def test_brightness_and_contrast_match_thumbors_arithmetic(amount: int, value: int) -> None:
    img = px((value, value, value))
    bright = color.brightness(img, BrightnessStep(amount=amount), LIMITS).getpixel((0, 0))
    contrast = color.contrast(img, ContrastStep(amount=amount), LIMITS).getpixel((0, 0))
    assert bright == (thumbor_brightness(value, amount),) * 3
    assert contrast == (thumbor_contrast(value, amount),) * 3


def test_rgb_moves_each_channel() -> None:
    out = color.rgb(px((100, 100, 100)), RgbStep(red=20, green=-10, blue=0), LIMITS)
    assert out.getpixel((0, 0)) == (151, 75, 100)
    grey = color.rgb(px((100,), "L"), RgbStep(red=20), LIMITS)
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (151, 100, 100)


def test_saturation() -> None:
    img = px((200, 100, 50))
    grey = color.saturation(img, SaturationStep(factor=0), LIMITS).getpixel((0, 0))
    assert max(grey) - min(grey) <= 1  # all channels at the perceived brightness
    vivid = color.saturation(img, SaturationStep(factor=2), LIMITS).getpixel((0, 0))
    assert vivid[0] - vivid[2] > 150 - 5
    assert color.saturation(img, SaturationStep(factor=1), LIMITS).getpixel((0, 0)) == (
        200,
        100,
        50,
    )


def test_grayscale_and_equalize_keep_alpha() -> None:
    img = photo("chelsea").convert("RGBA")
    img.putalpha(Image.new("L", img.size, 77))
    grey = color.grayscale(img, GrayscaleStep(), LIMITS)
    r, g, b, a = grey.getpixel((40, 40))
    assert r == g == b and a == 77
    flat = Image.fromarray(np.full((20, 20, 3), (100, 110, 120), np.uint8)).convert("RGBA")
    flat.putalpha(Image.new("L", flat.size, 9))
    assert color.equalize(flat, EqualizeStep(), LIMITS).getchannel("A").getextrema() == (9, 9)
    assert color.grayscale(photo("chelsea"), GrayscaleStep(), LIMITS).mode == "L"


def test_equalize_spreads_the_histogram() -> None:
    narrow = Image.fromarray(np.tile(np.arange(100, 140, dtype=np.uint8), (40, 1)))
    out = np.asarray(color.equalize(narrow, EqualizeStep(), LIMITS))
    assert out.min() < 20 and out.max() > 235


@pytest.mark.parametrize("bad", [{"amount": 101}, {"amount": -101}])
def test_out_of_range_amounts_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="amount"):
        BrightnessStep.model_validate(bad)
