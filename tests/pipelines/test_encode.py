"""encode: every output format round-trips, alpha is flattened on white, quality and aliases."""

from __future__ import annotations

import io
import typing

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pipelines.encode import MEDIA_TYPES, FormatName, default_format, encode, encode_frames
from pipelines.ops.convert import ConvertStep
from pipelines.spec import PipelineSpec
from tests.conftest import decode, mean_abs_diff, photo

FORMATS = typing.get_args(FormatName)
PILLOW_NAME = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "avif": "AVIF",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
}
# Mean abs diff allowed; lossless formats get 0 (GIF's 256-colour palette is the loss there).
LOSSY_BOUND = {"jpeg": 6.0, "webp": 6.0, "avif": 8.0, "gif": 8.0}


@pytest.fixture(scope="module")
def src() -> Image.Image:
    return photo("chelsea")


def test_every_format_has_a_media_type() -> None:
    assert set(FORMATS) == set(MEDIA_TYPES)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_each_format_round_trips(src: Image.Image, fmt: str, mode: str) -> None:
    img = src.convert(mode)
    out = decode(encode(img, fmt))  # type: ignore[arg-type]
    assert out.format == PILLOW_NAME[fmt]
    assert out.size == img.size
    assert MEDIA_TYPES[fmt] == f"image/{fmt}"
    assert mean_abs_diff(out, img) <= LOSSY_BOUND.get(fmt, 0.0)


@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "gif", "tiff"])
def test_alpha_survives_where_the_format_has_it(fmt: str) -> None:
    img = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    img.paste((0, 0, 255, 0), (0, 0, 16, 32))
    out = decode(encode(img, fmt)).convert("RGBA")  # type: ignore[arg-type]
    assert out.getpixel((4, 4))[3] == 0
    assert out.getpixel((24, 4))[3] == 255


def test_rgba_to_jpeg_composites_on_white() -> None:
    img = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    img.paste((0, 0, 0, 0), (0, 0, 16, 32))  # transparent black must not show as black
    out = decode(encode(img, "jpeg", 95))
    assert out.mode == "RGB"
    left = np.asarray(out.crop((2, 2, 14, 30)), dtype=np.float64).mean(axis=(0, 1))
    right = np.asarray(out.crop((18, 2, 30, 30)), dtype=np.float64).mean(axis=(0, 1))
    np.testing.assert_allclose(left, (255, 255, 255), atol=4)
    np.testing.assert_allclose(right, (255, 0, 0), atol=6)


def test_rgba_to_bmp_composites_on_white() -> None:
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    out = decode(encode(img, "bmp")).convert("RGBA")
    assert out.getpixel((0, 0)) in ((255, 255, 255, 255), (0, 0, 0, 0))


def test_half_transparent_blends_with_white() -> None:
    img = Image.new("RGBA", (16, 16), (0, 0, 0, 128))
    out = decode(encode(img, "jpeg", 95))
    assert abs(int(np.asarray(out).mean()) - 127) <= 3


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_higher_quality_means_more_bytes(src: Image.Image, fmt: str) -> None:
    low = encode(src, fmt, 30)  # type: ignore[arg-type]
    high = encode(src, fmt, 95)  # type: ignore[arg-type]
    assert len(high) > len(low) * 1.5
    assert mean_abs_diff(decode(high), src) < mean_abs_diff(decode(low), src)


def test_default_quality_sits_between(src: Image.Image) -> None:
    default = len(encode(src, "jpeg"))
    assert len(encode(src, "jpeg", 30)) < default < len(encode(src, "jpeg", 95))


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("JPG", "jpeg"), ("jpg", "jpeg"), ("Jpeg", "jpeg"), ("tif", "tiff"), (" PNG ", "png")],
)
def test_format_aliases_are_accepted(alias: str, canonical: str) -> None:
    assert PipelineSpec(format=alias).format == canonical  # type: ignore[arg-type]
    assert ConvertStep(format=alias).format == canonical  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["heic", "svg", "", "jpeg2000", 5])
def test_unknown_output_formats_are_refused(bad: object) -> None:
    with pytest.raises(ValidationError):
        ConvertStep(format=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "output"),
    [("JPEG", "jpeg"), ("MPO", "jpeg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif")],
)
def test_default_format_per_source(source: str, output: str) -> None:
    assert default_format(source) == output


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_frames_encode_as_an_animation(fmt: str) -> None:
    frames = [Image.new("RGBA", (24, 16), colour) for colour in ("red", "lime", "blue")]
    data = encode_frames(frames, [40, 50, 60], 0, fmt)  # type: ignore[arg-type]
    out = Image.open(io.BytesIO(data))
    assert out.format == PILLOW_NAME[fmt] and out.n_frames == 3
    out.seek(1)
    assert out.convert("RGB").getpixel((5, 5)) == (0, 255, 0)


def test_frames_in_a_still_format_give_the_first() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    out = decode(encode_frames(frames, [40, 40], 0, "png"))
    assert out.format == "PNG" and out.getpixel((0, 0)) == (255, 0, 0)
