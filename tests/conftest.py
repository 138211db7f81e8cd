"""Fixtures every layer's tests share: real photos (scikit-image ships them) and encoders."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skdata.astronaut,  # 512x512 RGB, a face and a person
    "coffee": skdata.coffee,  # 600x400 RGB
    "chelsea": skdata.chelsea,  # 451x300 RGB, a cat
    "camera": skdata.camera,  # 512x512 grayscale
}


def photo(name: str) -> Image.Image:
    return Image.fromarray(_PHOTOS[name]())


def encode(img: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference (0-255) of two same-sized images, in RGB."""
    assert a.size == b.size, (a.size, b.size)
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    return float(np.abs(x - y).mean())


@pytest.fixture(scope="session")
def astronaut_jpeg() -> bytes:
    return encode(photo("astronaut"), "JPEG", quality=92)


@pytest.fixture(scope="session")
def large_jpeg() -> bytes:
    """A ~1920 px camera-like JPEG, the size thumbnails are made from."""
    return encode(photo("coffee").resize((1920, 1280), Image.Resampling.LANCZOS), quality=90)


def ultralytics_asset(name: str) -> Image.Image:
    """bus.jpg and zidane.jpg, the photos ultralytics ships."""
    from pathlib import Path

    import ultralytics

    return Image.open(Path(ultralytics.__file__).parent / "assets" / name).convert("RGB")


def text_image(text: str, size: tuple[int, int] = (900, 140), font_size: int = 56) -> Image.Image:
    """Black text in DejaVu Sans on white, as a scanner or screenshot would give it."""
    from PIL import ImageDraw, ImageFont

    img = Image.new("RGB", size, "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", font_size)
    ImageDraw.Draw(img).text((24, (size[1] - font_size) // 2 - 6), text, fill="black", font=font)
    return img


def normalised(text: str) -> str:
    return " ".join(text.lower().split())


# Boxes measured by hand on the photos (x1, y1, x2, y2), in upright pixels.
ASTRONAUT_FACE = (178, 62, 270, 168)
BUS_PEOPLE = [(45, 385, 215, 905), (215, 395, 345, 870), (660, 245, 810, 885)]
ZIDANE_PEOPLE = [(120, 195, 1150, 720), (745, 40, 1150, 720)]
FALL_MODEL = "pkg:fall_detection/models/best.pt"  # a trained YOLOv8 person detector


def best_iou(box: tuple[float, float, float, float], found: list[dict]) -> float:
    """The best overlap (pipelines.results.Box.iou) of `box` with any found box."""
    from pipelines.results import Box

    target = Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3])
    return max((target.iou(Box(**f["box"])) for f in found), default=0.0)
