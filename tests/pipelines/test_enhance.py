"""enhance: each factor's neutral value, its extremes, and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pipelines.errors import InvalidParameter
from pipelines.limits import Limits
from pipelines.ops.enhance import EnhanceStep
from pipelines.ops.enhance import apply as enhance
from pipelines.spec import parse_pipeline
from tests.conftest import mean_abs_diff, photo

LIMITS = Limits()


@pytest.fixture(scope="module")
def src() -> Image.Image:
    return photo("chelsea")


def run(img: Image.Image, **factors: float) -> Image.Image:
    return enhance(img, EnhanceStep(**factors), LIMITS)


def test_neutral_factors_leave_the_image_identical(src: Image.Image) -> None:
    out = run(src, brightness=1.0, contrast=1.0, saturation=1.0, sharpness=1.0)
    assert mean_abs_diff(out, src) == 0


def test_brightness_zero_is_black(src: Image.Image) -> None:
    assert np.asarray(run(src, brightness=0.0)).max() == 0


def test_brightness_two_is_brighter(src: Image.Image) -> None:
    before = np.asarray(src, dtype=np.float64).mean()
    after = np.asarray(run(src, brightness=2.0), dtype=np.float64).mean()
    assert after > before * 1.5


def test_saturation_zero_is_grey(src: Image.Image) -> None:
    arr = np.asarray(run(src, saturation=0.0), dtype=np.int16)
    assert np.abs(arr[..., 0] - arr[..., 1]).max() <= 1
    assert np.abs(arr[..., 1] - arr[..., 2]).max() <= 1


def test_contrast_zero_is_uniform(src: Image.Image) -> None:
    arr = np.asarray(run(src, contrast=0.0), dtype=np.int16)
    assert int(arr.max()) - int(arr.min()) <= 1


def test_higher_contrast_spreads_values(src: Image.Image) -> None:
    before = np.asarray(src.convert("L"), dtype=np.float64).std()
    after = np.asarray(run(src, contrast=1.8).convert("L"), dtype=np.float64).std()
    assert after > before * 1.3


def test_sharpness_changes_the_image(src: Image.Image) -> None:
    assert mean_abs_diff(run(src, sharpness=3.0), src) > 1.0


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_enhance_keeps_mode_size_and_alpha(mode: str) -> None:
    img = photo("astronaut").resize((64, 64)).convert(mode)
    out = run(img, brightness=0.5, contrast=1.5, saturation=0.5, sharpness=2.0)
    assert out.mode == mode
    assert out.size == (64, 64)
    if mode == "RGBA":
        assert int(np.asarray(out.getchannel("A")).min()) == 255


@pytest.mark.parametrize(
    "params",
    [{"brightness": -0.1}, {"contrast": 10.5}, {"saturation": "lots"}, {"hue": 1.0}],
)
def test_out_of_range_factors_are_invalid(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EnhanceStep(**params)
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "enhance", **params}]})
    assert err.value.field == next(iter(params))
