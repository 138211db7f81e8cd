"""Every entry of the hostile catalogue (tests/fixtures/hostile) through the pure layer: the
pipeline with shrink-on-load (a resize first), a lossless full-size convert, and image-info's
analysis. A refusal must be the catalogue's typed error and code; an accepted file must come
out the right size, upright and with the right pixels. Each within a bound that a bomb would
blow (2 s on a loaded 2-core machine), which the decoder meets in milliseconds."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from pipelines.analysis import image_info
from pipelines.errors import ServiceError
from pipelines.limits import Limits
from pipelines.pipeline import run_pipeline
from pipelines.spec import PipelineSpec
from tests.fixtures.hostile import ACCEPTED, BY_NAME, CATALOGUE, REFUSED, Hostile

LIMITS = Limits()
TIME_BOUND_S = 2.0
ids: Callable[[Hostile], str] = lambda entry: entry.name  # noqa: E731

# A thumbnail first: JPEG sources take the shrink-on-load path.
THUMBNAIL = PipelineSpec.model_validate({"steps": [{"op": "resize", "width": 32}]})
# Lossless and full size: what the catalogue's pixel checks look at.
AS_PNG = PipelineSpec.model_validate({"format": "png"})


@contextmanager
def fast(what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    assert elapsed < TIME_BOUND_S, f"{what} took {elapsed:.2f}s"


def test_catalogue_is_well_formed() -> None:
    """Each entry says what it attacks and what must happen; the issue's cases are all there."""
    for entry in CATALOGUE:
        assert entry.attacks and "\n" not in entry.attacks
        if entry.ok:
            assert entry.code is None and entry.size is not None and entry.check is not None
        else:
            assert entry.status in (400, 413, 415) and entry.code
    names = {entry.name for entry in CATALOGUE}
    required = {
        "png_huge_dims", "jpeg_huge_dims", "gif_huge_screen", "tiff_huge_dims",
        "webp_huge_dims", "png_between_pillow_limits", "gif_too_many_frames",
        "truncated_jpeg", "truncated_png", "empty", "random_bytes", "png_named_jpg",
        "pdf_as_jpeg", "cmyk_jpeg", "png_16bit_grey", "tiff_deflate_bomb", "jpeg_huge_icc",
        "png_huge_text_chunk", *(f"exif_orientation_{n}" for n in range(1, 9)),
    }  # fmt: skip
    assert required <= names, required - names


@pytest.mark.parametrize("entry", REFUSED, ids=ids)
def test_refused_with_the_typed_error(entry: Hostile) -> None:
    data = entry.data
    for spec in (THUMBNAIL, AS_PNG):
        with (
            fast(f"{entry.name} through {spec.canonical_json()}"),
            pytest.raises(ServiceError) as err,
        ):
            run_pipeline(data, spec, LIMITS)
        assert type(err.value) is entry.error, err.value
        assert (err.value.status, err.value.code) == (entry.status, entry.code), err.value.message
    with fast(f"{entry.name} through image_info"), pytest.raises(entry.error) as err:
        image_info(data, LIMITS)
    assert err.value.code == entry.code


@pytest.mark.parametrize("entry", ACCEPTED, ids=ids)
def test_accepted_and_correct(entry: Hostile) -> None:
    assert entry.size is not None and entry.check is not None
    data = entry.data
    with fast(f"{entry.name} as png"):
        result = run_pipeline(data, AS_PNG, LIMITS)
    assert (result.source_width, result.source_height) == entry.size
    assert (result.width, result.height) == entry.size
    img = Image.open(io.BytesIO(result.data))
    img.load()
    assert img.format == "PNG"
    entry.check(img)

    with fast(f"{entry.name} thumbnail"):
        thumb = run_pipeline(data, THUMBNAIL, LIMITS)
    width, height = entry.size
    assert (thumb.width, thumb.height) == (min(32, width), round(height * min(32, width) / width))
    Image.open(io.BytesIO(thumb.data)).load()

    with fast(f"{entry.name} image_info"):
        info = image_info(data, LIMITS)
    assert (info["width"], info["height"]) == entry.size
    assert info["analysis"]


# --- what the source says about itself never reaches a result ------------------------------

_PRIVATE = "LeakCam"  # EXIF/TIFF Make
_ICC = b"\x00" * 2000


def _with_metadata(fmt: str) -> bytes:
    """An upright 64x48 image carrying a camera make, an ICC profile and (JPEG) a comment."""
    exif = Image.Exif()
    exif[0x010F] = _PRIVATE
    extra: dict[str, object] = {"comment": b"private comment"} if fmt == "JPEG" else {}
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(
        out, fmt, exif=exif.tobytes(), icc_profile=_ICC, **extra
    )
    return out.getvalue()


@pytest.mark.parametrize("source", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("output", ["jpeg", "png", "webp", "tiff", "bmp"])
@pytest.mark.parametrize("steps", [[], [{"op": "resize", "width": 32}]], ids=["as-is", "resized"])
def test_results_carry_no_source_metadata(source: str, output: str, steps: list) -> None:
    """Regression: PNG and TIFF results kept the source's ICC profile, JPEG results its
    comment, and a TIFF passed through unchanged kept the source file's tags (camera make)."""
    spec = PipelineSpec.model_validate({"steps": steps, "format": output})
    result = run_pipeline(_with_metadata(source), spec, LIMITS)
    img = Image.open(io.BytesIO(result.data))
    img.load()
    assert not img.info.get("icc_profile")
    assert not img.info.get("exif")
    assert "comment" not in img.info
    assert _PRIVATE not in str(dict(img.getexif()))
    if output == "tiff":
        assert _PRIVATE not in str(dict(img.tag_v2))  # type: ignore[attr-defined]


def test_colour_key_transparency_survives_as_alpha() -> None:
    """An RGB PNG with a tRNS colour key: the key pixels stay transparent in every alpha
    format now that the decoder hands on no `info` (see the test above)."""
    src = Image.new("RGB", (8, 8), (1, 2, 3))
    src.putpixel((0, 0), (200, 100, 50))
    out = io.BytesIO()
    src.save(out, "PNG", transparency=(1, 2, 3))
    for fmt in ("png", "webp"):
        spec = PipelineSpec.model_validate({"format": fmt})
        img = Image.open(io.BytesIO(run_pipeline(out.getvalue(), spec, LIMITS).data))
        rgba = img.convert("RGBA")
        assert rgba.getpixel((1, 1))[3] == 0, fmt
        assert rgba.getpixel((0, 0))[3] == 255, fmt


def test_make_fixtures_writes_the_catalogue(tmp_path: Path) -> None:
    from tests.fixtures.hostile.make_fixtures import write_fixtures

    files = write_fixtures(tmp_path)
    assert len(files) == len(CATALOGUE)
    assert (tmp_path / "png_named_jpg.jpg").read_bytes() == BY_NAME["png_named_jpg"].data
    index = (tmp_path / "INDEX.txt").read_text().splitlines()
    assert len(index) == len(CATALOGUE)
    assert "413 too_many_pixels" in next(line for line in index if line.startswith("png_huge"))
