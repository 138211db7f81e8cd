"""fill, background and round_corner: canvases, colours, transparency, and the box a
thumbnail leaves for fill to pad to."""

from __future__ import annotations

import pytest
from PIL import Image

from pipelines.limits import Limits
from pipelines.ops.canvas import (
    BackgroundStep,
    FillStep,
    RoundCornerStep,
    background,
    fill,
    parse_colour,
    round_corner,
)
from pipelines.ops.registry import StepContext
from pipelines.pipeline import run_pipeline
from pipelines.regions import Region
from pipelines.spec import parse_pipeline
from tests.conftest import decode, encode, photo

LIMITS = Limits()


@pytest.mark.parametrize(
    ("text", "rgba"),
    [
        ("red", (255, 0, 0, 255)),
        ("00ff00", (0, 255, 0, 255)),
        ("#0000FF", (0, 0, 255, 255)),
        ("transparent", (0, 0, 0, 0)),
        ("fff", (255, 255, 255, 255)),
    ],
)
def test_colours(text: str, rgba: tuple[int, int, int, int]) -> None:
    assert parse_colour(text) == rgba


def test_unknown_colour_is_refused() -> None:
    with pytest.raises(ValueError):
        FillStep(color="notacolour")


def test_fill_pads_to_the_thumbnails_box(large_jpeg: bytes) -> None:
    """fit-in/300x300 + fill(red): 300x300 with the picture centred, red bands above and
    below (thumbor's fill pads to the requested box)."""
    spec = parse_pipeline(
        {
            "steps": [
                {"op": "thumbnail", "width": 300, "height": 300, "mode": "fit_in"},
                {"op": "fill", "color": "red"},
            ],
            "format": "png",
        }
    )
    out = decode(run_pipeline(large_jpeg, spec, LIMITS).data).convert("RGB")
    assert out.size == (300, 300)
    assert out.getpixel((150, 5)) == (255, 0, 0) and out.getpixel((150, 295)) == (255, 0, 0)
    assert out.getpixel((150, 150)) != (255, 0, 0)


def test_fill_explicit_box_and_regions_move() -> None:
    ctx = StepContext(regions=(Region(x1=0, y1=0, x2=10, y2=10),))
    out = fill(
        Image.new("RGB", (100, 50), "blue"),
        FillStep(color="white", width=200, height=100),
        LIMITS,
        ctx,
    )
    assert out.size == (200, 100) and out.mode == "RGB"
    assert out.getpixel((10, 10)) == (255, 255, 255) and out.getpixel((100, 50)) == (0, 0, 255)
    assert (ctx.regions[0].x1, ctx.regions[0].y1) == (50, 25)


def test_fill_transparent_keeps_alpha_and_fill_transparent_paints_it() -> None:
    img = Image.new("RGBA", (40, 40), (0, 0, 255, 0))
    kept = fill(img, FillStep(color="red", width=60, height=60), LIMITS, StepContext())
    painted = fill(
        img,
        FillStep(color="red", width=60, height=60, fill_transparent=True),
        LIMITS,
        StepContext(),
    )
    assert kept.mode == "RGBA" and kept.getpixel((30, 30))[3] == 0
    assert painted.mode == "RGB" and painted.getpixel((30, 30)) == (255, 0, 0)
    clear = fill(
        Image.new("RGB", (10, 10)), FillStep(color="transparent", width=20), LIMITS, StepContext()
    )
    assert clear.mode == "RGBA" and clear.getpixel((0, 0))[3] == 0


def test_fill_auto_and_blur() -> None:
    img = Image.new("RGB", (40, 40), (10, 200, 30))
    auto = fill(img, FillStep(color="auto", width=80, height=40), LIMITS, StepContext())
    assert auto.getpixel((2, 20)) == (10, 200, 30)
    blurred = fill(
        photo("chelsea"), FillStep(color="blur", width=600, height=600), LIMITS, StepContext()
    )
    assert blurred.size == (600, 600) and blurred.getpixel((300, 10)) != (0, 0, 0)


def test_background_shows_through_transparency_only() -> None:
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 5, 10))
    out = background(img, BackgroundStep(color="red"), LIMITS)
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == (0, 0, 255) and out.getpixel((8, 1)) == (255, 0, 0)
    opaque = photo("chelsea")
    assert background(opaque, BackgroundStep(color="red"), LIMITS) is opaque


def test_round_corners() -> None:
    img = Image.new("RGB", (100, 60), "blue")
    painted = round_corner(img, RoundCornerStep(radius=20, color="#ff0000"), LIMITS)
    assert painted.getpixel((0, 0)) == (255, 0, 0) and painted.getpixel((50, 30)) == (0, 0, 255)
    assert painted.getpixel((99, 59)) == (255, 0, 0) and painted.getpixel((20, 0)) == (0, 0, 255)
    clear = round_corner(img, RoundCornerStep(radius=20, radius_y=10, transparent=True), LIMITS)
    assert (
        clear.mode == "RGBA"
        and clear.getpixel((0, 0))[3] == 0
        and clear.getpixel((50, 0))[3] == 255
    )


def test_jpeg_output_of_a_transparent_fill_is_flattened(astronaut_jpeg: bytes) -> None:
    spec = parse_pipeline(
        {"steps": [{"op": "fill", "color": "transparent", "width": 600, "height": 600}]}
    )
    result = run_pipeline(astronaut_jpeg, spec, LIMITS)
    assert (result.format, result.width) == ("jpeg", 600)
    assert decode(result.data).getpixel((2, 2)) >= (250, 250, 250)
    assert encode(photo("chelsea"))
