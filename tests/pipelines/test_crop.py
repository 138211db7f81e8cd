"""crop: boxes (clipped at the edge, refused outside it) and aspect windows placed by gravity."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pipelines.errors import InvalidParameter
from pipelines.limits import Limits
from pipelines.ops.crop import CropStep, parse_aspect
from pipelines.ops.crop import apply as crop
from pipelines.spec import parse_pipeline
from tests.conftest import mean_abs_diff, photo

LIMITS = Limits()
GREY = (128, 128, 128)


def run(img: Image.Image, **params: object) -> Image.Image:
    return crop(img, CropStep(**params), LIMITS)


# --- boxes -------------------------------------------------------------------------------


def test_box_crop_size_and_content() -> None:
    src = photo("astronaut")
    out = run(src, x=10, y=20, width=100, height=50)
    assert out.size == (100, 50)
    assert mean_abs_diff(out, src.crop((10, 20, 110, 70))) == 0


def test_box_of_the_whole_image_is_unchanged() -> None:
    src = photo("chelsea")
    out = run(src, x=0, y=0, width=451, height=300)
    assert out.size == (451, 300)
    assert mean_abs_diff(out, src) == 0


def test_box_past_the_edge_is_clipped() -> None:
    src = photo("astronaut")  # 512x512
    out = run(src, x=500, y=400, width=100, height=300)
    assert out.size == (12, 112)
    assert mean_abs_diff(out, src.crop((500, 400, 512, 512))) == 0


@pytest.mark.parametrize(
    ("x", "y", "field"), [(512, 0, "x"), (600, 600, "x"), (0, 512, "y"), (10, 9999, "y")]
)
def test_box_starting_outside_is_invalid(x: int, y: int, field: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        run(photo("astronaut"), x=x, y=y, width=10, height=10)
    assert err.value.status == 422
    assert err.value.field == field


# --- aspect windows ----------------------------------------------------------------------


def test_aspect_16_9_on_square_is_the_largest_window() -> None:
    out = run(photo("astronaut"), aspect="16:9")
    assert out.size == (512, 288)


def test_aspect_16_9_on_landscape() -> None:
    out = run(photo("coffee"), aspect="16:9")  # 600x400
    assert out.width == 600
    assert abs(out.height - 600 * 9 / 16) <= 1


def test_aspect_4_3_on_portrait_keeps_full_width() -> None:
    src = photo("chelsea").transpose(Image.Transpose.ROTATE_90)  # 300x451
    out = run(src, aspect="4:3")
    assert out.size == (300, 225)
    assert mean_abs_diff(out, src.crop((0, 113, 300, 338))) == 0  # centred


def test_aspect_square_on_landscape_crops_the_centre() -> None:
    src = photo("coffee")
    out = run(src, aspect="1:1")
    assert out.size == (400, 400)
    assert mean_abs_diff(out, src.crop((100, 0, 500, 400))) == 0


@pytest.mark.parametrize(("text", "ratio"), [("16:9", 16 / 9), ("4x3", 4 / 3), (" 1.5 / 1 ", 1.5)])
def test_parse_aspect_forms(text: str, ratio: float) -> None:
    assert parse_aspect(text) == pytest.approx(ratio)


@pytest.mark.parametrize("aspect", ["abc", "16:0", "0:9", "-4:3", "16:", "", "16:9:1", "1e3:1"])
def test_bad_aspect_fails_validation(aspect: str) -> None:
    with pytest.raises(ValidationError):
        CropStep(aspect=aspect)
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "crop", "aspect": aspect}]})
    assert err.value.field == "aspect"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "height"),
        ({"width": 10}, "height"),
        ({"x": -1, "width": 10, "height": 10}, "x"),
        ({"width": 0, "height": 10}, "width"),
        ({"aspect": "1:1", "gravity": "left"}, "gravity"),
    ],
)
def test_bad_box_fails_validation(params: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError):
        CropStep(**params)
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "crop", **params}]})
    assert err.value.field == field


def test_smart_and_center_differ_on_an_off_centre_subject() -> None:
    """Flat grey with a colourful textured subject near the left edge: smart finds it."""
    src = Image.new("RGB", (400, 100), GREY)
    noise = np.random.default_rng(2).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    src.paste(Image.fromarray(noise), (10, 20))
    center = run(src, aspect="1:1")
    smart = run(src, aspect="1:1", gravity="smart")
    assert center.size == smart.size == (100, 100)
    busy = (np.abs(np.asarray(smart, dtype=np.int16) - 128).max(axis=2) > 30).mean()
    assert mean_abs_diff(center, Image.new("RGB", (100, 100), GREY)) == 0
    assert busy > 0.25


@pytest.mark.parametrize(("size", "aspect"), [((100, 100), "1000:1"), ((1, 300), "16:9")])
def test_extreme_aspect_never_yields_an_empty_image(size: tuple[int, int], aspect: str) -> None:
    try:
        out = run(Image.new("RGB", size), aspect=aspect)
    except InvalidParameter:
        return  # refusing it is fine too
    assert out.width >= 1
    assert out.height >= 1
