"""Fixtures every layer's tests share: real photos (scikit-image ships them) and encoders."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from bench import own_services
from bench.own_services import OwnServer

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


# --- Real backing services, shared by the persistence and integration tests ----------------

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable(what: str) -> None:
    """Locally a missing service skips its tests; under CI it fails them."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required under CI but is not reachable")
    pytest.skip(f"{what} is not reachable")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server for the session (bench/own_services.py starts it)."""
    with own_services.own_moto() as server:
        yield server.url


@contextmanager
def private_schema(admin: Engine, prefix: str = "t") -> Iterator[str]:
    """A schema of its own in the machine's PostgreSQL, dropped afterwards: the URL whose
    connections see only it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    base = admin.url.render_as_string(hide_password=False)
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """The machine's PostgreSQL, checked once per session."""
    base = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(base)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError:
        admin.dispose()
        _unavailable(f"PostgreSQL at {POSTGRES_URL}")
    yield admin
    admin.dispose()


# Our own instances, which a test may stop and start again (bench/own_services.py).


@pytest.fixture
def own_redis() -> Iterator[OwnServer]:
    """A private Redis (own port, nothing on disk)."""
    with own_services.own_redis() as server:
        yield server


@pytest.fixture(scope="session")
def own_postgres_dir() -> Iterator[Path]:
    """A database cluster of our own, made once per session."""
    try:
        with own_services.postgres_cluster() as folder:
            yield folder
    except own_services.ServiceMissing as missing:
        _unavailable(str(missing))


@pytest.fixture
def own_postgres(own_postgres_dir: Path) -> Iterator[OwnServer]:
    """A private PostgreSQL (own port and data folder)."""
    with own_services.own_postgres(own_postgres_dir) as server:
        yield server


@pytest.fixture
def own_moto() -> Iterator[OwnServer]:
    """A private moto S3 server."""
    with own_services.own_moto() as server:
        yield server
