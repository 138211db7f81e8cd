"""Fixtures every layer's tests share: real photos (scikit-image ships them) and encoders."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from serve_app.local import free_port

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
    port = free_port()
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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


class OwnServer:
    """A server process of our own (never the machine's shared one), stoppable mid-test."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        ready: Callable[[], bool],
        url: str,
        *,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.argv, self.port, self._ready, self.url = argv, port, ready, url
        self.user, self.stop_signal = user, stop_signal
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=self.user
        )
        deadline = time.monotonic() + 30
        while not self._ready():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"{self.argv[0]} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            self.proc.wait(timeout=20)
        self.proc = None


def _redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.2).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis() -> Iterator[OwnServer]:
    """A private Redis (own port, nothing on disk) that a test may stop and start again."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"]  # fmt: skip
    server = OwnServer(argv, port, lambda: _redis_answers(port), f"redis://127.0.0.1:{port}/0")
    server.start()
    yield server
    server.stop()


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def own_postgres_dir() -> Iterator[Path]:
    """A database cluster of our own, made once per session (initdb refuses root: the
    machine's `postgres` user owns it, in a folder it can reach — pytest's are root-only)."""
    import shutil
    import tempfile

    if not (PG_BIN / "initdb").exists():
        _unavailable("PostgreSQL's server binaries")
    folder = Path(tempfile.mkdtemp(prefix="own-postgres-"))
    folder.chmod(0o777)
    data = folder / "data"
    subprocess.run(
        [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        user="postgres" if os.geteuid() == 0 else None,
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def own_postgres(own_postgres_dir: Path) -> Iterator[OwnServer]:
    """A private PostgreSQL (own port and data folder) that a test may stop and start again."""
    port = free_port()
    argv = [str(PG_BIN / "postgres"), "-D", str(own_postgres_dir / "data"),
            "-p", str(port), "-h", "127.0.0.1", "-k", str(own_postgres_dir),
            "-c", "fsync=off"]  # fmt: skip
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres?connect_timeout=2"

    def answers() -> bool:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except OperationalError:
            return False
        finally:
            engine.dispose()

    # SIGINT is PostgreSQL's fast shutdown: it does not wait for pooled clients to leave.
    user = "postgres" if os.geteuid() == 0 else None
    server = OwnServer(argv, port, answers, url, user=user, stop_signal=signal.SIGINT)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_moto() -> Iterator[OwnServer]:
    """A private moto S3 server that a test may stop and start again (it keeps nothing across
    a restart, as a real outage of an in-memory store would not)."""
    import urllib.request

    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return True
        except OSError:
            return False

    argv = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = OwnServer(argv, port, answers, url)
    server.start()
    yield server
    server.stop()
