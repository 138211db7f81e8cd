"""The URL API on the live cluster (HAProxy, Serve, the real deployments): an upload and a
key under the source folder by GET URL, the CDN headers, smart through the FaceDetector's
handle, an SSRF refusal, and the source metrics."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import ASTRONAUT_FACE, best_iou, decode, encode, photo
from tests.integration.conftest import Service

pytestmark = pytest.mark.serve


def test_upload_and_source_key_by_url(client: httpx.Client, service: Service) -> None:
    jpeg = encode(photo("coffee"), "JPEG", quality=90)
    upload = client.post("/api/v1/upload", files={"file": ("c.jpg", jpeg, "image/jpeg")})
    image_id = upload.json()["id"]
    by_id = client.get(f"/unsafe/fit-in/300x300/{image_id}")
    assert by_id.status_code == 200, by_id.text
    assert decode(by_id.content).size == (300, 200)
    assert by_id.headers["cache-control"] == "public, max-age=86400"
    again = client.get(
        f"/unsafe/fit-in/300x300/{image_id}", headers={"If-None-Match": by_id.headers["etag"]}
    )
    assert again.status_code == 304
    folder = service.data_dir / "sources" / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "coffee.jpg").write_bytes(jpeg)
    by_key = client.get("/unsafe/200x200/filters:format(webp):quality(70)/shop/coffee.jpg")
    assert by_key.status_code == 200 and by_key.headers["content-type"] == "image/webp"
    assert decode(by_key.content).size == (200, 200)
    missing = client.get("/unsafe/200x200/shop/none.jpg")
    assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"


def test_smart_through_the_face_detector(client: httpx.Client, service: Service) -> None:
    (service.data_dir / "sources").mkdir(parents=True, exist_ok=True)
    (service.data_dir / "sources" / "astronaut.jpg").write_bytes(encode(photo("astronaut")))
    meta = client.get("/unsafe/meta/100x400/smart/astronaut.jpg")
    assert meta.status_code == 200, meta.text
    described = meta.json()["thumbor"]
    crop = next(op for op in described["operations"] if op["type"] == "thumbnail")
    assert crop["width"] == 100
    faces = [p for p in described["focal_points"] if p["label"] == "face"]
    assert faces, described["focal_points"]  # found by the FaceDetector deployment
    assert best_iou(ASTRONAUT_FACE, [{"box": f} for f in faces]) > 0.5
    smart = client.get("/unsafe/100x400/smart/astronaut.jpg")
    assert smart.status_code == 200 and decode(smart.content).size == (100, 400)


def test_ssrf_refusal_is_counted(client: httpx.Client) -> None:
    refused = client.get("/unsafe/100x100/http://127.0.0.1:9/a.jpg")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "source_address"
    deadline = time.monotonic() + 60
    while True:
        text = client.get("/metrics").text
        if 'reason="source_address"' in text and "ray_image_source_fetches" in text:
            break
        assert time.monotonic() < deadline, "the refusal was never counted"
        time.sleep(1)
    assert 'loader="http"' in text and 'outcome="refused"' in text
