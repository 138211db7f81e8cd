"""trim, rotate, flip and scale, with the regions of interest following the pixels."""

from __future__ import annotations

import pytest
from PIL import Image

from pipelines import regions as rg
from pipelines.limits import Limits
from pipelines.ops import orientation, scale, trim
from pipelines.ops.orientation import FlipStep, RotateStep
from pipelines.ops.registry import StepContext
from pipelines.ops.scale import ScaleStep
from pipelines.ops.trim import TrimStep, bounding_box
from pipelines.regions import Region

LIMITS = Limits()
BOX = Region(x1=10, y1=20, x2=30, y2=60, label="face")


def framed(border: str = "white") -> Image.Image:
    img = Image.new("RGB", (200, 100), border)
    img.paste((20, 40, 200), (50, 30, 120, 80))
    return img


def test_trim_cuts_the_uniform_border() -> None:
    ctx = StepContext(regions=(Region(x1=60, y1=40, x2=70, y2=50),))
    out = trim.apply(framed(), TrimStep(), LIMITS, ctx)
    assert out.size == (70, 50)
    assert (ctx.regions[0].x1, ctx.regions[0].y1) == (10, 10)


def test_trim_tolerance_and_reference_corner() -> None:
    img = framed()
    img.putpixel((199, 99), (0, 0, 0))  # a bottom-right speck of another colour
    assert bounding_box(img, TrimStep()) == (50, 30, 200, 100)
    assert bounding_box(img, TrimStep(reference="bottom-right")) == (0, 0, 200, 100)
    faint = Image.new("RGB", (50, 50), (255, 255, 255))
    faint.paste((250, 250, 250), (10, 10, 20, 20))
    assert bounding_box(faint, TrimStep(tolerance=10)) is None
    assert trim.apply(faint, TrimStep(tolerance=10), LIMITS, StepContext()).size == (50, 50)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotate_turns_counter_clockwise_with_regions(degrees: int) -> None:
    img = Image.new("RGB", (100, 50), "black")
    img.paste((255, 0, 0), (10, 20, 30, 60))
    ctx = StepContext(regions=(BOX,))
    out = orientation.rotate(img, RotateStep(degrees=degrees), LIMITS, ctx)  # type: ignore[arg-type]
    assert out.size == ((50, 100) if degrees != 180 else (100, 50))
    (moved,) = ctx.regions
    centre = (int((moved.x1 + moved.x2) / 2), int((moved.y1 + moved.y2) / 2))
    assert out.getpixel(centre) == (255, 0, 0)


def test_flip_mirrors_pixels_and_regions() -> None:
    img = Image.new("RGB", (100, 80), "black")
    img.paste((255, 0, 0), (10, 20, 30, 60))
    ctx = StepContext(regions=(BOX,))
    out = orientation.flip(img, FlipStep(horizontal=True, vertical=True), LIMITS, ctx)
    (moved,) = ctx.regions
    assert (moved.x1, moved.y1, moved.x2, moved.y2) == (70, 20, 90, 60)
    assert out.getpixel((80, 40)) == (255, 0, 0)
    with pytest.raises(ValueError):
        FlipStep()


def test_scale_truncates_and_refuses_below_a_pixel() -> None:
    ctx = StepContext(regions=(BOX,))
    out = scale.apply(Image.new("RGB", (101, 51)), ScaleStep(factor=0.5), LIMITS, ctx)
    assert out.size == (50, 25)
    assert ctx.regions[0].x1 == pytest.approx(10 * 50 / 101)
    tiny = Image.new("RGB", (3, 3))
    assert scale.apply(tiny, ScaleStep(factor=0.1), LIMITS, StepContext()) is tiny


def test_regions_drop_what_leaves_the_picture() -> None:
    regions = (BOX, Region(x1=150, y1=0, x2=160, y2=10))
    assert rg.crop(regions, (0, 0, 100, 100)) == (BOX,)
    assert rg.centre_of_mass(
        [Region(x1=0, y1=0, x2=10, y2=10), Region(x1=90, y1=0, x2=100, y2=10, weight=300)]
    ) == (
        pytest.approx((5 * 100 + 95 * 300) / 400),
        pytest.approx(5),
    )
    with pytest.raises(ValueError):
        Region(x1=5, y1=5, x2=5, y2=10)
