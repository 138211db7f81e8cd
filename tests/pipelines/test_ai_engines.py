"""The model engines as plain classes, on real photos and rendered text (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.annotate import annotate
from pipelines.detection import DetectParams, YoloEngine, resolve_weights
from pipelines.errors import InvalidParameter
from pipelines.faces import FaceParams, HaarEngine, MtcnnEngine
from pipelines.limits import Limits
from pipelines.ocr import EasyOcrEngine, TesseractEngine
from pipelines.results import Box
from tests.conftest import (
    ASTRONAUT_FACE,
    BUS_PEOPLE,
    FALL_MODEL,
    ZIDANE_PEOPLE,
    best_iou,
    decode,
    encode,
    normalised,
    photo,
    text_image,
    ultralytics_asset,
)


@pytest.fixture(scope="module")
def people() -> YoloEngine:
    return YoloEngine(FALL_MODEL, threads=2)


def dumped(result: object) -> list[dict]:
    return [d.model_dump() for d in result.detections]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "expected"), [("bus.jpg", BUS_PEOPLE), ("zidane.jpg", ZIDANE_PEOPLE)]
)
def test_person_detector_finds_the_people(people: YoloEngine, name: str, expected: list) -> None:
    image = np.asarray(ultralytics_asset(name))
    (result,) = people.predict([image], [DetectParams()])
    assert not isinstance(result, Exception)
    assert (result.width, result.height) == (image.shape[1], image.shape[0])
    assert len(result.detections) >= len(expected)
    for box in expected:
        assert best_iou(box, dumped(result)) >= 0.5, (box, dumped(result))


def test_one_bad_item_fails_alone(people: YoloEngine) -> None:
    bus = np.asarray(ultralytics_asset("bus.jpg"))
    flat = np.zeros((10, 10), dtype=np.uint8)  # not RGB
    results = people.predict(
        [bus, flat, bus], [DetectParams(), DetectParams(), DetectParams(classes=["cat"])]
    )
    assert len(results[0].detections) >= 3  # type: ignore[union-attr]
    assert isinstance(results[1], InvalidParameter)
    assert isinstance(results[2], InvalidParameter) and results[2].field == "classes"


def test_per_request_filters_in_one_batch(people: YoloEngine) -> None:
    bus = np.asarray(ultralytics_asset("bus.jpg"))
    loose, strict, capped = people.predict(
        [bus, bus, bus],
        [
            DetectParams(confidence=0.1),
            DetectParams(confidence=0.65),
            DetectParams(max_detections=1),
        ],
    )
    assert len(loose.detections) > len(strict.detections) >= 1  # type: ignore[union-attr]
    assert all(d.confidence >= 0.65 for d in strict.detections)  # type: ignore[union-attr]
    assert len(capped.detections) == 1  # type: ignore[union-attr]


def test_random_weight_architecture_runs_a_batch() -> None:
    engine = YoloEngine("yolo11n.yaml", threads=2)
    assert len(engine.names) == 80
    images = [np.asarray(photo(n)) for n in ("astronaut", "coffee", "chelsea")]
    results = engine.predict(images, [DetectParams(image_size=320)] * 3)
    assert [(r.width, r.height) for r in results] == [(512, 512), (600, 400), (451, 300)]  # type: ignore[union-attr]


def test_weights_that_cannot_load_raise() -> None:
    with pytest.raises(FileNotFoundError):
        resolve_weights("pkg:no_such_package_here/best.pt")
    with pytest.raises(Exception):  # noqa: B017 - ultralytics' own error for a missing file
        YoloEngine("/nonexistent/weights.pt")


@pytest.mark.parametrize("engine", [HaarEngine, MtcnnEngine])
def test_astronaut_has_exactly_one_face(engine: type) -> None:
    result = engine().detect(np.asarray(photo("astronaut")), FaceParams())
    assert len(result.faces) == 1
    assert best_iou(ASTRONAUT_FACE, [f.model_dump() for f in result.faces]) >= 0.6
    if engine is MtcnnEngine:
        assert result.faces[0].confidence is not None and result.faces[0].confidence > 0.9


@pytest.mark.parametrize("engine", [HaarEngine, MtcnnEngine])
def test_no_face_in_a_cup_of_coffee(engine: type) -> None:
    assert engine().detect(np.asarray(photo("coffee")), FaceParams()).faces == []


@pytest.fixture(scope="module")
def easyocr() -> EasyOcrEngine:
    return EasyOcrEngine()


@pytest.mark.parametrize("text", ["Hello Ray Serve 2026", "Thumbnails FAST and safe"])
def test_ocr_reads_rendered_text(easyocr: EasyOcrEngine, text: str) -> None:
    image = np.asarray(text_image(text))
    for engine in (TesseractEngine(), easyocr):
        result = engine.read(image)
        assert normalised(result.text) == normalised(text), engine.name
        assert result.blocks and all(0 <= b.confidence <= 1 for b in result.blocks)


def test_ocr_of_a_blank_image_is_empty(easyocr: EasyOcrEngine) -> None:
    blank = np.full((120, 400, 3), 255, dtype=np.uint8)
    for engine in (TesseractEngine(), easyocr):
        result = engine.read(blank)
        assert result.text == "" and result.blocks == []


def test_ocr_languages_are_checked(easyocr: EasyOcrEngine) -> None:
    image = np.asarray(text_image("abc"))
    with pytest.raises(InvalidParameter):
        TesseractEngine().read(image, lang="klingon")
    with pytest.raises(InvalidParameter):
        easyocr.read(image, lang="deu")
    assert normalised(TesseractEngine().read(image, lang="en").text) == "abc"


def test_annotate_draws_inside_the_box() -> None:
    source = encode(photo("coffee"), "PNG")
    box = Box(x1=100, y1=100, x2=300, y2=250)
    out = annotate(source, [(box, "cup 0.99")], Limits(), "png")
    drawn = np.asarray(decode(out.data).convert("RGB"), dtype=int)
    original = np.asarray(photo("coffee"), dtype=int)
    assert out.media_type == "image/png" and (out.width, out.height) == (600, 400)
    assert np.abs(drawn[180, 100] - original[180, 100]).sum() > 30  # left edge of the box
    assert np.abs(drawn[380, 500] - original[380, 500]).sum() == 0  # far from it: untouched


@pytest.mark.parametrize("engine", [HaarEngine, MtcnnEngine])
def test_concurrent_calls_keep_their_own_results(engine: type) -> None:
    """Replicas call one engine from several threads at once: each call must see only its own
    image (a shared Haar cascade once handed one image's faces to another)."""
    from concurrent.futures import ThreadPoolExecutor

    detector = engine()
    images = [np.asarray(photo(name).convert("RGB")) for name in ("astronaut", "coffee") * 6]
    alone = [detector.detect(image, FaceParams()) for image in images]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(lambda image: detector.detect(image, FaceParams()), images))
    assert together == alone
    assert [len(r.faces) for r in together] == [1, 0] * 6
