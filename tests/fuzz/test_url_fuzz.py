"""hypothesis over the URL API's parser: any path either translates into a PipelineSpec or
is refused with MalformedUrl (400) — nothing else — and a path that translates runs on a real
image to a result or a typed ServiceError. Then the same paths through the app in process:
never a 5xx. Paths are grown from the grammar's own pieces (so most get deep into it) mixed
with arbitrary text and percent-encoding.

Derandomized and without an example database, so CI runs the same examples every time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import ServiceError
from pipelines.limits import Limits
from pipelines.pipeline import run_pipeline
from pipelines.thumbor_url import MalformedUrl, translate
from tests.conftest import encode, photo
from tests.serve_app.url_stack import url_stack

LIMITS = Limits(max_pixels=250_000, max_side=1024, max_frames=8)
PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SOURCE = encode(photo("coffee").resize((90, 60)), "JPEG")

_numbers = st.one_of(
    st.integers(min_value=-5, max_value=2000).map(str),
    st.sampled_from(["0", "-0", "orig", "1e3", "9" * 30, "0x10", "", " 5", "1.5", "nan"]),
)
_args = st.lists(
    st.one_of(
        _numbers,
        st.sampled_from(
            [
                "red",
                "fff",
                "transparent",
                "blur",
                "auto",
                "true",
                "false",
                "none",
                "center",
                "repeat",
                "10p",
                "-10p",
                "wm.png",
                "'a,b'",
                "(",
                ")",
                "|",
                "10|20",
                "10x10:20x20",
                "webp",
                "avif",
                "gif",
                "heic",
                "jpg",
            ]
        ),
        st.text(max_size=6),
    ),
    max_size=7,
).map(",".join)
_filter_names = st.sampled_from(
    [
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
        "cover",
        "noise",
        "x",
        "Bad Name",
    ]
)
_filter = st.builds(lambda n, a: f"{n}({a})", _filter_names, _args)
_filters = st.lists(_filter, min_size=1, max_size=5).map(lambda fs: "filters:" + ":".join(fs))
_dims = st.builds(
    lambda hf, w, vf, h: f"{hf}{w}x{vf}{h}",
    st.sampled_from(["", "-"]),
    _numbers,
    st.sampled_from(["", "-"]),
    _numbers,
)
_segments = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "meta",
                "debug",
                "trim",
                "trim:top-left",
                "trim:bottom-right:30",
                "trim:999",
                "fit-in",
                "adaptive-fit-in",
                "full-fit-in",
                "adaptive-full-fit-in",
                "left",
                "right",
                "top",
                "bottom",
                "center",
                "middle",
                "smart",
                "10x10:200x150",
                "5x5:1x1",
            ]
        ),
        _dims,
        _filters,
        st.text(max_size=10),
    ),
    max_size=7,
)
_images = st.one_of(
    st.sampled_from(
        [
            "a.jpg",
            "dir/a.jpg",
            "../a.jpg",
            "%2e%2e/a.jpg",
            "http%3A%2F%2Fx%2Fa.jpg",
            "0" * 32,
            "a%00.jpg",
            "",
            "//",
        ]
    ),
    st.text(min_size=1, max_size=12).map(lambda t: quote(t, safe="/%")),
)
_paths = st.one_of(
    st.builds(
        lambda head, segs, image: "/" + "/".join([head, *segs, image]),
        st.sampled_from(["unsafe", "H9Qae8bmkSemicGomrVmkUEQofs=", "x", ""]),
        _segments,
        _images,
    ),
    st.text(max_size=60).map(lambda t: "/" + quote(t, safe="/:()%,")),
)


@PROPERTY
@given(_paths)
def test_translate_gives_a_plan_or_a_400(path: str) -> None:
    try:
        plan = translate(path)
    except MalformedUrl as refused:
        assert refused.status == 400
        return
    try:
        result = run_pipeline(SOURCE, plan.spec, LIMITS)
    except ServiceError as failed:
        assert 400 <= failed.status < 600 and failed.status != 500
        return
    assert result.width >= 1 and result.height >= 1


def test_the_app_never_answers_5xx(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    stack = url_stack(tmp_path, limits=LIMITS)
    s = loop.run_until_complete(stack.__aenter__())
    (s.sources / "a.jpg").write_bytes(SOURCE)
    (s.sources / "wm.png").write_bytes(encode(photo("chelsea").resize((20, 10)), "PNG"))
    try:

        @settings(PROPERTY, max_examples=150)
        @given(_paths)
        def answer(path: str) -> None:
            # What a client can send: control and non-ASCII characters percent-encoded.
            sendable = "".join(c if c.isascii() and c.isprintable() else quote(c) for c in path)
            response = loop.run_until_complete(s.http.get("http://in-process" + sendable))
            assert response.status_code < 500, (path, response.text)

        answer()
    finally:
        loop.run_until_complete(stack.__aexit__(None, None, None))
        loop.close()
