"""Property-based tests (hypothesis) of the two doors hostile input comes through.

(a) Pipeline specs: any JSON-ish value either parses into a PipelineSpec or fails with
    pydantic's ValidationError (parse_pipeline: our InvalidParameter, 422); nothing else. A
    spec that parses runs on a real image to a decodable image, or fails with a typed
    ServiceError.
(b) Mutated real images (bit flips, cuts, inserted and overwritten bytes, in JPEG, PNG, GIF,
    WebP, TIFF and BMP: tests/fixtures/seeds.py): decoding, a pipeline and image-info give a
    result or a typed ServiceError, never another exception.

Derandomized and without an example database, so CI runs the same examples every time.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from pipelines.analysis import image_info
from pipelines.decode import open_image
from pipelines.errors import InvalidParameter, ServiceError
from pipelines.limits import Limits
from pipelines.pipeline import run_pipeline
from pipelines.spec import MAX_STEPS, PipelineSpec, parse_pipeline
from tests.fixtures.seeds import seed_images

# Small ceilings keep every example fast (an upscale is refused at 250k pixels instead of
# filtering 50M); the properties do not depend on where the limits are.
LIMITS = Limits(max_pixels=250_000, max_side=1024, max_frames=8)

PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


SOURCE = seed_images()["jpeg"]  # a 48x32 photo

# --- (a) pipeline specs ---------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.integers(min_value=-2, max_value=2048),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1, max_value=20),
    st.text(max_size=12),
    st.sampled_from(
        ["16:9", "1:1", "0:1", "3x2", "1e308:1", "center", "smart", "fit", "fill", "exact",
         "jpeg", "JPG", "png", "webp", "tif", "gif", "blur", "median", "emboss", "nan", "-1"]
    ),
)  # fmt: skip
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

# Each operation's fields, to build steps that often parse (and so reach the run).
_FIELDS: dict[str, list[str]] = {
    "resize": ["width", "height", "mode", "gravity", "upscale"],
    "crop": ["x", "y", "width", "height", "aspect", "gravity"],
    "filter": ["name", "radius", "size"],
    "enhance": ["brightness", "contrast", "saturation", "sharpness"],
    "convert": ["format", "quality"],
}
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "width": st.integers(1, 600),
    "height": st.integers(1, 600),
    "x": st.integers(0, 80),
    "y": st.integers(0, 80),
    "mode": st.sampled_from(["fit", "exact", "fill"]),
    "gravity": st.sampled_from(["center", "smart"]),
    "upscale": st.booleans(),
    "aspect": st.sampled_from(["16:9", "1:1", "9:16", "1000:1", "1:1000", "2.35:1"]),
    "name": st.sampled_from(["blur", "sharpen", "edge", "gaussian", "median", "emboss", "contour"]),
    "radius": st.floats(0.1, 100),
    "size": st.sampled_from([3, 5, 7, 15]),
    "brightness": st.floats(0, 10),
    "contrast": st.floats(0, 10),
    "saturation": st.floats(0, 10),
    "sharpness": st.floats(0, 10),
    "format": st.sampled_from(["jpeg", "png", "webp", "bmp", "tiff", "jpg", "TIF"]),
    "quality": st.integers(1, 100),
}


@st.composite
def _step(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(_FIELDS)))
    names = draw(st.lists(st.sampled_from(_FIELDS[op]), unique=True))
    step: dict[str, Any] = {"op": op}
    for name in names:
        # Mostly a plausible value, sometimes anything at all.
        step[name] = draw(st.one_of(_VALUES[name], _VALUES[name], _VALUES[name], _scalars))
    return step


_specs = st.fixed_dictionaries(
    {"steps": st.lists(_step(), max_size=4)},
    optional={
        "format": st.one_of(_VALUES["format"], _scalars),
        "quality": st.one_of(_VALUES["quality"], _scalars),
    },
)


def _parse(raw: Any) -> PipelineSpec | None:
    """PipelineSpec or None when invalid; any other exception fails the property."""
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError:
        with pytest.raises(InvalidParameter) as err:
            parse_pipeline(raw)
        assert err.value.status == 422 and err.value.message
        return None
    assert parse_pipeline(raw) == spec
    return spec


@settings(PROPERTY, max_examples=300)
@given(raw=st.one_of(_json, _specs, st.builds(lambda s: {"steps": s}, _json)))
def test_any_json_parses_or_is_a_validation_error(raw: Any) -> None:
    spec = _parse(raw)
    if spec is not None:
        # A valid spec has a stable canonical form (a cache key ingredient).
        again = PipelineSpec.model_validate_json(spec.canonical_json())
        assert again.canonical_json() == spec.canonical_json()
        assert len(spec.steps) <= MAX_STEPS


@settings(PROPERTY, max_examples=120)
@given(raw=_specs)
def test_valid_specs_run_to_an_image_or_a_typed_error(raw: dict[str, Any]) -> None:
    spec = _parse(raw)
    if spec is None:
        return
    try:
        result = run_pipeline(SOURCE, spec, LIMITS)
    except ServiceError as err:
        assert 400 <= err.status < 600 and err.message
        return
    img = Image.open(io.BytesIO(result.data))
    img.load()
    assert img.size == (result.width, result.height)
    assert result.width * result.height <= LIMITS.max_pixels


# --- (b) mutated real images ----------------------------------------------------------------


SEEDS = seed_images()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "overwrite", "header"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            data = data[:at]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(patch)] = patch
        elif data:
            # The first bytes hold the dimensions, counts and offsets: hit them harder.
            head = draw(st.integers(0, min(63, len(data) - 1)))
            data[head] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
    return bytes(data)


_THUMB = PipelineSpec.model_validate({"steps": [{"op": "resize", "width": 24}], "format": "png"})


@settings(PROPERTY, max_examples=400)
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damage it skips
@given(data=_mutated())
def test_mutated_images_decode_or_fail_typed(data: bytes) -> None:
    for attempt in (
        lambda: open_image(data, LIMITS),
        lambda: run_pipeline(data, _THUMB, LIMITS),
        lambda: image_info(data, LIMITS),
    ):
        try:
            attempt()
        except ServiceError as err:
            assert err.status in (400, 413, 415), (err.status, err.code, err.message)


def test_seeds_are_valid_images() -> None:
    """The mutations start from real, decodable files of every allowed format."""
    for name, data in SEEDS.items():
        decoded = open_image(data, LIMITS)
        assert decoded.image.size in ((48, 32), (32, 48), (16, 12)), name
        assert float(np.asarray(decoded.image).std()) > 10, name  # a photo, not a flat fill
