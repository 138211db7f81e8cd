"""Models fed at the size they need (issue #18): a bounded working image, boxes mapped back to
the source's pixels, the same answers as at a modest size."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from pipelines.admission import decode_for_model
from pipelines.faces import FaceParams, HaarEngine
from pipelines.limits import Limits
from pipelines.ocr import OCR_SIDE, TesseractEngine
from pipelines.sizing import FACES_MAX_SIDE, ModelImage, fit_side, tiles, working
from tests.conftest import ASTRONAUT_FACE, encode, normalised, photo, text_image


def test_fit_side_shrinks_never_enlarges() -> None:
    assert fit_side(6000, 4500, 1600) == (1600, 1200)
    assert fit_side(4500, 6000, 1600) == (1200, 1600)
    assert fit_side(800, 600, 1600) == (800, 600)


def test_boxes_map_back_to_source_pixels() -> None:
    image = ModelImage(np.zeros((1200, 1600, 3), np.uint8), 6000, 4500)
    box = image.to_source(100, 120, 400, 300)
    assert (box.x1, box.y1, box.x2, box.y2) == (375.0, 450.0, 1500.0, 1125.0)
    clipped = image.to_source(1500, 1100, 1700, 1300)
    assert (clipped.x2, clipped.y2) == (6000.0, 4500.0)


def test_working_keeps_the_source_it_stands_for() -> None:
    big = np.zeros((4500, 6000, 3), np.uint8)
    small = working(big, 1600)
    assert (small.width, small.height, small.source_width, small.source_height) == (
        1600, 1200, 6000, 4500
    )  # fmt: skip
    assert working(small, 800).source_width == 6000


def test_tiles_cover_the_image_once_by_their_cores() -> None:
    cells = tiles(4000, 3000, 2000, 64)
    assert len(cells) == 4
    covered = np.zeros((3000, 4000), np.int32)
    for tile in cells:
        x1, y1, x2, y2 = tile.core
        covered[y1:y2, x1:x2] += 1
        assert tile.w <= 2000 + 2 * 64 and tile.h <= 2000 + 2 * 64
    assert covered.min() == covered.max() == 1


@pytest.fixture(scope="module")
def astronaut_27mp() -> bytes:
    return encode(photo("astronaut").resize((6000, 6000), Image.Resampling.LANCZOS), "JPEG")


def test_faces_on_a_huge_photo_cost_what_a_small_one_does_and_agree(
    astronaut_27mp: bytes,
) -> None:
    """36 MP decoded straight to the working size; the face found there, mapped back, is where
    the face found on the 512 px original is, scaled."""
    haar = HaarEngine()
    params = FaceParams()
    pixels = decode_for_model(astronaut_27mp, params, Limits())
    assert max(pixels.width, pixels.height) == FACES_MAX_SIDE
    assert (pixels.source_width, pixels.source_height) == (6000, 6000)
    started = time.thread_time()  # CPU: the machine may be shared
    big = haar.detect(pixels, params)
    took = time.thread_time() - started
    small = haar.detect(np.asarray(photo("astronaut")), params)
    assert (big.width, big.height) == (6000, 6000)
    scale = 6000 / 512
    expected = [f.box for f in small.faces]
    assert expected, "the 512 px astronaut has a face"
    x1, y1, x2, y2 = ASTRONAUT_FACE
    from pipelines.results import Box

    target = Box(x1=x1 * scale, y1=y1 * scale, x2=x2 * scale, y2=y2 * scale)
    assert max(target.iou(f.box) for f in big.faces) >= 0.6
    assert took < 5.0  # a 2.6 MP look (~1 s), not 36 MP (~15 s)


def test_ocr_on_a_huge_page_reads_at_its_overview_and_maps_back() -> None:
    page = np.asarray(text_image("Bounded work, any size", (900, 140), 56))
    huge = np.asarray(Image.fromarray(page).resize((5400, 840), Image.Resampling.LANCZOS))
    engine = TesseractEngine()
    result = engine.read(ModelImage.of(huge), "eng")
    assert "bounded work, any size" in normalised(result.text)
    assert (result.width, result.height) == (5400, 840)
    assert max(b.box.x2 for b in result.blocks) > OCR_SIDE["tesseract"]  # source pixels


def test_small_text_gets_a_detail_pass_in_tiles_when_allowed() -> None:
    """Text that is small at the overview is read again at twice its resolution."""
    canvas = Image.new("RGB", (4400, 1800), "white")
    line = text_image("Small print matters here", (700, 60), 26)
    for row in range(6):
        canvas.paste(line, (200 + (row % 2) * 2000, 150 + row * 260))
    engine = TesseractEngine()
    source = ModelImage.of(np.asarray(canvas))
    overview_only = engine.read(source, "eng", detail=False)
    detailed = engine.read(source, "eng", detail=True)
    want = "small print matters here"
    assert normalised(detailed.text).count(want) >= normalised(overview_only.text).count(want)
    assert normalised(detailed.text).count(want) >= 5
