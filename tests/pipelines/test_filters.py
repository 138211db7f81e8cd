"""filter: every named filter on every working mode, and what each one does to the pixels."""

from __future__ import annotations

import typing

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pipelines.errors import InvalidParameter
from pipelines.limits import Limits
from pipelines.ops.filters import FilterName, FilterStep
from pipelines.ops.filters import apply as apply_filter
from pipelines.spec import parse_pipeline
from tests.conftest import mean_abs_diff, photo

LIMITS = Limits()
NAMES = typing.get_args(FilterName)


def run(img: Image.Image, name: str, **params: object) -> Image.Image:
    return apply_filter(img, FilterStep(name=name, **params), LIMITS)


@pytest.fixture(scope="module")
def camera() -> Image.Image:
    """A 256x256 greyscale photo: big enough to measure texture, small enough to be quick."""
    return photo("camera").resize((256, 256), Image.Resampling.LANCZOS)


def laplacian_variance(img: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian over the interior: a standard sharpness measure."""
    a = np.asarray(img.convert("L"), dtype=np.float64)
    lap = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float(lap[2:-2, 2:-2].var())


def test_every_filter_is_offered() -> None:
    assert set(NAMES) == {"blur", "sharpen", "edge", "gaussian", "median", "emboss", "contour"}


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("name", NAMES)
def test_every_filter_runs_on_every_mode(name: str, mode: str) -> None:
    src = photo("astronaut").resize((64, 64)).convert(mode)
    out = run(src, name)
    assert out.mode == mode
    assert out.size == src.size
    assert mean_abs_diff(out, src) > 0.5  # it did something


@pytest.mark.parametrize(
    "name",
    [
        "blur",
        "sharpen",
        "gaussian",
        "median",
        "contour",
        "edge",
        "emboss",
    ],
)
def test_filters_keep_an_opaque_image_opaque(name: str) -> None:
    src = photo("astronaut").resize((64, 64)).convert("RGBA")
    alpha = np.asarray(run(src, name).getchannel("A"))
    assert int(alpha.min()) == 255


@pytest.mark.parametrize("name", ["blur", "gaussian"])
def test_blurs_reduce_laplacian_variance(camera: Image.Image, name: str) -> None:
    before = laplacian_variance(camera)
    assert laplacian_variance(run(camera, name)) < before / 4


def test_larger_radius_blurs_more(camera: Image.Image) -> None:
    small = laplacian_variance(run(camera, "gaussian", radius=1))
    large = laplacian_variance(run(camera, "gaussian", radius=4))
    assert large < small


def test_sharpen_increases_laplacian_variance(camera: Image.Image) -> None:
    assert laplacian_variance(run(camera, "sharpen")) > 1.2 * laplacian_variance(camera)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_edge_on_flat_image_is_zero_inside(mode: str) -> None:
    flat = Image.new(mode, (40, 30), 128 if mode == "L" else (128, 90, 200))
    out = np.asarray(run(flat, "edge"))
    assert int(out[1:-1, 1:-1].max()) == 0


def test_edge_on_flat_image_is_zero_everywhere() -> None:
    out = np.asarray(run(Image.new("L", (40, 30), 128), "edge"))
    assert float(out.mean()) < 1.0


def test_edge_finds_a_step() -> None:
    img = Image.new("L", (40, 40), 0)
    img.paste(255, (20, 0, 40, 40))
    out = np.asarray(run(img, "edge"))
    assert out[5:35, 20].min() > 100  # along the step
    assert out[5:35, 5:15].max() == 0  # away from it


def test_median_removes_salt_and_pepper(camera: Image.Image) -> None:
    clean = camera.crop((64, 64, 192, 192))
    arr = np.asarray(clean).copy()
    rng = np.random.default_rng(3)
    hits = rng.random(arr.shape)
    arr[hits < 0.05] = 0
    arr[hits > 0.95] = 255
    noisy = Image.fromarray(arr)
    before = mean_abs_diff(noisy, clean)
    after = mean_abs_diff(run(noisy, "median", size=3), clean)
    assert after < before / 2
    # and it beats a box blur of the same reach, which smears the outliers instead
    assert after < mean_abs_diff(run(noisy, "blur", radius=1), clean)


@pytest.mark.parametrize("size", [2, 4, 14])
def test_even_median_size_is_invalid(size: int) -> None:
    with pytest.raises(ValidationError):
        FilterStep(name="median", size=size)
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "filter", "name": "median", "size": size}]})
    assert err.value.field == "size"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": "glow"}, "name"),
        ({"name": "blur", "radius": 0}, "radius"),
        ({"name": "blur", "radius": 500}, "radius"),
        ({"name": "median", "size": 1}, "size"),
        ({"name": "median", "size": 17}, "size"),
    ],
)
def test_out_of_range_parameters_are_invalid(params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "filter", **params}]})
    assert err.value.field == field
