"""Image AI over HTTP: objects, faces and text on real photos, JSON or annotated."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import (
    ASTRONAUT_FACE,
    BUS_PEOPLE,
    ZIDANE_PEOPLE,
    best_iou,
    decode,
    encode,
    normalised,
    photo,
    text_image,
    ultralytics_asset,
)
from tests.integration.test_http_api import assert_error, post


@pytest.mark.parametrize(
    ("name", "expected"), [("bus.jpg", BUS_PEOPLE), ("zidane.jpg", ZIDANE_PEOPLE)]
)
def test_detect_objects_finds_the_people(client: httpx.Client, name: str, expected: list) -> None:
    image = ultralytics_asset(name)
    response = post(client, "/detect-objects", encode(image, "JPEG", quality=95))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == image.size
    assert body["model"] == "best.pt"
    found = body["detections"]
    assert len(found) >= len(expected)
    assert {d["label"] for d in found} <= {"Normal", "Fall"}
    for box in expected:
        assert best_iou(box, found) >= 0.5, (box, found)


def test_detect_objects_boxes_are_in_upright_coordinates(client: httpx.Client) -> None:
    from PIL import Image

    upright = ultralytics_asset("zidane.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; the viewer turns it back
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    response = post(client, "/detect-objects", encode(stored, "JPEG", quality=95, exif=exif))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == upright.size
    for box in ZIDANE_PEOPLE:
        assert best_iou(box, body["detections"]) >= 0.5


def test_detect_objects_by_image_id_and_filters(client: httpx.Client) -> None:
    image_id = post(client, "/upload", encode(ultralytics_asset("bus.jpg"))).json()["id"]
    strict = post(client, "/detect-objects", None, image_id=image_id, confidence=0.65)
    assert strict.status_code == 200, strict.text
    assert all(d["confidence"] >= 0.65 for d in strict.json()["detections"])
    one = post(client, "/detect-objects", None, image_id=image_id, max_detections=1, classes="0")
    assert len(one.json()["detections"]) == 1


@pytest.mark.parametrize("engine", ["haar", "mtcnn"])
def test_detect_faces_astronaut(client: httpx.Client, astronaut_jpeg: bytes, engine: str) -> None:
    response = post(client, "/detect-faces", astronaut_jpeg, engine=engine)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["engine"] == engine and (body["width"], body["height"]) == (512, 512)
    assert len(body["faces"]) == 1
    assert best_iou(ASTRONAUT_FACE, body["faces"]) >= 0.6


@pytest.mark.parametrize("engine", ["haar", "mtcnn"])
def test_no_face_is_an_empty_list_not_an_error(client: httpx.Client, engine: str) -> None:
    """Regression: counting zero faces in the metrics once failed the request."""
    response = post(client, "/detect-faces", encode(photo("coffee")), engine=engine)
    assert response.status_code == 200, response.text
    assert response.json()["faces"] == []


@pytest.mark.parametrize("engine", ["tesseract", "easyocr"])
def test_ocr_reads_rendered_text(client: httpx.Client, engine: str) -> None:
    text = "Serve images at scale 42"
    response = post(client, "/ocr", encode(text_image(text), "PNG"), engine=engine)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["engine"] == engine
    assert normalised(body["text"]) == normalised(text)
    assert body["blocks"] and {"text", "confidence", "box"} <= set(body["blocks"][0])


def test_ocr_blank_image_is_empty_text(client: httpx.Client) -> None:
    from PIL import Image

    blank = encode(Image.new("RGB", (300, 100), "white"), "PNG")
    for engine in ("tesseract", "easyocr"):
        body = post(client, "/ocr", blank, engine=engine).json()
        assert body["text"] == "" and body["blocks"] == []


@pytest.mark.parametrize(
    ("path", "fields", "media"),
    [
        ("/detect-objects", {"annotate": True}, "image/jpeg"),
        ("/detect-faces", {"annotate": True, "format": "png"}, "image/png"),
        ("/ocr", {"annotate": True, "format": "png"}, "image/png"),
    ],
)
def test_annotate_returns_the_image(
    client: httpx.Client, astronaut_jpeg: bytes, path: str, fields: dict, media: str
) -> None:
    response = post(client, path, astronaut_jpeg, **fields)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    assert decode(response.content).size == (512, 512)


@pytest.mark.parametrize(
    ("path", "fields", "field"),
    [
        ("/ocr", {"engine": "abbyy"}, "engine"),
        ("/ocr", {"engine": "tesseract", "lang": "klingon"}, "lang"),
        ("/detect-faces", {"engine": "dlib"}, "engine"),
        ("/detect-faces", {"scale_factor": 1.0}, "scale_factor"),
        ("/detect-objects", {"classes": "unicorn"}, "classes"),
        ("/detect-objects", {"image_size": 100}, "image_size"),
        ("/detect-objects", {"confidence": 2}, "confidence"),
    ],
)
def test_ai_bad_parameters_are_422(
    client: httpx.Client, astronaut_jpeg: bytes, path: str, fields: dict, field: str
) -> None:
    assert_error(post(client, path, astronaut_jpeg, **fields), 422, field)


@pytest.mark.parametrize("path", ["/detect-objects", "/detect-faces", "/ocr"])
def test_ai_bad_images_are_4xx(client: httpx.Client, path: str, astronaut_jpeg: bytes) -> None:
    assert assert_error(post(client, path, b""), 400)["code"] == "empty_file"
    assert assert_error(post(client, path, b"hello world, not an image"), 415)
    assert assert_error(post(client, path, astronaut_jpeg[:3000]), 400)["code"] == "corrupt_image"


def test_health_reports_models(client: httpx.Client) -> None:
    models = client.get("/health/").json()["models"]
    assert models["objects"]["ready"] and models["objects"]["model"].endswith("best.pt")
    assert models["ocr"]["engines"]["tesseract"]["ready"]
    assert models["ocr"]["engines"]["easyocr"]["ready"]
    assert models["faces"]["engines"]["mtcnn"]["ready"]
