"""run_pipeline: steps in order, output format, deadline, shrink-on-load, ProcessedImage."""

from __future__ import annotations

import pickle
import time
import typing

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import BadImage, DeadlineExceeded, InvalidParameter, TooLarge
from pipelines.limits import Limits
from pipelines.ops import OPERATIONS
from pipelines.pipeline import run_pipeline
from pipelines.spec import ImageStep, parse_pipeline
from tests.conftest import decode, encode, mean_abs_diff, photo

LIMITS = Limits()


def test_every_step_kind_is_registered() -> None:
    """Each kind in the Step union has an operation, and no operation lacks a step kind."""
    kinds = {model.model_fields["op"].default for model in typing.get_args(ImageStep)}
    assert set(OPERATIONS) == kinds
    assert {"resize", "crop", "filter", "enhance", "convert", "thumbnail"} <= kinds


def test_multi_step_pipeline(astronaut_jpeg: bytes) -> None:
    spec = parse_pipeline(
        {
            "steps": [
                {"op": "resize", "width": 200},
                {"op": "filter", "name": "sharpen"},
                {"op": "enhance", "contrast": 1.2, "saturation": 1.1},
                {"op": "convert", "format": "webp", "quality": 70},
            ]
        }
    )
    result = run_pipeline(astronaut_jpeg, spec, LIMITS)
    assert (result.format, result.media_type) == ("webp", "image/webp")
    assert (result.width, result.height) == (200, 200)
    out = decode(result.data)
    assert out.format == "WEBP"
    assert out.size == (200, 200)
    plain = photo("astronaut").resize((200, 200), Image.Resampling.LANCZOS)
    assert mean_abs_diff(out, plain) < 20  # still the same picture


def test_steps_run_in_order(astronaut_jpeg: bytes) -> None:
    """crop then resize is not resize then crop."""
    crop_first = parse_pipeline(
        {
            "steps": [
                {"op": "crop", "x": 0, "y": 0, "width": 256, "height": 256},
                {"op": "resize", "width": 128},
            ]
        }
    )
    resize_first = parse_pipeline(
        {
            "steps": [
                {"op": "resize", "width": 128},
                {"op": "crop", "x": 0, "y": 0, "width": 256, "height": 256},
            ]
        }
    )
    a = run_pipeline(astronaut_jpeg, crop_first, LIMITS)
    b = run_pipeline(astronaut_jpeg, resize_first, LIMITS)
    assert (a.width, a.height) == (128, 128)
    assert (b.width, b.height) == (128, 128)
    assert mean_abs_diff(decode(a.data), decode(b.data)) > 10


def test_processed_image_carries_the_source(large_jpeg: bytes) -> None:
    result = run_pipeline(
        large_jpeg, parse_pipeline({"steps": [{"op": "resize", "width": 300}]}), LIMITS
    )
    assert (result.source_format, result.source_width, result.source_height) == ("jpeg", 1920, 1280)
    assert (result.format, result.media_type) == ("jpeg", "image/jpeg")
    assert (result.width, result.height) == (300, 200)
    assert decode(result.data).size == (300, 200)
    assert result.elapsed_ms >= 0


def test_empty_pipeline_reencodes_in_the_source_format() -> None:
    data = encode(photo("chelsea"), "PNG")
    result = run_pipeline(data, parse_pipeline({}), LIMITS)
    assert (result.format, result.width, result.height) == ("png", 451, 300)
    assert mean_abs_diff(decode(result.data), photo("chelsea")) == 0


def test_gif_source_stays_gif() -> None:
    """GIF is an output format too (issue #16): a GIF source keeps its format, as thumbor's."""
    data = encode(photo("chelsea").resize((90, 60)), "GIF")
    result = run_pipeline(data, parse_pipeline({}), LIMITS)
    assert result.source_format == "gif"
    assert (result.format, result.media_type) == ("gif", "image/gif")
    assert decode(result.data).format == "GIF"


def test_transparent_png_to_jpeg_is_flattened_on_white() -> None:
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    spec = parse_pipeline({"format": "jpg", "quality": 95})
    result = run_pipeline(encode(img, "PNG"), spec, LIMITS)
    assert result.format == "jpeg"
    assert np.asarray(decode(result.data)).min() >= 250


def test_exif_rotated_source_is_processed_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = photo("coffee").transpose(Image.Transpose.ROTATE_90)  # 400x600 stored
    data = encode(stored, "JPEG", quality=90, exif=exif.tobytes())
    result = run_pipeline(data, parse_pipeline({"steps": [{"op": "resize", "width": 300}]}), LIMITS)
    assert (result.source_width, result.source_height) == (600, 400)
    assert (result.width, result.height) == (300, 200)
    plain = photo("coffee").resize((300, 200), Image.Resampling.LANCZOS)
    assert mean_abs_diff(decode(result.data), plain) < 6


def test_deadline_in_the_past_is_exceeded(astronaut_jpeg: bytes) -> None:
    spec = parse_pipeline({"steps": [{"op": "resize", "width": 100}]})
    with pytest.raises(DeadlineExceeded) as err:
        run_pipeline(astronaut_jpeg, spec, LIMITS, deadline=time.monotonic() - 1)
    assert err.value.status == 504
    assert err.value.code == "deadline_exceeded"


def test_deadline_in_the_future_is_fine(astronaut_jpeg: bytes) -> None:
    spec = parse_pipeline({"steps": [{"op": "resize", "width": 100}]})
    result = run_pipeline(astronaut_jpeg, spec, LIMITS, deadline=time.monotonic() + 60)
    assert result.width == 100


def test_shrink_on_load_matches_full_decode(large_jpeg: bytes) -> None:
    """Resize first enables the JPEG draft decode; a no-op enhance first disables it."""
    for resize in (
        {"op": "resize", "width": 300},
        {"op": "resize", "mode": "fill", "width": 200, "height": 200},
    ):
        fast = run_pipeline(large_jpeg, parse_pipeline({"steps": [resize]}), LIMITS)
        full = run_pipeline(
            large_jpeg, parse_pipeline({"steps": [{"op": "enhance"}, resize]}), LIMITS
        )
        assert (fast.width, fast.height) == (full.width, full.height)
        assert mean_abs_diff(decode(fast.data), decode(full.data)) < 3.0


def test_shrink_on_load_does_not_change_the_result_size() -> None:
    src = photo("coffee").resize((301, 200))
    steps = [{"op": "resize", "width": 150}]
    from_png = run_pipeline(encode(src, "PNG"), parse_pipeline({"steps": steps}), LIMITS)
    assert (from_png.width, from_png.height) == (150, 100)  # round(200 * 150 / 301)
    from_jpeg = run_pipeline(encode(src, quality=90), parse_pipeline({"steps": steps}), LIMITS)
    assert (from_jpeg.width, from_jpeg.height) == (150, 100)


def test_decode_errors_propagate() -> None:
    with pytest.raises(BadImage):
        run_pipeline(b"\x00\x01\x02garbage" * 10, parse_pipeline({}), LIMITS)


def test_result_limits_apply(astronaut_jpeg: bytes) -> None:
    spec = parse_pipeline({"steps": [{"op": "resize", "width": 4000, "upscale": True}]})
    with pytest.raises(InvalidParameter):
        run_pipeline(astronaut_jpeg, spec, Limits(max_side=2000))
    with pytest.raises(TooLarge):
        run_pipeline(astronaut_jpeg, spec, Limits(max_pixels=1_000_000))


def test_errors_survive_pickling() -> None:
    """Errors cross Ray process boundaries with their code and field intact."""
    err = TooLarge("too big", code="too_many_frames", field="file")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is TooLarge
    assert (again.status, again.code, again.field, again.message) == (
        413,
        "too_many_frames",
        "file",
        "too big",
    )
    assert again.to_dict() == {"code": "too_many_frames", "message": "too big", "field": "file"}
