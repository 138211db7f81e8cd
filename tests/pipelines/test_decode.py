"""decode.open_image: formats, hostile input, limits, EXIF orientation, modes, shrink-on-load."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pipelines.decode import open_image
from pipelines.errors import BadImage, TooLarge, UnsupportedFormat
from pipelines.limits import DEFAULT_INPUT_FORMATS, Limits
from tests.conftest import encode, mean_abs_diff, photo
from tests.fixtures.hostile.catalogue import png_header_only

LIMITS = Limits()
ORIENTATION = 0x0112
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def jpeg_with_exif(img: Image.Image, orientation: int, **options: object) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encode(img, "JPEG", exif=exif.tobytes(), **options)


# --- formats that open -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", DEFAULT_INPUT_FORMATS)
def test_allowed_formats_open_at_full_size(fmt: str) -> None:
    """Every default input format decodes to an RGB image of the source size and content."""
    src = photo("chelsea")
    decoded = open_image(encode(src, fmt), LIMITS)
    assert decoded.format == fmt
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (451, 300)
    assert (decoded.width, decoded.height) == (451, 300)
    assert decoded.frames == 1
    # Lossless formats give the pixels back; GIF quantises to 256 colours, JPEG/WebP are lossy.
    bound = 0.0 if fmt in ("PNG", "BMP", "TIFF") else 6.0
    assert mean_abs_diff(decoded.image, src) <= bound


def test_decoded_image_reports_bytes_and_source_mode() -> None:
    data = encode(photo("camera"), "PNG")
    decoded = open_image(data, LIMITS)
    assert decoded.bytes == len(data)
    assert decoded.mode == "L"
    assert decoded.image.mode == "L"


# --- hostile and non-image input ---------------------------------------------------------


def test_empty_bytes_is_bad_image() -> None:
    with pytest.raises(BadImage) as err:
        open_image(b"", LIMITS)
    assert err.value.status == 400
    assert err.value.code == "empty_file"
    assert err.value.field == "file"


def test_random_bytes_is_bad_image() -> None:
    data = np.random.default_rng(0).bytes(2000)
    with pytest.raises(BadImage) as err:
        open_image(data, LIMITS)
    assert err.value.status == 400
    assert err.value.code == "unreadable_image"


@pytest.mark.parametrize(
    "data",
    [
        b"Hello, this is a plain text file.\nIt has two lines.\n" * 5,
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n%%EOF\n",
        b'{"image": "not really", "width": 100, "tags": [1, 2, 3]}',
        b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>",
        gzip.compress(b"\x00\xff" * 500),
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)),
    ],
    ids=["text", "pdf", "json", "svg", "gzip", "zip"],
)
def test_non_image_files_are_unsupported(data: bytes) -> None:
    """Text and known non-image files are 415 not_an_image, not a 400."""
    with pytest.raises(UnsupportedFormat) as err:
        open_image(data, LIMITS)
    assert err.value.status == 415
    assert err.value.code == "not_an_image"
    assert err.value.field == "file"


def test_multibyte_utf8_text_is_unsupported() -> None:
    data = ("日本語のテキストです。" * 40).encode("utf-8")  # 3-byte chars: byte 512 splits one
    with pytest.raises(UnsupportedFormat) as err:
        open_image(data, LIMITS)
    assert err.value.code == "not_an_image"


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "TGA", "PPM"])
def test_real_image_in_disallowed_format_is_unsupported(fmt: str) -> None:
    """Pillow could read these, but they are outside allowed_formats: 415 naming no decoder."""
    data = encode(photo("astronaut").resize((64, 64)), fmt)
    with pytest.raises(UnsupportedFormat) as err:
        open_image(data, LIMITS)
    assert err.value.status == 415
    assert err.value.code == "unsupported_format"
    assert err.value.field == "file"


def test_format_allowed_when_limits_allow_it() -> None:
    data = encode(photo("astronaut").resize((64, 64)), "PCX")
    decoded = open_image(data, Limits(allowed_formats=("pcx",)))
    assert decoded.format == "PCX"
    assert decoded.image.size == (64, 64)


def test_limits_refuse_unknown_format_names() -> None:
    with pytest.raises(ValidationError):
        Limits(allowed_formats=("JPEG", "NOTAFORMAT"))


def test_format_refused_when_limits_narrow_the_list() -> None:
    data = encode(photo("astronaut"), "PNG")
    with pytest.raises(UnsupportedFormat):
        open_image(data, Limits(allowed_formats=("JPEG",)))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_bad_image(fmt: str) -> None:
    data = encode(photo("astronaut"), fmt)
    with pytest.raises(BadImage) as err:
        open_image(data[: len(data) // 2], LIMITS)
    assert err.value.status == 400
    assert err.value.code == "corrupt_image"


def test_png_cut_inside_header_is_bad_image() -> None:
    data = encode(photo("astronaut"), "PNG")
    with pytest.raises(BadImage) as err:
        open_image(data[:30], LIMITS)
    assert err.value.status == 400


# --- limits ------------------------------------------------------------------------------


def test_decompression_bomb_header_is_too_large() -> None:
    """A few hundred bytes claiming 100000x100000 are refused from the header alone."""
    data = png_header_only(100_000, 100_000)
    assert len(data) < 200
    with pytest.raises(TooLarge) as err:
        open_image(data, LIMITS)
    assert err.value.status == 413
    assert err.value.code == "too_many_pixels"


def test_between_one_and_two_times_pillow_limit_is_too_large() -> None:
    """Pillow only warns here; our own pixel limit must still refuse it."""
    side = 10_000
    assert Image.MAX_IMAGE_PIXELS < side * side < 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(TooLarge) as err:
        open_image(png_header_only(side, side), LIMITS)
    assert err.value.code == "too_many_pixels"


def test_custom_pixel_limit_refuses_a_normal_photo(astronaut_jpeg: bytes) -> None:
    with pytest.raises(TooLarge) as err:
        open_image(astronaut_jpeg, Limits(max_pixels=512 * 512 - 1))
    assert err.value.status == 413
    assert err.value.code == "too_many_pixels"
    # Exactly at the limit is allowed.
    assert open_image(astronaut_jpeg, Limits(max_pixels=512 * 512)).image.size == (512, 512)


def _animated_gif(frames: int) -> bytes:
    images = [Image.new("RGB", (16, 16), (i * 40, 255 - i * 40, 0)) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=50)


def test_too_many_frames_is_too_large() -> None:
    with pytest.raises(TooLarge) as err:
        open_image(_animated_gif(5), Limits(max_frames=3))
    assert err.value.status == 413
    assert err.value.code == "too_many_frames"


def test_animated_gif_within_limits_reports_frames() -> None:
    decoded = open_image(_animated_gif(5), LIMITS)
    assert decoded.frames == 5
    assert decoded.image.getpixel((8, 8)) == (0, 255, 0)  # the first frame


def test_upload_over_byte_limit_is_too_large(astronaut_jpeg: bytes) -> None:
    with pytest.raises(TooLarge) as err:
        open_image(astronaut_jpeg, Limits(max_upload_bytes=len(astronaut_jpeg) - 1))
    assert err.value.status == 413
    assert err.value.code == "upload_too_large"
    assert err.value.field == "file"


# --- EXIF orientation --------------------------------------------------------------------

# How to store an upright picture so that a viewer honouring each orientation shows it upright.
_STORE_FOR = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # displayed after a 90 degree clockwise turn
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # displayed after a 90 degree counter-clockwise turn
}


def _upright_marker() -> Image.Image:
    """96x64 blue with a red block top-left and a green block top-right: all 8 poses differ."""
    img = Image.new("RGB", (96, 64), BLUE)
    img.paste(RED, (0, 0, 32, 32))
    img.paste(GREEN, (64, 0, 96, 32))
    return img


def _mean_rgb(img: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(img.crop(box), dtype=np.float64).reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_comes_out_upright(orientation: int) -> None:
    upright = _upright_marker()
    transpose = _STORE_FOR[orientation]
    stored = upright if transpose is None else upright.transpose(transpose)
    decoded = open_image(jpeg_with_exif(stored, orientation, quality=95), LIMITS)
    img = decoded.image
    assert img.size == (96, 64)
    assert (decoded.width, decoded.height) == (96, 64)
    assert decoded.exif.get(ORIENTATION) == orientation
    np.testing.assert_allclose(_mean_rgb(img, (4, 4, 28, 28)), RED, atol=25)
    np.testing.assert_allclose(_mean_rgb(img, (68, 4, 92, 28)), GREEN, atol=25)
    np.testing.assert_allclose(_mean_rgb(img, (4, 36, 28, 60)), BLUE, atol=25)
    assert mean_abs_diff(img, upright) < 6


def test_out_of_range_orientation_is_ignored() -> None:
    decoded = open_image(jpeg_with_exif(_upright_marker(), 9, quality=95), LIMITS)
    assert decoded.image.size == (96, 64)


# --- modes -------------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    decoded = open_image(data, LIMITS)
    assert decoded.mode == "CMYK"
    assert decoded.image.mode == "RGB"
    np.testing.assert_allclose(_mean_rgb(decoded.image, (0, 0, 32, 32)), RED, atol=5)


def test_16_bit_grayscale_png_is_scaled_to_l() -> None:
    arr = np.array([[0, 32768, 65535, 257]], dtype=np.uint16)
    decoded = open_image(encode(Image.fromarray(arr), "PNG"), LIMITS)
    assert decoded.mode.startswith("I")
    assert decoded.image.mode == "L"
    out = np.asarray(decoded.image)
    assert out[0, 0] == 0
    assert 127 <= out[0, 1] <= 128
    assert out[0, 2] == 255
    assert out[0, 3] == 1  # 257 / 65535 of full scale, not clipped to 255 as an 8-bit value


def test_dark_16_bit_png_is_not_mistaken_for_8_bit() -> None:
    """Values <= 255 in a 16-bit file are near black, not full-range 8-bit grey."""
    arr = np.full((4, 4), 255, dtype=np.uint16)
    decoded = open_image(encode(Image.fromarray(arr), "PNG"), LIMITS)
    assert int(np.asarray(decoded.image).max()) <= 1


def test_palette_with_transparency_becomes_rgba() -> None:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.putpixel((1, 1), 1)
    decoded = open_image(encode(img, "PNG", transparency=0), LIMITS)
    assert decoded.mode == "P"
    assert decoded.image.mode == "RGBA"
    assert decoded.image.getpixel((0, 0))[3] == 0
    assert decoded.image.getpixel((1, 1)) == (0, 255, 0, 255)


def test_palette_without_transparency_becomes_rgb() -> None:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([10, 20, 30] + [0] * (256 * 3 - 3))
    decoded = open_image(encode(img, "PNG"), LIMITS)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize(("mode", "want"), [("1", "L"), ("LA", "RGBA"), ("RGBA", "RGBA")])
def test_other_modes_are_normalised(mode: str, want: str) -> None:
    decoded = open_image(encode(Image.new(mode, (8, 8)), "PNG"), LIMITS)
    assert decoded.image.mode == want


# --- shrink-on-load ----------------------------------------------------------------------


def test_shrink_to_decodes_smaller_but_large_enough(large_jpeg: bytes) -> None:
    asked: list[tuple[int, int]] = []

    def hint(width: int, height: int) -> tuple[int, int]:
        asked.append((width, height))
        return 300, 200

    decoded = open_image(large_jpeg, LIMITS, shrink_to=hint)
    assert asked == [(1920, 1280)]
    w, h = decoded.image.size
    assert 300 <= w < 1920
    assert 200 <= h < 1280
    assert (decoded.width, decoded.height) == (1920, 1280)  # the source size, not the draft's


def test_shrink_to_is_ignored_for_png() -> None:
    data = encode(photo("coffee"), "PNG")
    decoded = open_image(data, LIMITS, shrink_to=lambda w, h: (50, 50))
    assert decoded.image.size == (600, 400)


@pytest.fixture(scope="module")
def rotated_jpeg() -> bytes:
    """Stored 1200x600 with orientation 6: upright it is a 600x1200 portrait."""
    stored = photo("coffee").resize((1200, 600))
    return jpeg_with_exif(stored, 6, quality=90)


def test_shrink_to_sees_upright_size_and_shrinks(rotated_jpeg: bytes) -> None:
    asked: list[tuple[int, int]] = []

    def hint(width: int, height: int) -> tuple[int, int]:
        asked.append((width, height))
        return 150, 300

    decoded = open_image(rotated_jpeg, LIMITS, shrink_to=hint)
    assert asked == [(600, 1200)]
    w, h = decoded.image.size
    assert 150 <= w < 600
    assert 300 <= h < 1200
    assert (decoded.width, decoded.height) == (600, 1200)


def test_shrink_to_swaps_the_request_for_rotated_storage(rotated_jpeg: bytes) -> None:
    """Upright 600 wide is the full stored height: no DCT scale may go below it."""
    decoded = open_image(rotated_jpeg, LIMITS, shrink_to=lambda w, h: (600, 300))
    w, h = decoded.image.size
    assert w >= 600
    assert h >= 300
    assert h > w
