"""analysis: image_info's shape, colours, tone, texture, EXIF summary, aspect names, probe."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pipelines.analysis import image_info, probe
from pipelines.errors import BadImage, TooLarge
from pipelines.limits import Limits
from tests.conftest import encode, photo

LIMITS = Limits()


def info(img: Image.Image, fmt: str = "PNG", **options: object) -> dict[str, object]:
    return image_info(encode(img, fmt, **options), LIMITS)


def test_image_info_keys(astronaut_jpeg: bytes) -> None:
    result = image_info(astronaut_jpeg, LIMITS)
    assert set(result) == {
        "format",
        "width",
        "height",
        "mode",
        "bytes",
        "frames",
        "has_alpha",
        "exif",
        "analysis",
    }
    assert (result["format"], result["width"], result["height"]) == ("jpeg", 512, 512)
    assert (result["mode"], result["frames"], result["has_alpha"]) == ("RGB", 1, False)
    assert result["bytes"] == len(astronaut_jpeg)
    analysis = result["analysis"]
    assert set(analysis) == {"colors", "tone", "texture", "composition"}
    assert set(analysis["tone"]) == {"brightness", "contrast", "dark_fraction", "bright_fraction"}
    assert set(analysis["texture"]) == {"edge_density", "entropy", "sharpness"}
    assert {"center_of_mass_x", "thirds_score", "aspect"} <= set(analysis["composition"])
    for value in analysis["tone"].values():
        assert 0.0 <= value <= 1.0


def test_has_alpha_for_rgba() -> None:
    assert info(Image.new("RGBA", (8, 8)))["has_alpha"] is True


def test_two_colour_image_dominant_colours() -> None:
    img = Image.new("RGB", (256, 128), (220, 30, 30))
    img.paste((20, 40, 200), (0, 0, 64, 128))  # one quarter blue
    dominant = info(img)["analysis"]["colors"]["dominant"]
    top, second = dominant[0], dominant[1]
    np.testing.assert_allclose(top["rgb"], (220, 30, 30), atol=8)
    np.testing.assert_allclose(second["rgb"], (20, 40, 200), atol=8)
    assert top["hex"] == "#{:02x}{:02x}{:02x}".format(*top["rgb"])
    assert top["share"] > second["share"]
    assert top["share"] + second["share"] == pytest.approx(1.0, abs=0.05)
    assert second["share"] == pytest.approx(0.25, abs=0.05)
    assert sum(c["share"] for c in dominant) == pytest.approx(1.0, abs=0.01)


def test_black_image_tone() -> None:
    tone = info(Image.new("RGB", (64, 64)))["analysis"]["tone"]
    assert tone["brightness"] == 0
    assert tone["contrast"] == 0
    assert tone["dark_fraction"] == 1.0
    assert tone["bright_fraction"] == 0


def test_white_image_is_bright() -> None:
    tone = info(Image.new("L", (64, 64), 255))["analysis"]["tone"]
    assert tone["brightness"] == 1.0
    assert tone["bright_fraction"] == 1.0


def test_blurred_image_is_less_sharp() -> None:
    src = photo("camera")
    sharp = info(src)["analysis"]["texture"]
    blurred = info(src.filter(ImageFilter.GaussianBlur(3)))["analysis"]["texture"]
    assert blurred["sharpness"] < sharp["sharpness"] / 4
    assert blurred["edge_density"] < sharp["edge_density"]


def test_flat_image_has_no_texture() -> None:
    texture = info(Image.new("RGB", (64, 64), (90, 90, 90)))["analysis"]["texture"]
    assert texture == {"edge_density": 0, "entropy": 0, "sharpness": 0}


def test_centre_of_mass_follows_the_subject() -> None:
    img = Image.new("RGB", (400, 200), (128, 128, 128))
    noise = np.random.default_rng(4).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    img.paste(Image.fromarray(noise), (320, 70))
    composition = info(img)["analysis"]["composition"]
    assert composition["center_of_mass_x"] > 0.7
    assert 0.35 < composition["center_of_mass_y"] < 0.65


def test_exif_summary() -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestMake"  # Make
    exif[0x0110] = "TestModel X"  # Model
    exif[0x0112] = 1  # Orientation
    exif[0x0131] = "pytest"  # Software
    exif[0x9000] = b"0230"  # ExifVersion: not in the summary
    result = info(photo("chelsea"), "JPEG", exif=exif.tobytes())
    assert result["exif"]["Make"] == "TestMake"
    assert result["exif"]["Model"] == "TestModel X"
    assert result["exif"]["Orientation"] == 1
    assert result["exif"]["Software"] == "pytest"
    assert set(result["exif"]) == {"Make", "Model", "Orientation", "Software"}


def test_no_exif_is_an_empty_summary() -> None:
    assert info(photo("chelsea"))["exif"] == {}


@pytest.mark.parametrize(
    ("size", "nearest", "orientation"),
    [
        ((160, 90), "16:9", "landscape"),
        ((120, 90), "4:3", "landscape"),
        ((90, 120), "3:4", "portrait"),
        ((90, 160), "9:16", "portrait"),
        ((150, 100), "3:2", "landscape"),
        ((100, 100), "1:1", "square"),
        ((210, 90), "21:9", "landscape"),
        ((100, 37), "other", "landscape"),
    ],
)
def test_aspect_names(size: tuple[int, int], nearest: str, orientation: str) -> None:
    aspect = info(Image.new("RGB", size))["analysis"]["composition"]["aspect"]
    assert aspect["nearest"] == nearest
    assert aspect["orientation"] == orientation
    assert aspect["ratio"] == pytest.approx(size[0] / size[1], abs=1e-3)


def test_aspect_uses_upright_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    result = info(Image.new("RGB", (160, 90)), "JPEG", exif=exif.tobytes())
    assert (result["width"], result["height"]) == (90, 160)
    assert result["analysis"]["composition"]["aspect"]["nearest"] == "9:16"


def test_probe_returns_basics(astronaut_jpeg: bytes) -> None:
    result = probe(astronaut_jpeg, LIMITS)
    assert result["format"] == "jpeg"
    assert (result["width"], result["height"]) == (512, 512)
    assert "analysis" not in result


def test_probe_fails_on_truncated_data() -> None:
    data = encode(photo("astronaut"), "PNG")
    with pytest.raises(BadImage) as err:
        probe(data[: len(data) // 2], LIMITS)
    assert err.value.status == 400


def test_probe_respects_limits(astronaut_jpeg: bytes) -> None:
    with pytest.raises(TooLarge):
        probe(astronaut_jpeg, Limits(max_pixels=1000))


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (300, 1)])
def test_degenerate_sizes_are_analysed(size: tuple[int, int]) -> None:
    result = info(Image.new("RGB", size, (10, 200, 30)))
    assert result["analysis"]["colors"]["dominant"][0]["share"] == 1.0
