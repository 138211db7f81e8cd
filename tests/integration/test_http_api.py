"""The HTTP API through Serve's proxy: every operation on real photos, and every bad input."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from tests.conftest import decode, encode, mean_abs_diff, photo
from tests.integration.conftest import Service

API = "/api/v1"


def post(client: httpx.Client, path: str, data: bytes | None, **fields: object) -> httpx.Response:
    files = {"file": ("image.bin", data, "application/octet-stream")} if data is not None else None
    form = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
    return client.post(f"{API}{path}", files=files, data=form)


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["message"]
    if field is not None:
        assert error["field"] == field, error
    return error


def huge_png_header(width: int, height: int) -> bytes:
    """A few dozen bytes whose header claims width x height pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- operations -----------------------------------------------------------------------------


def test_resize_fit_keeps_aspect(client: httpx.Client, large_jpeg: bytes) -> None:
    response = post(client, "/resize", large_jpeg, width=300, height=300)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    img = decode(response.content)
    assert img.size == (300, 200)
    assert response.headers["x-image-width"] == "300"
    reference = photo("coffee").resize((300, 200), Image.Resampling.LANCZOS)
    assert mean_abs_diff(img, reference) < 8


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({"width": 100, "height": 50, "mode": "exact"}, (100, 50)),
        ({"width": 200, "height": 200, "mode": "fill", "gravity": "smart"}, (200, 200)),
        ({"height": 100}, (150, 100)),
        ({"width": 1200}, (600, 400)),  # never upscaled unless asked
        ({"width": 1200, "upscale": True}, (1200, 800)),
    ],
)
def test_resize_modes(client: httpx.Client, fields: dict, size: tuple[int, int]) -> None:
    response = post(client, "/resize", encode(photo("coffee"), "PNG"), **fields)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"  # the source's format by default
    assert decode(response.content).size == size


def test_crop_box_and_aspect(client: httpx.Client, astronaut_jpeg: bytes) -> None:
    box = post(client, "/crop", astronaut_jpeg, x=100, y=50, width=200, height=120, format="png")
    assert box.status_code == 200, box.text
    expected = decode(astronaut_jpeg).crop((100, 50, 300, 170))
    assert mean_abs_diff(decode(box.content), expected) < 1
    aspect = post(client, "/crop", astronaut_jpeg, aspect="16:9", gravity="smart")
    assert aspect.status_code == 200, aspect.text
    assert decode(aspect.content).size == (512, 288)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "blur", "radius": 3},
        {"name": "gaussian", "radius": 2.5},
        {"name": "median", "size": 5},
        {"name": "sharpen"},
        {"name": "edge"},
        {"name": "emboss"},
        {"name": "contour"},
    ],
)
def test_every_filter(client: httpx.Client, astronaut_jpeg: bytes, fields: dict) -> None:
    response = post(client, "/filter", astronaut_jpeg, format="png", **fields)
    assert response.status_code == 200, response.text
    result = decode(response.content)
    assert result.size == (512, 512)
    assert mean_abs_diff(result, decode(astronaut_jpeg)) > 0.5  # it did something


def test_enhance_saturation_zero_is_grey(client: httpx.Client, astronaut_jpeg: bytes) -> None:
    response = post(client, "/enhance", astronaut_jpeg, saturation=0, format="png")
    assert response.status_code == 200, response.text
    r, g, b = decode(response.content).convert("RGB").split()
    assert mean_abs_diff(r, g) < 1 and mean_abs_diff(g, b) < 1


@pytest.mark.parametrize(
    ("fmt", "media", "pil"),
    [
        ("jpeg", "image/jpeg", "JPEG"),
        ("png", "image/png", "PNG"),
        ("webp", "image/webp", "WEBP"),
        ("bmp", "image/bmp", "BMP"),
        ("tiff", "image/tiff", "TIFF"),
    ],
)
def test_convert_every_format(
    client: httpx.Client, astronaut_jpeg: bytes, fmt: str, media: str, pil: str
) -> None:
    response = post(client, "/convert", astronaut_jpeg, format=fmt, quality=80)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    img = decode(response.content)
    assert img.format == pil and img.size == (512, 512)


def test_convert_applies_exif_orientation(client: httpx.Client) -> None:
    # Stored sideways with Orientation=6 (rotate 90 CW to view): the result must be upright.
    upright = photo("coffee")  # 600x400
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 400x600 as the camera wrote it
    exif = Image.Exif()
    exif[0x0112] = 6
    response = post(client, "/convert", encode(stored, "JPEG", exif=exif, quality=95), format="png")
    assert response.status_code == 200, response.text
    result = decode(response.content)
    assert result.size == (600, 400)
    assert mean_abs_diff(result, upright) < 6


def test_process_json_pipeline_on_upload(client: httpx.Client, service: Service) -> None:
    upload = post(client, "/upload", encode(photo("chelsea"), "PNG"))
    assert upload.status_code == 201, upload.text
    image_id = upload.json()["id"]
    pipeline = {
        "image_id": image_id,
        "steps": [
            {"op": "resize", "width": 200, "height": 200, "mode": "fill"},
            {"op": "filter", "name": "sharpen"},
            {"op": "enhance", "contrast": 1.2},
        ],
        "format": "webp",
        "quality": 70,
    }
    response = client.post(f"{API}/process", json=pipeline)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    assert decode(response.content).size == (200, 200)


def test_process_multipart_with_store(client: httpx.Client, service: Service) -> None:
    pipeline = {"steps": [{"op": "crop", "aspect": "1:1"}, {"op": "resize", "width": 64}]}
    before = service.rows()
    response = client.post(
        f"{API}/process",
        files={"file": ("cat.jpg", encode(photo("chelsea")), "image/jpeg")},
        data={"pipeline": json.dumps(pipeline), "store": "true"},
    )
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["kind"] == "result" and (stored["width"], stored["height"]) == (64, 64)
    assert json.loads(json.dumps(stored))["url"] == response.headers["location"]
    assert service.rows() == before + 1
    download = client.get(stored["url"])
    assert download.status_code == 200
    assert decode(download.content).size == (64, 64)


def test_upload_download_etag_and_meta(client: httpx.Client, astronaut_jpeg: bytes) -> None:
    upload = post(client, "/upload", astronaut_jpeg)
    assert upload.status_code == 201, upload.text
    body = upload.json()
    assert body["format"] == "jpeg" and (body["width"], body["height"]) == (512, 512)
    assert body["size"] == {"width": 512, "height": 512}
    assert body["bytes"] == len(astronaut_jpeg)
    import hashlib

    assert body["sha256"] == hashlib.sha256(astronaut_jpeg).hexdigest()
    download = client.get(f"{API}/images/{body['id']}")
    assert download.status_code == 200 and download.content == astronaut_jpeg
    assert download.headers["content-type"] == "image/jpeg"
    etag = download.headers["etag"]
    again = client.get(f"{API}/images/{body['id']}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    meta = client.get(f"{API}/images/{body['id']}/meta")
    assert meta.status_code == 200 and meta.json()["sha256"] == body["sha256"]


def test_operations_accept_image_id(client: httpx.Client, astronaut_jpeg: bytes) -> None:
    image_id = post(client, "/upload", astronaut_jpeg).json()["id"]
    response = post(client, "/resize", None, image_id=image_id, width=128, store=True)
    assert response.status_code == 201, response.text
    assert response.json()["source_id"] == image_id
    assert response.json()["width"] == 128


def test_image_info_by_id_and_by_file(client: httpx.Client, astronaut_jpeg: bytes) -> None:
    image_id = post(client, "/upload", astronaut_jpeg).json()["id"]
    by_id = client.get(f"{API}/image-info", params={"image_id": image_id})
    by_file = post(client, "/image-info", astronaut_jpeg)
    assert by_id.status_code == 200 and by_file.status_code == 200, by_file.text
    info = by_id.json()
    assert info == by_file.json()
    assert (info["format"], info["width"], info["height"]) == ("jpeg", 512, 512)
    analysis = info["analysis"]
    assert set(analysis) == {"colors", "tone", "texture", "composition"}
    assert len(analysis["colors"]["dominant"]) >= 3
    assert analysis["composition"]["aspect"]["nearest"] == "1:1"


def test_health_and_docs(client: httpx.Client) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["storage"]["ok"]
    names = ("Ingress", "Preprocessor", "YoloDetector", "OcrReader", "FaceDetector", "TaskRunner")
    deployments = checks["deployments"]["deployments"]
    assert set(deployments) == set(names)
    assert all(d["status"] == "HEALTHY" and d["running"] >= 1 for d in deployments.values())
    assert client.get("/api/v1/health/live").status_code == 200
    assert client.get("/health/").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("resize", "crop", "filter", "enhance", "convert", "process", "upload"):
        assert f"{API}/{path}" in spec["paths"]
    assert "ProcessRequest" in spec["components"]["schemas"]


def test_concurrent_requests_each_get_their_own_result(client: httpx.Client) -> None:
    source = encode(photo("coffee"))
    widths = [40 + 10 * i for i in range(12)]

    def one(width: int) -> tuple[int, int]:
        response = post(client, "/resize", source, width=width)
        assert response.status_code == 200, response.text
        return decode(response.content).size

    with ThreadPoolExecutor(max_workers=6) as pool:
        sizes = list(pool.map(one, widths))
    assert [w for w, _ in sizes] == widths


# --- bad input: a clear 4xx in one JSON shape, nothing stored, the service keeps serving -------


def test_upload_over_limit_refused_before_reading(client: httpx.Client, service: Service) -> None:
    before = service.stored()
    big = b"\xff\xd8\xff" + b"\x00" * (9 * 1024 * 1024)
    error = assert_error(post(client, "/upload", big), 413, "file")
    assert error["code"] == "upload_too_large"

    def stream() -> Iterator[bytes]:  # chunked: no Content-Length to judge by
        yield (
            b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        for _ in range(64):
            yield b"x" * (256 * 1024)

    response = client.post(
        f"{API}/upload",
        content=stream(),
        headers={"content-type": "multipart/form-data; boundary=zzz"},
    )
    assert_error(response, 413, "file")
    assert service.stored() == before


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"", 400, "empty_file"),
        (bytes(range(256)) * 8, 400, "unreadable_image"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n", 415, "not_an_image"),
        (b"just some text, not an image\n" * 10, 415, "not_an_image"),
    ],
)
def test_not_images(
    client: httpx.Client, service: Service, payload: bytes, status: int, code: str
) -> None:
    before = service.stored()
    for path in ("/upload", "/resize"):
        error = assert_error(post(client, path, payload, width=10), status)
        assert error["code"] == code
    assert service.stored() == before


def test_disallowed_format_is_415(client: httpx.Client) -> None:
    ico = encode(photo("astronaut").resize((32, 32)), "ICO")
    assert assert_error(post(client, "/resize", ico, width=8), 415)["code"] == "unsupported_format"


def test_truncated_images_are_400(client: httpx.Client, astronaut_jpeg: bytes) -> None:
    png = encode(photo("coffee"), "PNG")
    for data in (astronaut_jpeg[: len(astronaut_jpeg) // 2], png[: len(png) // 2]):
        assert assert_error(post(client, "/upload", data), 400)["code"] == "corrupt_image"


def test_pixel_bomb_header_is_refused_and_replica_keeps_serving(
    client: httpx.Client, service: Service, astronaut_jpeg: bytes
) -> None:
    before = service.rows()
    error = assert_error(post(client, "/upload", huge_png_header(100_000, 100_000)), 413)
    assert error["code"] == "too_many_pixels"
    error = assert_error(post(client, "/resize", huge_png_header(100_000, 100_000), width=5), 413)
    assert service.rows() == before
    assert post(client, "/resize", astronaut_jpeg, width=32).status_code == 200


@pytest.mark.parametrize(
    ("path", "fields", "field"),
    [
        ("/resize", {"width": 0}, "width"),
        ("/resize", {}, "height"),
        ("/resize", {"width": 10, "mode": "stretch"}, "mode"),
        ("/resize", {"width": 10, "mode": "fill"}, "height"),
        ("/resize", {"width": "ten"}, "width"),
        ("/resize", {"width": 10, "gravity": "left"}, "gravity"),
        ("/crop", {"aspect": "wide"}, "aspect"),
        ("/crop", {"x": 5}, "height"),
        ("/crop", {"x": 9999, "y": 0, "width": 10, "height": 10}, "x"),
        ("/filter", {"name": "sepia"}, "name"),
        ("/filter", {"name": "median", "size": 4}, "size"),
        ("/filter", {"name": "blur", "radius": -1}, "radius"),
        ("/enhance", {"brightness": 99}, "brightness"),
        ("/convert", {"format": "gif"}, "format"),
        ("/convert", {}, "format"),
        ("/convert", {"format": "jpeg", "quality": 101}, "quality"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    client: httpx.Client, astronaut_jpeg: bytes, path: str, fields: dict, field: str
) -> None:
    assert_error(post(client, path, astronaut_jpeg, **fields), 422, field)


def test_image_source_errors(client: httpx.Client, astronaut_jpeg: bytes) -> None:
    assert_error(post(client, "/resize", None, width=10), 422, "file")
    assert_error(post(client, "/resize", astronaut_jpeg, image_id="abc", width=10), 422, "image_id")
    assert_error(post(client, "/resize", None, image_id="0" * 32, width=10), 404, "image_id")
    assert_error(client.get(f"{API}/images/{'0' * 32}"), 404)
    assert_error(client.get(f"{API}/image-info", params={"image_id": "missing"}), 404)


def test_bad_process_bodies(client: httpx.Client, astronaut_jpeg: bytes) -> None:
    assert_error(
        client.post(
            f"{API}/process", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "body",
    )
    assert_error(client.post(f"{API}/process", json={"steps": []}), 422, "image_id")
    bad_step = {"image_id": "x", "steps": [{"op": "explode"}]}
    assert_error(client.post(f"{API}/process", json=bad_step), 422, "steps")
    too_many = {"image_id": "x", "steps": [{"op": "filter", "name": "blur"}] * 21}
    assert_error(client.post(f"{API}/process", json=too_many), 422, "steps")
    files = {"file": ("a.jpg", astronaut_jpeg, "image/jpeg")}
    assert_error(client.post(f"{API}/process", files=files), 422, "pipeline")
    assert_error(
        client.post(f"{API}/process", files=files, data={"pipeline": "[1, 2"}), 422, "pipeline"
    )
    assert_error(client.post(f"{API}/process", content=b"x"), 415, "body")


def test_unknown_route_and_method_share_the_error_shape(client: httpx.Client) -> None:
    assert assert_error(client.get(f"{API}/nope"), 404)["code"] == "not_found"
    assert assert_error(client.get(f"{API}/resize"), 405)["code"] == "method_not_allowed"
