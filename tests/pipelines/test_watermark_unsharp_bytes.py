"""watermark (positions, fade, ratio, tiling, a missing image), unsharp, max_bytes and
animated sources through a pipeline."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import InvalidParameter
from pipelines.limits import Limits
from pipelines.ops import unsharp, watermark
from pipelines.ops.registry import StepContext
from pipelines.ops.unsharp import UnsharpStep
from pipelines.ops.watermark import WatermarkStep
from pipelines.pipeline import run_pipeline
from pipelines.spec import parse_pipeline
from tests.conftest import encode, photo

LIMITS = Limits()
MARK = Image.new("RGBA", (20, 10), (255, 0, 0, 255))


def mark(step: WatermarkStep, size: tuple[int, int] = (200, 100)) -> Image.Image:
    return watermark.apply(
        Image.new("RGB", size, "white"), step, LIMITS, StepContext(assets={"m": MARK})
    )


@pytest.mark.parametrize(
    ("x", "y", "red_at"),
    [
        ("0", "0", (5, 5)),
        ("-0", "-0", (195, 95)),
        ("-10", "10", (175, 15)),
        ("center", "center", (100, 50)),
        ("50p", "0", (105, 5)),
    ],
)
def test_positions(x: str, y: str, red_at: tuple[int, int]) -> None:
    out = mark(WatermarkStep(image="m", x=x, y=y))
    assert out.getpixel(red_at) == (255, 0, 0)
    assert out.mode == "RGB"


def test_alpha_fades_and_ratio_scales() -> None:
    faded = mark(WatermarkStep(image="m", alpha=50))
    assert faded.getpixel((5, 5)) == pytest.approx((255, 128, 128), abs=2)
    assert mark(WatermarkStep(image="m", alpha=100)).getpixel((5, 5)) == (255, 255, 255)
    big = mark(WatermarkStep(image="m", w_ratio=50))  # 100 px wide on a 200 px image
    assert big.getpixel((95, 45)) == (255, 0, 0) and big.getpixel((105, 5)) == (255, 255, 255)


def test_repeat_tiles() -> None:
    out = np.asarray(mark(WatermarkStep(image="m", x="repeat", y="repeat")))
    assert (out[:, :, 1] == 0).mean() > 0.5


def test_positions_are_validated_and_the_image_must_be_given() -> None:
    with pytest.raises(ValueError):
        WatermarkStep(image="m", x="left")
    with pytest.raises(InvalidParameter, match="watermark"):
        watermark.apply(Image.new("RGB", (10, 10)), WatermarkStep(image="m"), LIMITS, StepContext())


def test_watermark_through_a_pipeline_with_assets(astronaut_jpeg: bytes) -> None:
    spec = parse_pipeline(
        {"steps": [{"op": "watermark", "image": "logo", "x": "-0", "y": "-0"}], "format": "png"}
    )
    result = run_pipeline(astronaut_jpeg, spec.with_assets({"logo": encode(MARK, "PNG")}), LIMITS)
    out = Image.open(io.BytesIO(result.data)).convert("RGB")
    assert out.getpixel((505, 505)) == (255, 0, 0)


def test_unsharp_adds_detail_and_luminance_only_keeps_colour() -> None:
    img = photo("chelsea")
    sharp = unsharp.apply(img, UnsharpStep(amount=2, radius=2), LIMITS)
    edges = lambda i: np.abs(np.diff(np.asarray(i.convert("L"), dtype=float), axis=1)).mean()  # noqa: E731
    assert edges(sharp) > edges(img) * 1.2
    luma = unsharp.apply(img, UnsharpStep(amount=2, radius=2, luminance_only=True), LIMITS)
    _, cb, cr = luma.convert("YCbCr").split()
    _, cb0, cr0 = img.convert("YCbCr").split()
    for after, before in ((cb, cb0), (cr, cr0)):
        assert np.abs(np.asarray(after, int) - np.asarray(before, int)).mean() < 1.5
    assert unsharp.apply(img, UnsharpStep(amount=0), LIMITS) is img


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_max_bytes_lowers_quality_until_it_fits(large_jpeg: bytes, fmt: str) -> None:
    base = {"steps": [{"op": "resize", "width": 600}], "format": fmt, "quality": 95}
    plain = run_pipeline(large_jpeg, parse_pipeline(base), LIMITS)
    limit = len(plain.data) // 3
    capped = parse_pipeline(
        {**base, "steps": [*base["steps"], {"op": "max_bytes", "bytes": limit}]}
    )
    result = run_pipeline(large_jpeg, capped, LIMITS)
    assert len(result.data) <= limit < len(plain.data)
    png = parse_pipeline({**base, "format": "png", "steps": [{"op": "max_bytes", "bytes": 10}]})
    assert len(run_pipeline(large_jpeg, png, LIMITS).data) > 10  # not lossy: left as it is


def _gif(frames: int) -> bytes:
    images = [Image.new("RGB", (60, 40), (40 * i, 0, 0)) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=70, loop=0)


def test_animation_frames_kept_or_first() -> None:
    steps = [{"op": "thumbnail", "width": 30, "height": 20}]
    kept = run_pipeline(_gif(4), parse_pipeline({"steps": steps, "frames": "all"}), LIMITS)
    out = Image.open(io.BytesIO(kept.data))
    assert (kept.format, out.n_frames, out.size) == ("gif", 4, (30, 20))
    assert out.info["duration"] == 70
    webp = run_pipeline(
        _gif(4), parse_pipeline({"steps": steps, "frames": "all", "format": "webp"}), LIMITS
    )
    assert Image.open(io.BytesIO(webp.data)).n_frames == 4
    first = run_pipeline(_gif(4), parse_pipeline({"steps": steps}), LIMITS)
    assert Image.open(io.BytesIO(first.data)).n_frames == 1
    still = run_pipeline(
        _gif(4), parse_pipeline({"steps": steps, "frames": "all", "format": "png"}), LIMITS
    )
    assert Image.open(io.BytesIO(still.data)).format == "PNG"


def test_animation_frames_count_toward_the_pixel_limit() -> None:
    from pipelines.errors import TooLarge

    with pytest.raises(TooLarge, match="frames together"):
        run_pipeline(_gif(4), parse_pipeline({"frames": "all"}), Limits(max_pixels=60 * 40 * 3))


def test_animated_webp_source_frames() -> None:
    frames = [Image.new("RGB", (40, 30), (0, 60 * i, 0)) for i in range(3)]
    webp = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=90, lossless=True
    )
    steps = [{"op": "flip", "horizontal": True}]
    kept = run_pipeline(webp, parse_pipeline({"steps": steps, "frames": "all"}), LIMITS)
    out = Image.open(io.BytesIO(kept.data))
    assert (kept.format, out.n_frames) == ("webp", 3)
    first = run_pipeline(webp, parse_pipeline({"steps": steps}), LIMITS)
    assert Image.open(io.BytesIO(first.data)).n_frames == 1
