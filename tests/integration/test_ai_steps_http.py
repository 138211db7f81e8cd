"""AI steps on the live cluster (HAProxy, Serve, the real FaceDetector, OcrReader and
YoloDetector deployments): redaction and detection-aware crops through /api/v1/process and GET
URLs, checked by the service's own detectors."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import (
    ASTRONAUT_FACE,
    BUS_PEOPLE,
    best_iou,
    decode,
    encode,
    photo,
    text_image,
    ultralytics_asset,
)
from tests.integration.conftest import Service
from tests.integration.test_http_api import post

pytestmark = pytest.mark.serve


def faces(client: httpx.Client, data: bytes) -> list[dict]:
    found = post(client, "/detect-faces", data)
    assert found.status_code == 200, found.text
    return list(found.json()["faces"])


def test_process_redacts_the_face_it_found(client: httpx.Client) -> None:
    astronaut = encode(photo("astronaut"), "JPEG", quality=92)
    assert best_iou(ASTRONAUT_FACE, faces(client, astronaut)) > 0.5
    pipeline = {"steps": [{"op": "redact", "target": "faces"}], "format": "png"}
    response = client.post(
        "/api/v1/process",
        files={"file": ("a.jpg", astronaut, "image/jpeg")},
        data={"pipeline": json.dumps(pipeline)},
    )
    assert response.status_code == 200, response.text
    assert decode(response.content).size == (512, 512)
    assert best_iou(ASTRONAUT_FACE, faces(client, response.content)) < 0.1


def test_url_redacts_people_and_text_and_aims_at_faces(
    client: httpx.Client, service: Service
) -> None:
    folder = service.data_dir / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bus.jpg").write_bytes(encode(ultralytics_asset("bus.jpg"), "JPEG", quality=95))
    (folder / "note.png").write_bytes(encode(text_image("Secret Launch Codes"), "PNG"))
    (folder / "astronaut.jpg").write_bytes(encode(photo("astronaut"), "JPEG", quality=92))
    people = client.get("/unsafe/filters:redact(objects,fill):format(png)/bus.jpg")
    assert people.status_code == 200, people.text
    found = post(client, "/detect-objects", people.content).json()["detections"]
    assert all(best_iou(box, found) < 0.5 for box in BUS_PEOPLE), found
    text = client.get("/unsafe/filters:redact(text,pixelate)/note.png")
    assert text.status_code == 200, text.text
    read = post(client, "/ocr", text.content).json()
    assert not {"secret", "launch", "codes"} & set(read["text"].lower().split())
    aimed = client.get("/unsafe/100x400/smart/filters:redact(faces):format(png)/astronaut.jpg")
    assert aimed.status_code == 200 and decode(aimed.content).size == (100, 400)
    assert aimed.headers["cache-control"].startswith("public")
