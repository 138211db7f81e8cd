"""The URL API against thumbor 7.8 itself: URLs made with libthumbor for every option and
filter issue #16 names, answered by thumbor (its file loader on a folder, from
bench/.thumbor-venv, as the benchmarks run it) and by us (our source store on the same folder),
must give images of the same width, height and format. Pixels may differ by design (smart
crops from our detectors, Pillow's unsharp mask for thumbor's wavelet sharpen, ...): the
README's "Coming from thumbor" says where.

`make test` builds thumbor's virtualenv first; under CI a missing one fails this test.
"""

from __future__ import annotations

import io
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from libthumbor import CryptoURL
from PIL import Image

from bench import thumbor_peer
from tests.conftest import encode, photo
from tests.serve_app.url_stack import KEY, url_stack

signer = CryptoURL(key=KEY)
# thumbor as the benchmarks run it, signed URLs with our key, its default quality.
THUMBOR_CONFIG = f"SECURITY_KEY = {KEY!r}\nALLOW_UNSAFE_URL = False\n"


def _sources(root: Path) -> None:
    coffee = photo("coffee")  # 600x400
    (root / "photo.jpg").write_bytes(encode(coffee, "JPEG", quality=90))
    portrait = photo("chelsea").transpose(Image.Transpose.ROTATE_90)  # 300x451
    (root / "portrait.jpg").write_bytes(encode(portrait, "JPEG", quality=90))
    alpha = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    alpha.paste(coffee.resize((200, 140)).convert("RGBA"), (50, 30))
    (root / "alpha.png").write_bytes(encode(alpha, "PNG"))
    framed = Image.new("RGB", (500, 400), "white")
    framed.paste(coffee.resize((300, 200)), (120, 90))
    (root / "framed.jpg").write_bytes(encode(framed, "JPEG", quality=95))
    mark = Image.new("RGBA", (60, 30), (255, 255, 255, 200))
    (root / "wm.png").write_bytes(encode(mark, "PNG"))
    frames = [coffee.resize((120, 80)).rotate(angle) for angle in (0, 10, 20)]
    (root / "anim.gif").write_bytes(
        encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=60, loop=0)
    )


def _f(*filters: str) -> dict[str, Any]:
    return {"filters": list(filters)}


# (id, source, libthumbor options)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    # geometry
    ("fill", "photo.jpg", {"width": 300, "height": 300}),
    ("fill-width-only", "photo.jpg", {"width": 250}),
    ("fill-height-only", "portrait.jpg", {"height": 100}),
    ("fill-upscales", "photo.jpg", {"width": 900, "height": 700}),
    ("fit-in", "photo.jpg", {"width": 300, "height": 300, "fit_in": True}),
    ("fit-in-portrait", "portrait.jpg", {"width": 300, "height": 200, "fit_in": True}),
    ("fit-in-no-upscale", "photo.jpg", {"width": 900, "height": 900, "fit_in": True}),
    ("adaptive-fit-in", "portrait.jpg", {"width": 300, "height": 200, "adaptive_fit_in": True}),
    ("full-fit-in", "photo.jpg", {"width": 300, "height": 300, "full_fit_in": True}),
    (
        "adaptive-full-fit-in",
        "portrait.jpg",
        {"width": 300, "height": 200, "adaptive_full_fit_in": True},
    ),
    ("flip", "photo.jpg", {"width": 200, "height": 100, "flip": True}),
    ("flop", "photo.jpg", {"width": 200, "height": 100, "flop": True}),
    ("flip-only", "photo.jpg", {"flip": True, "flop": True}),
    (
        "align-left-top",
        "photo.jpg",
        {"width": 100, "height": 300, "halign": "left", "valign": "top"},
    ),
    (
        "align-right-bottom",
        "portrait.jpg",
        {"width": 300, "height": 100, "halign": "right", "valign": "bottom"},
    ),
    ("smart", "photo.jpg", {"width": 150, "height": 300, "smart": True}),
    ("manual-crop", "photo.jpg", {"crop": ((10, 20), (310, 220))}),
    (
        "manual-crop-and-fit",
        "photo.jpg",
        {"crop": ((100, 50), (500, 350)), "width": 100, "fit_in": True},
    ),
    ("trim", "framed.jpg", {"trim": True}),
    ("trim-bottom-right", "framed.jpg", {"trim": ("bottom-right", 40), "width": 150}),
    # filters
    ("quality", "photo.jpg", {"width": 200, **_f("quality(40)")}),
    ("format-jpeg", "alpha.png", {"width": 200, **_f("format(jpeg)")}),
    ("format-png", "photo.jpg", {"width": 200, **_f("format(png)")}),
    ("format-webp", "photo.jpg", {"width": 200, **_f("format(webp)")}),
    ("format-avif", "photo.jpg", {"width": 200, **_f("format(avif)")}),
    ("format-gif", "photo.jpg", {"width": 200, **_f("format(gif)")}),
    ("blur", "photo.jpg", {"width": 200, **_f("blur(3)")}),
    ("blur-sigma", "photo.jpg", {"width": 200, **_f("blur(5,2)")}),
    ("sharpen", "photo.jpg", {"width": 200, **_f("sharpen(2,1.0,true)")}),
    ("brightness", "photo.jpg", {"width": 200, **_f("brightness(40)")}),
    ("contrast", "photo.jpg", {"width": 200, **_f("contrast(-30)")}),
    ("saturation", "photo.jpg", {"width": 200, **_f("saturation(1.5)")}),
    ("grayscale", "photo.jpg", {"width": 200, **_f("grayscale()")}),
    ("equalize", "photo.jpg", {"width": 200, **_f("equalize()")}),
    ("rgb", "photo.jpg", {"width": 200, **_f("rgb(20,-10,0)")}),
    ("rotate-90", "photo.jpg", {"width": 200, "height": 100, **_f("rotate(90)")}),
    ("rotate-180", "photo.jpg", {"width": 200, "height": 100, **_f("rotate(180)")}),
    ("rotate-270", "portrait.jpg", {"width": 100, **_f("rotate(270)")}),
    ("fill-colour", "photo.jpg", {"width": 300, "height": 300, "fit_in": True, **_f("fill(red)")}),
    (
        "fill-hex",
        "portrait.jpg",
        {"width": 300, "height": 300, "fit_in": True, **_f("fill(00ff00)")},
    ),
    ("fill-blur", "photo.jpg", {"width": 300, "height": 300, "fit_in": True, **_f("fill(blur)")}),
    ("fill-auto", "photo.jpg", {"width": 300, "height": 300, "fit_in": True, **_f("fill(auto)")}),
    (
        "fill-transparent",
        "alpha.png",
        {"width": 400, "height": 400, "fit_in": True, **_f("fill(transparent)", "format(png)")},
    ),
    (
        "fill-small-source",
        "photo.jpg",
        {"width": 900, "height": 900, "fit_in": True, **_f("fill(blue)")},
    ),
    (
        "fill-adaptive",
        "portrait.jpg",
        {"width": 300, "height": 200, "adaptive_fit_in": True, **_f("fill(white)")},
    ),
    ("background-color", "alpha.png", {"width": 200, **_f("background_color(ff0000)")}),
    ("round-corner", "photo.jpg", {"width": 200, **_f("round_corner(20,255,255,255)")}),
    (
        "round-corner-ab",
        "photo.jpg",
        {"width": 200, **_f("round_corner(20|40,0,0,0,true)", "format(png)")},
    ),
    ("watermark", "photo.jpg", {"width": 300, **_f("watermark(wm.png,10,10,50)")}),
    ("watermark-corner", "photo.jpg", {"width": 300, **_f("watermark(wm.png,-10,-10,0)")}),
    ("watermark-percent", "photo.jpg", {"width": 300, **_f("watermark(wm.png,10p,center,20)")}),
    ("watermark-ratio", "photo.jpg", {"width": 300, **_f("watermark(wm.png,0,0,0,20,none)")}),
    ("watermark-repeat", "photo.jpg", {"width": 300, **_f("watermark(wm.png,repeat,repeat,30)")}),
    ("strip-exif", "photo.jpg", {"width": 200, **_f("strip_exif()")}),
    ("strip-icc", "photo.jpg", {"width": 200, **_f("strip_icc()")}),
    ("no-upscale", "photo.jpg", {"width": 900, "height": 900, **_f("no_upscale()")}),
    ("upscale", "photo.jpg", {"width": 900, "height": 900, "fit_in": True, **_f("upscale()")}),
    ("stretch", "photo.jpg", {"width": 300, "height": 100, **_f("stretch()")}),
    ("proportion", "photo.jpg", {"width": 300, **_f("proportion(0.5)")}),
    ("focal", "photo.jpg", {"width": 100, "height": 300, **_f("focal(400x100:500x200)")}),
    ("max-bytes", "photo.jpg", {"width": 300, **_f("max_bytes(4000)")}),
    ("max-age", "photo.jpg", {"width": 200, **_f("max_age(60)")}),
    ("unknown-filter", "photo.jpg", {"width": 200, **_f("noise(20)", "no_such_thing(1)")}),
    ("animated-gif", "anim.gif", {"width": 60, "height": 40}),
    (
        "many",
        "portrait.jpg",
        {
            "width": 200,
            "height": 200,
            "fit_in": True,
            "flip": True,
            **_f(
                "brightness(10)",
                "rotate(90)",
                "fill(white)",
                "round_corner(10,0,0,0)",
                "quality(70)",
            ),
        },
    ),
]


@pytest.fixture(scope="module")
def thumbor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not thumbor_peer.available():
        message = f"{thumbor_peer.THUMBOR} is missing: `make test` builds bench/.thumbor-venv"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("thumbor-sources")
    _sources(root)
    with thumbor_peer.thumbor_on(root, processes=1, config=THUMBOR_CONFIG) as server:
        yield server.base_url, root


def _thumbor_get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(base + path, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _shape(data: bytes) -> tuple[int, int, str]:
    img = Image.open(io.BytesIO(data))
    return img.width, img.height, (img.format or "").lower()


async def test_same_sizes_and_formats_as_thumbor(thumbor: tuple[str, Path], tmp_path: Path) -> None:
    base, root = thumbor
    mismatches = []
    async with url_stack(tmp_path, url={"allow_unsafe": False}) as ours:
        for name in os.listdir(root):
            (ours.sources / name).write_bytes((root / name).read_bytes())
        for case, source, options in CASES:
            path = signer.generate(image_url=source, **options)
            status, headers, body = _thumbor_get(base, path)
            answer = await ours.http.get(path)
            if status != 200 or answer.status_code != 200:
                mismatches.append(f"{case}: thumbor {status}, ours {answer.status_code}")
                continue
            theirs, mine = _shape(body), _shape(answer.content)
            if theirs != mine:
                mismatches.append(f"{case} {path}: thumbor {theirs}, ours {mine}")
            if case == "max-age":
                assert "max-age=60" in headers.get("Cache-Control", "")
                assert answer.headers["cache-control"] == "public, max-age=60"
            if case == "animated-gif":
                assert Image.open(io.BytesIO(answer.content)).n_frames == 3
    assert not mismatches, "\n".join(mismatches)


async def test_meta_matches_thumbors_target(thumbor: tuple[str, Path], tmp_path: Path) -> None:
    base, root = thumbor
    async with url_stack(tmp_path, url={"allow_unsafe": False}) as ours:
        (ours.sources / "photo.jpg").write_bytes((root / "photo.jpg").read_bytes())
        for options in (
            {"width": 300, "height": 300, "fit_in": True},
            {"width": 120, "height": 200, "crop": ((10, 10), (400, 300))},
        ):
            path = signer.generate(image_url="photo.jpg", meta=True, **options)
            status, _, body = _thumbor_get(base, path)
            answer = await ours.http.get(path)
            assert status == 200 and answer.status_code == 200
            theirs = __import__("json").loads(body)["thumbor"]["target"]
            mine = answer.json()["thumbor"]["target"]
            assert (mine["width"], mine["height"]) == (theirs["width"], theirs["height"])


def test_every_filter_the_issue_names_is_covered() -> None:
    named = [
        "quality",
        "format",
        "blur",
        "sharpen",
        "brightness",
        "contrast",
        "saturation",
        "grayscale",
        "equalize",
        "rgb",
        "rotate",
        "fill",
        "background_color",
        "round_corner",
        "watermark",
        "strip_exif",
        "strip_icc",
        "no_upscale",
        "upscale",
        "stretch",
        "proportion",
        "focal",
        "max_bytes",
        "max_age",
    ]
    used = {
        m for _, _, o in CASES for f in o.get("filters", []) for m in re.findall(r"^(\w+)\(", f)
    }
    assert set(named) <= used
