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
