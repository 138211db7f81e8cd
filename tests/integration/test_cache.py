"""The result cache through HTTP: a repeat is answered from storage with the same bytes and
its ETag, a revalidation is 304 without work, and a different pipeline is a different entry.
`make test` runs this file on SQLite + local files and again on PostgreSQL + S3 (moto)."""

from __future__ import annotations

import json
import time

import httpx

from tests.conftest import decode, encode, photo


def _thumbnail(
    client: httpx.Client, data: bytes, width: int = 120, **headers: str
) -> httpx.Response:
    return client.post(
        "/api/v1/resize",
        files={"file": ("p.jpg", data, "image/jpeg")},
        data={"width": str(width)},
        headers=headers,
    )


def test_a_repeat_is_served_from_the_cache(client: httpx.Client, service: object) -> None:
    data = encode(photo("chelsea").rotate(7), "JPEG", quality=91)  # bytes no other test sends
    first = _thumbnail(client, data)
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    etag = first.headers["etag"]
    # The entry is written after the first answer went out: a repeat soon after is a hit.
    deadline = time.monotonic() + 15
    while (repeat := _thumbnail(client, data)).headers["x-cache"] != "hit":
        assert time.monotonic() < deadline, "the result never reached the cache"
        time.sleep(0.1)
    assert repeat.content == first.content
    assert repeat.headers["etag"] == etag
    assert repeat.headers["content-type"] == first.headers["content-type"] == "image/jpeg"
    assert decode(repeat.content).width == 120
    other = _thumbnail(client, data, width=121)
    assert other.headers["x-cache"] == "miss" and other.headers["etag"] != etag


def test_if_none_match_is_304_without_work(client: httpx.Client) -> None:
    data = encode(photo("coffee").rotate(3), "PNG")
    first = _thumbnail(client, data)
    etag = first.headers["etag"]
    again = _thumbnail(client, data, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    # the tag belongs to this image and pipeline only
    assert _thumbnail(client, data, width=90, **{"If-None-Match": etag}).status_code == 200


def test_process_pipelines_are_cached_too(client: httpx.Client) -> None:
    data = encode(photo("astronaut").rotate(5), "JPEG")
    pipeline = json.dumps({"steps": [{"op": "resize", "width": 100}], "format": "webp"})
    send = {"files": {"file": ("a.jpg", data, "image/jpeg")}, "data": {"pipeline": pipeline}}
    first = client.post("/api/v1/process", **send)  # type: ignore[arg-type]
    assert first.headers["x-cache"] == "miss"
    deadline = time.monotonic() + 15
    while (repeat := client.post("/api/v1/process", **send)).headers["x-cache"] != "hit":  # type: ignore[arg-type]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert repeat.content == first.content
