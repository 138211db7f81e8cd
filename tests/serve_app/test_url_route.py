"""The URL API in process: signatures and unsafe URLs, sources (uploads, the source folder,
traversal), CDN headers (Cache-Control, ETag/304, Vary), format by Accept, errors in our JSON
shape with thumbor's statuses, meta, the guard's exemption for signed URLs, and routes it must
not shadow."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from libthumbor import CryptoURL
from PIL import Image

from serve_app.guards.guard import Guard
from serve_app.guards.rate_limit import RateLimiter
from serve_app.security import ApiKeys, hash_key
from serve_app.settings import RateLimitSettings
from serve_app.urls import sign_url
from tests.conftest import ASTRONAUT_FACE, best_iou, decode, encode, photo
from tests.serve_app.url_stack import KEY, url_stack

JPEG = encode(photo("coffee"), "JPEG", quality=90)  # 600x400
signer = CryptoURL(key=KEY)


def put(stack_dir: Path, name: str, data: bytes = JPEG) -> str:
    path = stack_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name


async def test_unsafe_url_fits_in(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "photos/coffee.jpg")
        answer = await s.http.get("/unsafe/fit-in/300x300/photos/coffee.jpg")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg"
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert decode(answer.content).size == (300, 200)
    assert answer.headers["cache-control"] == "public, max-age=86400"
    assert answer.headers["etag"].startswith('"') and "vary" not in answer.headers


async def test_unsafe_refused_unless_allowed(tmp_path: Path) -> None:
    async with url_stack(tmp_path, url={"allow_unsafe": False}) as s:
        put(s.sources, "a.jpg")
        refused = await s.http.get("/unsafe/100x100/a.jpg")
        signed = await s.http.get(signer.generate(width=100, height=100, image_url="a.jpg"))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "bad_signature"
    assert refused.headers["cache-control"] == "no-store"
    assert signed.status_code == 200


async def test_signatures_from_libthumbor_our_helper_and_rotation(tmp_path: Path) -> None:
    old, new = KEY, "a-newer-key-0123456789"
    async with url_stack(tmp_path, url={"signing_keys": [new, old], "allow_unsafe": False}) as s:
        put(s.sources, "a.jpg")
        by_old = await s.http.get(CryptoURL(key=old).generate(width=64, image_url="a.jpg"))
        by_new = await s.http.get(sign_url("64x0/smart/a.jpg", key=new))
        forged = await s.http.get(
            CryptoURL(key="guessed-key").generate(width=64, image_url="a.jpg")
        )
        good = signer.generate(width=64, image_url="a.jpg")
        tampered = await s.http.get(good.replace("64x", "65x"))
    assert by_old.status_code == 200 and by_new.status_code == 200
    assert decode(by_new.content).width == 64
    assert forged.status_code == 403 and tampered.status_code == 403
    assert forged.json()["error"]["code"] == "bad_signature"


async def test_sign_cli_prints_libthumbors_url(capsys: pytest.CaptureFixture[str]) -> None:
    from serve_app.urls import main

    assert main(["sign", "--key", KEY, "300x200/smart/IMAGE"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == signer.generate(width=300, height=200, smart=True, image_url="IMAGE")


async def test_upload_ids_and_missing_sources(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        record = await s.images.upload(JPEG)
        by_id = await s.http.get(f"/unsafe/100x100/{record.id}")
        missing = await s.http.get("/unsafe/100x100/no/such.jpg")
        missing_id = await s.http.get(f"/unsafe/100x100/{'0' * 32}")
    assert by_id.status_code == 200 and decode(by_id.content).size == (100, 100)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "source_not_found"
    assert missing.headers["cache-control"] == "no-store"
    assert missing_id.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "../secret.jpg",
        "..%2Fsecret.jpg",
        "a/../../secret.jpg",
        "%2F..%2F..%2Fsecret.jpg",
        "a/%2e%2e/%2e%2e/secret.jpg",
    ],
)
async def test_keys_never_leave_the_source_root(tmp_path: Path, path: str) -> None:
    (tmp_path / "secret.jpg").write_bytes(JPEG)  # beside the root, not under it
    async with url_stack(tmp_path) as s:
        put(s.sources, "a/ok.jpg")
        answer = await s.http.get(f"/unsafe/50x50/{path}")
    assert answer.status_code in (400, 404)


async def test_absolute_key_is_relative_to_the_root(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "etc/pic.jpg")
        answer = await s.http.get("/unsafe/50x50//etc/pic.jpg")
    assert answer.status_code == 200


async def test_etag_and_304(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "a.jpg")
        first = await s.http.get("/unsafe/120x80/a.jpg")
        again = await s.http.get(
            "/unsafe/120x80/a.jpg", headers={"If-None-Match": first.headers["etag"]}
        )
        other = await s.http.get("/unsafe/121x80/a.jpg")
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == first.headers["cache-control"]
    assert other.headers["etag"] != first.headers["etag"]


async def test_max_age_filter_overrides(tmp_path: Path) -> None:
    async with url_stack(tmp_path, url={"max_age_s": 3600}) as s:
        put(s.sources, "a.jpg")
        default = await s.http.get("/unsafe/40x40/a.jpg")
        short = await s.http.get("/unsafe/40x40/filters:max_age(60)/a.jpg")
        none = await s.http.get("/unsafe/40x40/filters:max_age(0)/a.jpg")
    assert default.headers["cache-control"] == "public, max-age=3600"
    assert short.headers["cache-control"] == "public, max-age=60"
    assert none.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("auto", "accept", "media", "vary"),
    [
        ({}, "image/webp,*/*", "image/jpeg", False),
        ({"auto_webp": True}, "image/avif,image/webp,*/*", "image/webp", True),
        ({"auto_webp": True}, "image/png,*/*", "image/jpeg", True),
        ({"auto_avif": True}, "image/avif,image/webp,*/*", "image/avif", True),
        ({"auto_webp": True, "auto_avif": True}, "image/avif,*/*", "image/avif", True),
    ],
)
async def test_format_by_accept(
    tmp_path: Path, auto: dict[str, bool], accept: str, media: str, vary: bool
) -> None:
    async with url_stack(tmp_path, url=auto) as s:
        put(s.sources, "a.jpg")
        answer = await s.http.get("/unsafe/64x64/a.jpg", headers={"Accept": accept})
        named = await s.http.get(
            "/unsafe/64x64/filters:format(png)/a.jpg", headers={"Accept": accept}
        )
    assert answer.status_code == 200 and answer.headers["content-type"] == media
    assert Image.open(io.BytesIO(answer.content)).get_format_mimetype() == media
    assert (answer.headers.get("vary") == "Accept") is vary
    assert named.headers["content-type"] == "image/png" and "vary" not in named.headers


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/unsafe/100x100/filters:blur(abc)/a.jpg", 400, "malformed_url"),
        ("/unsafe/100x100/filters:format(heic)/a.jpg", 400, "malformed_url"),
        ("/unsafe/100x100/filters:rgb(1,2)/a.jpg", 400, "malformed_url"),
        ("/unsafe/99999x100/a.jpg", 400, "malformed_url"),
        ("/unsafe/900x900:1000x1000/90x10/a.jpg", 200, None),  # off the image: ignored
        ("/unsafe/30x30:10x10/a.jpg", 200, None),  # an empty box: ignored, as thumbor does
        ("/unsafe/999999999999x1:1x1/a.jpg", 400, "malformed_url"),
        ("/unsafe/100x100/filters:fill(notacolour)/a.jpg", 400, "malformed_url"),
        ("/unsafe/100x100/filters:no_such_filter(1):quality(40)/a.jpg", 200, None),
        ("/unsafe/100x100/filters:noise(10)/a.jpg", 200, None),  # thumbor's, not ours: ignored
    ],
)
async def test_bad_urls_are_400_unknown_filters_ignored(
    tmp_path: Path, path: str, status: int, code: str | None
) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "a.jpg")
        answer = await s.http.get(path)
    assert answer.status_code == status, answer.text
    if code:
        assert answer.json()["error"]["code"] == code
        assert answer.headers["cache-control"] == "no-store"


async def test_bad_source_bytes_are_415_and_400(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "doc.jpg", b"%PDF-1.4 not an image at all")
        put(s.sources, "cut.jpg", JPEG[: len(JPEG) // 3])
        pdf = await s.http.get("/unsafe/50x50/doc.jpg")
        cut = await s.http.get("/unsafe/50x50/cut.jpg")
    assert pdf.status_code == 415
    assert cut.status_code == 400


async def test_meta_describes_without_encoding(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "a.jpg")
        answer = await s.http.get("/unsafe/meta/fit-in/300x300/filters:rotate(90)/a.jpg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    meta = answer.json()["thumbor"]
    assert meta["source"] == {
        "url": "a.jpg",
        "width": 600,
        "height": 400,
        "frameCount": 1,
        "format": "jpeg",
    }
    assert [op["type"] for op in meta["operations"]] == ["thumbnail", "rotate"]
    assert meta["target"]["width"] == 200 and meta["target"]["height"] == 300


async def test_head_gives_headers(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "a.jpg")
        answer = await s.http.head("/unsafe/64x64/a.jpg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"


async def test_signed_urls_need_no_api_key_but_are_rate_limited(tmp_path: Path) -> None:
    limiter = RateLimiter(RateLimitSettings(per_minute=100, burst=3))
    guard = Guard(ApiKeys({"ci": hash_key("s3cret-key")}), limiter)
    async with url_stack(tmp_path, url={"allow_unsafe": False}, guard=guard) as s:
        put(s.sources, "a.jpg")
        url = signer.generate(width=32, image_url="a.jpg")
        codes = [(await s.http.get(url)).status_code for _ in range(5)]
        api = await s.http.get("/api/v1/images/" + "0" * 32)
        unsafe = await s.http.get("/unsafe/32x0/a.jpg")
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
    assert api.status_code == 401  # the API still wants its key
    assert unsafe.status_code in (403, 429)  # no key needed to be told no


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/no-such-route", 404),
        ("POST", "/unsafe/10x10/a.jpg", 404),
        ("POST", "/no-such-route", 404),
        ("GET", "/favicon.ico", 404),
        ("GET", "/some/path", 404),
        ("GET", "/health/live", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/", 200),
        ("GET", "/playground", 200),
    ],
)
async def test_existing_routes_are_not_shadowed(
    tmp_path: Path, method: str, path: str, status: int
) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "a.jpg")
        answer = await s.http.request(method, path)
    assert answer.status_code == status
    if status == 404:
        assert answer.json()["error"]["code"] in ("not_found", "http_404")


async def test_smart_aims_at_the_face(tmp_path: Path) -> None:
    """The astronaut's face (x 178-270) is left of centre: a tall smart crop keeps it, a
    centred one cuts through it. The FaceDetector is asked (through its handle), YOLO is down:
    faces answered first, so the answer is still one to keep."""
    async with url_stack(tmp_path) as s:
        put(s.sources, "astronaut.jpg", encode(photo("astronaut"), "JPEG", quality=92))
        smart = await s.http.get("/unsafe/100x400/smart/astronaut.jpg")
        plain = await s.http.get("/unsafe/100x400/astronaut.jpg")
        meta = await s.http.get("/unsafe/meta/100x400/smart/astronaut.jpg")
    assert smart.status_code == 200 and decode(smart.content).size == (100, 400)
    assert s.faces.calls["detect"] >= 1
    assert smart.headers["cache-control"] == "public, max-age=86400"
    assert smart.content != plain.content
    assert meta.status_code == 200
    (face,) = [p for p in meta.json()["thumbor"]["focal_points"] if p["label"] == "face"]
    assert best_iou(ASTRONAUT_FACE, [{"box": face}]) > 0.5  # in source pixels


async def test_smart_without_a_face_and_yolo_down_is_not_kept(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "coffee.jpg")
        answer = await s.http.get("/unsafe/100x100/smart/coffee.jpg")
    assert answer.status_code == 200 and decode(answer.content).size == (100, 100)
    assert answer.headers["cache-control"] == "no-cache"


async def test_watermark_from_the_source_store(tmp_path: Path) -> None:
    mark = Image.new("RGBA", (40, 20), (255, 0, 0, 255))
    async with url_stack(tmp_path) as s:
        put(s.sources, "a.jpg")
        put(s.sources, "marks/wm.png", encode(mark, "PNG"))
        answer = await s.http.get("/unsafe/300x200/filters:watermark(marks/wm.png,-0,-0,0)/a.jpg")
        missing = await s.http.get("/unsafe/300x200/filters:watermark(nope.png,0,0,0)/a.jpg")
    out = decode(answer.content).convert("RGB")
    assert answer.status_code == 200 and out.size == (300, 200)
    r, g, b = out.getpixel((290, 190))
    assert r > 200 and g < 60 and b < 60  # the red mark, flush bottom-right
    assert missing.status_code == 404


async def test_watermark_in_a_process_pipeline_and_its_key(tmp_path: Path) -> None:
    """/api/v1/process runs the same watermark step: the mark comes from the same sources
    (it failed with "the watermark image was not provided"), and a changed mark is a new
    result, not the cached one."""
    import json

    def marked(color: str) -> bytes:
        return encode(Image.new("RGBA", (40, 20), color), "PNG")

    step = {"op": "watermark", "image": "marks/wm.png", "x": "-0", "y": "-0"}
    form = {"pipeline": json.dumps({"steps": [{"op": "resize", "width": 300}, step]})}
    async with url_stack(tmp_path) as s:
        put(s.sources, "marks/wm.png", marked("red"))
        red = await s.http.post("/api/v1/process", data=form, files={"file": ("a.jpg", JPEG)})
        put(s.sources, "marks/wm.png", marked("blue"))
        blue = await s.http.post("/api/v1/process", data=form, files={"file": ("a.jpg", JPEG)})
    assert red.status_code == 200, red.text
    assert decode(red.content).convert("RGB").getpixel((290, 190))[0] > 200
    assert blue.status_code == 200 and blue.headers["etag"] != red.headers["etag"]
    assert decode(blue.content).convert("RGB").getpixel((290, 190))[2] > 200


async def test_animated_gif_keeps_its_frames(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (80, 60), c) for c in ("red", "lime", "blue")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    async with url_stack(tmp_path) as s:
        put(s.sources, "anim.gif", gif)
        kept = await s.http.get("/unsafe/40x30/anim.gif")
        cover = await s.http.get("/unsafe/40x30/filters:cover()/anim.gif")
        still = await s.http.get("/unsafe/40x30/filters:format(png)/anim.gif")
    out = Image.open(io.BytesIO(kept.content))
    assert (
        kept.headers["content-type"] == "image/gif" and out.n_frames == 3 and out.size == (40, 30)
    )
    assert Image.open(io.BytesIO(cover.content)).n_frames == 1
    assert decode(still.content).format == "PNG"


def test_readme_signing_examples_are_true() -> None:
    """The README's signing examples (a console session and a libthumbor snippet) say what the
    code does."""
    import re

    from serve_app.settings import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    (console,) = re.findall(
        r"^```console\n\$ (python -m serve_app\.urls .*?)\n(.*?)\n```", readme, re.M | re.S
    )
    command, printed = console
    args = re.findall(r'"[^"]*"|\S+', command)[3:]
    import contextlib
    import io as _io

    from serve_app.urls import main

    out = _io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([a.strip('"') for a in args]) == 0
    assert out.getvalue().strip() == printed.strip()
    (snippet,) = re.findall(r"^```py\n(.*?)^```", readme, re.M | re.S)
    exec(compile(snippet, "README", "exec"), {})  # its own assert checks the URL


async def test_url_of_a_pipeline(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        put(s.sources, "a.jpg")
        made = await s.http.post(
            "/api/v1/url",
            json={
                "image": "a.jpg",
                "steps": [{"op": "thumbnail", "width": 90, "height": 60}],
                "format": "png",
            },
        )
        fetched = await s.http.get(made.json()["unsafe"])
        refused = await s.http.post(
            "/api/v1/url", json={"image": "a.jpg", "steps": [{"op": "enhance", "contrast": 2}]}
        )
    assert made.status_code == 200, made.text
    assert made.json() == {
        "path": "90x60/filters:format(png):cover()/a.jpg",
        "unsafe": "/unsafe/90x60/filters:format(png):cover()/a.jpg",
        "unsafe_allowed": True,
    }
    assert fetched.status_code == 200 and decode(fetched.content).size == (90, 60)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "no_url_form"


async def test_process_honours_detect(tmp_path: Path) -> None:
    """`detect` in a /process pipeline asks the detectors before the pipeline runs, as the
    URL API's smart does: the crop then aims at the astronaut's face."""
    astronaut = encode(photo("astronaut"), "JPEG", quality=92)
    pipeline = {"steps": [{"op": "thumbnail", "width": 60, "height": 400}], "format": "png"}
    async with url_stack(tmp_path) as s:
        record = await s.images.upload(astronaut)
        plain = await s.http.post("/api/v1/process", json={"image_id": record.id, **pipeline})
        aimed = await s.http.post(
            "/api/v1/process", json={"image_id": record.id, **pipeline, "detect": ["faces"]}
        )
    assert plain.status_code == 200 and aimed.status_code == 200
    assert s.faces.calls["detect"] == 1
    assert plain.content != aimed.content
    assert decode(aimed.content).size == (60, 400)


async def test_bucket_sources_on_s3(tmp_path: Path, s3_bucket: str, moto_endpoint: str) -> None:
    """SOURCE_URL=s3://bucket/prefix (moto's S3 server), as thumbor's S3 loader: keys under
    the prefix, kept by name for a while, nothing outside the prefix."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.put_object(Bucket=s3_bucket, Key="originals/shop/a.jpg", Body=JPEG)
    s3.put_object(Bucket=s3_bucket, Key="private/b.jpg", Body=JPEG)
    source = {"url": f"s3://{s3_bucket}/originals", "s3_endpoint_url": moto_endpoint}
    async with url_stack(tmp_path, source=source) as s:
        first = await s.http.get("/unsafe/fit-in/120x120/shop/a.jpg")
        s3.delete_object(Bucket=s3_bucket, Key="originals/shop/a.jpg")
        kept = await s.http.get("/unsafe/fit-in/100x100/shop/a.jpg")  # from the source cache
        outside = await s.http.get("/unsafe/50x50/../private/b.jpg")
        missing = await s.http.get("/unsafe/50x50/shop/none.jpg")
    assert first.status_code == 200 and decode(first.content).size == (120, 80)
    assert kept.status_code == 200 and decode(kept.content).size == (100, 67)
    assert outside.status_code == 404 and missing.status_code == 404


async def test_source_over_the_byte_limit_is_413(tmp_path: Path) -> None:
    async with url_stack(tmp_path, source={"max_bytes": 10_000}) as s:
        put(s.sources, "big.jpg")  # ~60 KB
        answer = await s.http.get("/unsafe/50x50/big.jpg")
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "source_too_large"
