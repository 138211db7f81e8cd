"""thumbnail: thumbor's geometry with thumbor's arithmetic (sizes checked against what thumbor
7.8 answers for the same URL in tests/serve_app/test_thumbor_compat.py), crop placement by
alignment, regions and energy, shrink-on-load, and the box a later fill pads to."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import InvalidParameter
from pipelines.limits import Limits
from pipelines.ops.registry import StepContext
from pipelines.ops.thumbnail import ThumbnailStep, apply
from pipelines.pipeline import run_pipeline
from pipelines.regions import Region
from pipelines.spec import parse_pipeline
from tests.conftest import decode, encode, photo

LIMITS = Limits()


def size(src: tuple[int, int], **fields: object) -> tuple[int, int]:
    return ThumbnailStep.model_validate(fields).output_size(*src)


@pytest.mark.parametrize(
    ("src", "fields", "expected"),
    [
        # fill: crop to the box's aspect, then resize; upscales by default
        ((1920, 1440), {"width": 300, "height": 300}, (300, 300)),
        ((600, 400), {"width": 900, "height": 900}, (900, 900)),
        ((600, 400), {"width": 900, "height": 900, "upscale": False}, (600, 400)),
        ((600, 400), {"width": 300}, (300, 200)),
        ((600, 400), {"height": 100}, (150, 100)),
        ((600, 400), {"width": "orig", "height": 100}, (600, 100)),
        ((1000, 333), {"width": 300}, (300, 100)),  # round(99.9)
        # fit-in: never larger than the image unless upscale
        ((1920, 1440), {"width": 300, "height": 300, "mode": "fit_in"}, (300, 225)),
        ((1440, 1920), {"width": 300, "height": 300, "mode": "fit_in"}, (225, 300)),
        ((600, 400), {"width": 900, "height": 900, "mode": "fit_in"}, (600, 400)),
        ((600, 400), {"width": 900, "height": 900, "mode": "fit_in", "upscale": True}, (900, 600)),
        ((1000, 335), {"width": 300, "height": 300, "mode": "fit_in"}, (300, 101)),  # .5 up
        ((600, 400), {"width": 300, "mode": "fit_in"}, (300, 200)),
        # full-fit-in covers the box (and may grow the image)
        ((1920, 1440), {"width": 300, "height": 300, "mode": "full_fit_in"}, (400, 300)),
        ((600, 400), {"width": 900, "height": 900, "mode": "full_fit_in"}, (1350, 900)),
        # adaptive turns the box with the picture
        (
            (1440, 1920),
            {"width": 400, "height": 300, "mode": "fit_in", "adaptive": True},
            (300, 400),
        ),
        ((1440, 1920), {"width": 400, "height": 300, "mode": "fit_in"}, (225, 300)),
        # stretch ignores the aspect
        ((600, 400), {"width": 100, "height": 100, "mode": "stretch"}, (100, 100)),
    ],
)
def test_sizes_follow_thumbor(
    src: tuple[int, int], fields: dict[str, object], expected: tuple[int, int]
) -> None:
    assert size(src, **fields) == expected


@pytest.mark.parametrize("bad", [0, -5, 20000, "half"])
def test_sides_out_of_range_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="width"):
        ThumbnailStep.model_validate({"width": bad})


def _stripes() -> Image.Image:
    """600x200: red on the left third, green in the middle, blue on the right."""
    img = Image.new("RGB", (600, 200), "green")
    img.paste((255, 0, 0), (0, 0, 200, 200))
    img.paste((0, 0, 255), (400, 0, 600, 200))
    return img


def _thumb(img: Image.Image, ctx: StepContext | None = None, **fields: object) -> Image.Image:
    return apply(img, ThumbnailStep.model_validate(fields), LIMITS, ctx or StepContext())


@pytest.mark.parametrize(
    ("halign", "colour"), [("left", (255, 0, 0)), ("center", (0, 128, 0)), ("right", (0, 0, 255))]
)
def test_fill_crop_is_placed_by_alignment(halign: str, colour: tuple[int, int, int]) -> None:
    out = _thumb(_stripes(), width=100, height=100, halign=halign)
    assert out.size == (100, 100)
    assert np.abs(np.asarray(out, dtype=int)[50, 50] - colour).max() < 8


def test_fill_crop_centres_on_the_regions() -> None:
    """A focal box on the blue third wins over the centre alignment."""
    ctx = StepContext(regions=(Region(x1=450, y1=50, x2=550, y2=150),))
    out = _thumb(_stripes(), ctx, width=100, height=100)
    assert np.abs(np.asarray(out, dtype=int)[50, 50] - (0, 0, 255)).max() < 8
    (moved,) = ctx.regions
    assert (moved.x1, moved.x2) == pytest.approx((25, 75), abs=1)  # still where it is seen


def test_heavier_regions_pull_harder() -> None:
    big = Region(x1=0, y1=0, x2=200, y2=200)  # the red third, large
    small = Region(x1=550, y1=90, x2=560, y2=100)
    ctx = StepContext(regions=(big, small))
    out = _thumb(_stripes(), ctx, width=200, height=200)
    assert np.asarray(out, dtype=int)[100, 20][0] > 200  # red side


def test_smart_without_regions_aims_at_the_busy_part() -> None:
    img = Image.new("RGB", (600, 200), (128, 128, 128))
    rng = np.random.default_rng(3)
    busy = rng.integers(0, 255, (200, 150, 3), dtype=np.uint8)
    img.paste(Image.fromarray(busy), (430, 0))
    out = _thumb(img, width=200, height=200, smart=True)
    assert np.asarray(out, dtype=float).std() > 30  # not the flat middle
    plain = _thumb(img, width=200, height=200)
    assert np.asarray(plain, dtype=float).std() < 5


def test_no_crop_when_aspects_agree_to_two_decimals() -> None:
    step = ThumbnailStep(width=300, height=200)
    assert step.crop_size(601, 400) is None
    assert step.crop_size(700, 400) == (600, 400)


def test_shrink_on_load_gives_the_same_size_and_picture(large_jpeg: bytes) -> None:
    spec = parse_pipeline({"steps": [{"op": "thumbnail", "width": 300, "height": 250}]})
    fast = run_pipeline(large_jpeg, spec, LIMITS)
    assert (fast.width, fast.height) == (300, 250)
    full = photo("coffee").resize((1920, 1280), Image.Resampling.LANCZOS)
    reference = _thumb(full, width=300, height=250)
    diff = np.abs(np.asarray(decode(fast.data), dtype=float) - np.asarray(reference, dtype=float))
    assert diff.mean() < 6


def test_aimed_box_is_thumbors_request_size() -> None:
    fit = ThumbnailStep(width=300, height=300, mode="fit_in")
    assert fit.aimed(1920, 1440) == (300, 300)  # shrunk: max(box, result)
    assert fit.aimed(200, 100) == (300, 300)  # left alone: the box as asked
    assert ThumbnailStep(width=300, mode="fit_in").aimed(1920, 1440) == (300, 225)
    assert ThumbnailStep(width=300, height=300, mode="full_fit_in").aimed(1920, 1440) == (400, 300)
    assert ThumbnailStep(width=900, height=900, upscale=False).aimed(600, 400) == (600, 400)
    turned = ThumbnailStep(width=400, height=300, mode="fit_in", adaptive=True)
    assert turned.aimed(1440, 1920) == (300, 400)


def test_result_over_the_side_limit_is_refused() -> None:
    step = ThumbnailStep(width=900, height=900, mode="stretch")
    with pytest.raises(InvalidParameter, match="longest side"):
        apply(Image.new("RGB", (10, 10)), step, Limits(max_side=800), StepContext())


def test_cost_counts_input_and_output() -> None:
    step = ThumbnailStep(width=300, height=300, mode="fit_in")
    cost = step.cost(1920, 1440)
    assert (cost.width, cost.height) == (300, 225)
    assert cost.work == pytest.approx(2.5 * 1920 * 1440 / 1e6 + 4 * 300 * 225 / 1e6)


@pytest.mark.parametrize("mode", ["fill", "fit_in"])
def test_cost_factor_matches_a_measurement(mode: str) -> None:
    """A work unit is a megapixel through a cheap per-pixel pass (a table lookup): the
    thumbnail's price, in those, should be its measured time. Loose bounds (within 3x): the
    factor is an estimate, and the machine is shared."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1440, 1920, 3), np.uint8))
    step = ThumbnailStep(width=300, height=300, mode=mode)  # type: ignore[arg-type]
    lut = list(range(256)) * 3

    def timed(fn: object, repeat: int = 5) -> float:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            fn()  # type: ignore[operator]
            best = min(best, time.perf_counter() - started)
        return best

    per_unit = timed(lambda: img.point(lut)) / (1920 * 1440 / 1e6)
    measured = timed(lambda: _thumb(img, width=300, height=300, mode=mode)) / per_unit
    assert step.cost(1920, 1440).work / 3 < measured < step.cost(1920, 1440).work * 3


def test_jpeg_input_round_trip_keeps_format(astronaut_jpeg: bytes) -> None:
    spec = parse_pipeline({"steps": [{"op": "thumbnail", "width": 64, "mode": "fit_in"}]})
    result = run_pipeline(astronaut_jpeg, spec, LIMITS)
    assert (result.format, result.width, result.height) == ("jpeg", 64, 64)
    assert decode(result.data).size == (64, 64)
    assert encode(photo("astronaut"))  # the fixture photo is a real one
