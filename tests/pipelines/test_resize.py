"""resize: fit / exact / fill geometry, upscale rules, smart gravity, quality, validation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pipelines.errors import InvalidParameter, TooLarge
from pipelines.limits import Limits
from pipelines.ops.resize import ResizeStep
from pipelines.ops.resize import apply as resize
from pipelines.spec import parse_pipeline
from tests.conftest import mean_abs_diff, photo

LIMITS = Limits()
GREY = (128, 128, 128)


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return photo("coffee")  # 600x400


def run(img: Image.Image, limits: Limits = LIMITS, **params: object) -> Image.Image:
    return resize(img, ResizeStep(**params), limits)


# --- fit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"width": 300, "height": 300}, (300, 200)),  # width binds
        ({"width": 600, "height": 100}, (150, 100)),  # height binds
        ({"width": 300}, (300, 200)),
        ({"height": 100}, (150, 100)),
        ({"width": 599}, (599, 399)),
    ],
)
def test_fit_keeps_aspect(
    coffee: Image.Image, params: dict[str, int], size: tuple[int, int]
) -> None:
    assert run(coffee, **params).size == size


def test_fit_never_upscales_by_default(coffee: Image.Image) -> None:
    out = run(coffee, width=1200)
    assert out.size == (600, 400)
    assert mean_abs_diff(out, coffee) == 0


def test_fit_upscales_when_allowed(coffee: Image.Image) -> None:
    assert run(coffee, width=1200, upscale=True).size == (1200, 800)
    assert run(coffee, height=500, upscale=True).size == (750, 500)


def test_fit_tiny_result_is_at_least_one_pixel() -> None:
    assert run(Image.new("RGB", (1000, 2)), width=10).size == (10, 1)


def test_resize_keeps_mode() -> None:
    for mode in ("RGB", "RGBA", "L"):
        assert run(Image.new(mode, (100, 50)), width=40).mode == mode


def test_fit_matches_plain_lanczos() -> None:
    """Our resize is Pillow's LANCZOS (with a reducing gap): visually the same result."""
    src = photo("astronaut")
    ours = run(src, width=200)
    plain = src.resize((200, 200), Image.Resampling.LANCZOS)
    assert ours.size == (200, 200)
    assert mean_abs_diff(ours, plain) < 1.0


def test_big_shrink_close_to_plain_lanczos(coffee: Image.Image) -> None:
    """A shrink past the reducing gap (box reduce first) stays close to a pure LANCZOS."""
    src = coffee.resize((1800, 1200), Image.Resampling.LANCZOS)
    ours = run(src, width=150)
    plain = src.resize((150, 100), Image.Resampling.LANCZOS)
    assert mean_abs_diff(ours, plain) < 2.0


# --- exact -------------------------------------------------------------------------------


def test_exact_gives_exact_size(coffee: Image.Image) -> None:
    assert run(coffee, mode="exact", width=300, height=100).size == (300, 100)
    assert run(coffee, mode="exact", width=50, height=300).size == (50, 300)


def test_exact_without_upscale_shrinks_the_target_box(coffee: Image.Image) -> None:
    """1200x1200 asked of 600x400: the box keeps its 1:1 aspect and fits the source."""
    assert run(coffee, mode="exact", width=1200, height=1200).size == (400, 400)
    # Only one side too large: still scaled to fit.
    assert run(coffee, mode="exact", width=300, height=800).size == (150, 400)


def test_exact_with_upscale_gives_the_target(coffee: Image.Image) -> None:
    assert run(coffee, mode="exact", width=1200, height=1200, upscale=True).size == (1200, 1200)


# --- fill --------------------------------------------------------------------------------


def test_fill_gives_exact_size_and_covers(coffee: Image.Image) -> None:
    """fill = centre window of the target aspect, resampled: no bars, no distortion."""
    out = run(coffee, mode="fill", width=200, height=200)
    assert out.size == (200, 200)
    expected = coffee.crop((100, 0, 500, 400)).resize((200, 200), Image.Resampling.LANCZOS)
    assert mean_abs_diff(out, expected) < 1.5


def test_fill_tall_target_crops_width(coffee: Image.Image) -> None:
    out = run(coffee, mode="fill", width=100, height=200)
    assert out.size == (100, 200)
    expected = coffee.crop((200, 0, 400, 400)).resize((100, 200), Image.Resampling.LANCZOS)
    assert mean_abs_diff(out, expected) < 1.5


def test_fill_without_upscale_keeps_target_aspect(coffee: Image.Image) -> None:
    assert run(coffee, mode="fill", width=1600, height=900).size == (600, 337)


def busy_right_edge() -> Image.Image:
    """Flat grey 400x100 with a 60x60 patch of saturated colour noise near the right edge."""
    img = Image.new("RGB", (400, 100), GREY)
    noise = np.random.default_rng(1).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    img.paste(Image.fromarray(noise), (330, 20))
    return img


def patch_fraction(img: Image.Image) -> float:
    """Share of pixels that are not the flat grey background."""
    arr = np.asarray(img.convert("RGB"), dtype=np.int16)
    return float((np.abs(arr - 128).max(axis=2) > 30).mean())


def test_fill_smart_gravity_finds_the_busy_part() -> None:
    src = busy_right_edge()
    center = run(src, mode="fill", width=100, height=100)
    smart = run(src, mode="fill", width=100, height=100, gravity="smart")
    assert smart.size == center.size == (100, 100)
    assert patch_fraction(center) == 0.0
    assert patch_fraction(smart) > 0.25


def test_fill_smart_on_flat_image_is_central() -> None:
    src = Image.new("RGB", (400, 100), GREY)
    src.paste((255, 0, 0), (150, 0, 250, 100))  # the central window is all red
    smart = run(src, mode="fill", width=100, height=100, gravity="smart")
    arr = np.asarray(smart, dtype=np.float64)
    assert arr[..., 0].mean() > 200


# --- validation and limits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "height"),  # neither dimension
        ({"mode": "fill", "width": 100}, "height"),
        ({"mode": "exact", "height": 100}, "height"),
        ({"width": 0}, "width"),
        ({"width": -5, "height": 10}, "width"),
        ({"width": 20000}, "width"),
        ({"width": 10, "mode": "stretch"}, "mode"),
        ({"width": 10, "gravity": "north"}, "gravity"),
        ({"width": 10, "bogus": 1}, "bogus"),
    ],
)
def test_invalid_parameters(params: dict[str, object], field: str) -> None:
    """Bad parameters fail when the step is built, and as a 422 naming the field via the spec."""
    with pytest.raises(ValidationError):
        ResizeStep(**params)
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "resize", **params}]})
    assert err.value.status == 422
    assert err.value.field == field


def test_result_over_max_side_is_invalid(coffee: Image.Image) -> None:
    with pytest.raises(InvalidParameter) as err:
        run(coffee, Limits(max_side=1000), width=1200, upscale=True)
    assert err.value.status == 422
    assert err.value.field == "width"


def test_tall_result_over_max_side_is_invalid() -> None:
    """The longest side counts, whichever dimension the request named."""
    with pytest.raises(InvalidParameter):
        run(Image.new("RGB", (10, 100)), Limits(max_side=500), width=100, upscale=True)


def test_result_over_max_pixels_is_too_large(coffee: Image.Image) -> None:
    with pytest.raises(TooLarge) as err:
        run(coffee, Limits(max_pixels=10_000), width=300)
    assert err.value.code == "too_many_pixels"


# --- decode hint -------------------------------------------------------------------------


def test_decode_hint_is_the_target_for_fit_and_the_cover_for_fill() -> None:
    assert ResizeStep(width=300).decode_hint(1920, 1280) == (300, 200)
    assert ResizeStep(mode="fill", width=300, height=300).decode_hint(1920, 1280) == (450, 300)
    assert ResizeStep(width=3000).decode_hint(1920, 1280) == (1920, 1280)
