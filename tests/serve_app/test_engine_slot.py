"""Engine slots: eager ones load at start and keep why they failed; lazy ones load once, on
their first request, off the event loop. The OCR and face replicas load only their default
engine at start, so an idle replica never imports torch (issue #9: idle memory)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from deployments import engine_slot
from deployments.engine_slot import EngineSlot
from deployments.face_detector import FaceDetector
from pipelines.errors import ModelUnavailable
from tests.conftest import ASTRONAUT_FACE, best_iou, photo

ROOT = Path(__file__).resolve().parents[2]


class Factory:
    """Counts its calls and the threads it ran in; fails while `error` is set."""

    def __init__(self, seconds: float = 0.0, error: Exception | None = None) -> None:
        self.seconds, self.error = seconds, error
        self.calls = 0
        self.threads: set[int] = set()

    def __call__(self) -> str:
        self.calls += 1
        self.threads.add(threading.get_ident())
        time.sleep(self.seconds)  # a blocking load, as a model's is
        if self.error is not None:
            raise self.error
        return "engine"


def test_an_eager_slot_loads_at_once_and_keeps_why_it_failed() -> None:
    ok = EngineSlot("good", Factory())
    assert ok.get() == "engine"
    assert ok.status() | {"load_seconds": 0} == {
        "ready": True, "loaded": True, "lazy": False, "loading": False, "error": None,
        "load_seconds": 0,
    }  # fmt: skip
    bad = EngineSlot("bad", Factory(error=FileNotFoundError("no weights.pt")))
    with pytest.raises(ModelUnavailable, match="bad is unavailable: FileNotFoundError"):
        bad.get()
    assert bad.status()["ready"] is False and "no weights.pt" in bad.status()["error"]


async def test_a_lazy_slot_loads_once_for_concurrent_first_requests_off_the_loop() -> None:
    factory = Factory(seconds=0.3)
    slot = EngineSlot("lazy", factory, lazy=True)
    # Not loaded yet is not a failure: it is available on demand.
    assert factory.calls == 0
    assert slot.status() == {
        "ready": True, "loaded": False, "lazy": True, "loading": False, "error": None,
        "load_seconds": None,
    }  # fmt: skip
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not slot.status()["loaded"]:
            ticks += 1
            await asyncio.sleep(0.01)

    *engines, _ = await asyncio.gather(*(slot.aget() for _ in range(5)), ticker())
    assert engines == ["engine"] * 5 and factory.calls == 1
    assert threading.get_ident() not in factory.threads  # loaded in a worker thread
    assert ticks >= 10  # the event loop kept running during the 0.3 s load
    assert slot.status()["loaded"] and slot.status()["load_seconds"] >= 0.3


async def test_a_request_cancelled_mid_load_leaves_the_load_running() -> None:
    factory = Factory(seconds=0.3)
    slot = EngineSlot("lazy", factory, lazy=True)
    first = asyncio.create_task(slot.aget())
    await asyncio.sleep(0.05)
    assert slot.status()["loading"]
    first.cancel()  # its client went away
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await slot.aget() == "engine" and factory.calls == 1
    assert not slot.status()["loading"]


async def test_a_failed_lazy_load_is_remembered_then_retried_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory = Factory(error=MemoryError("out of memory"))
    slot = EngineSlot("lazy", factory, lazy=True)
    for _ in range(3):
        with pytest.raises(ModelUnavailable, match="lazy is unavailable: MemoryError"):
            await slot.aget()
    assert factory.calls == 1  # not once per request
    assert slot.status()["ready"] is False and "out of memory" in slot.status()["error"]

    monkeypatch.setattr(engine_slot, "LAZY_RETRY_S", 0.0)  # the wait is over
    factory.error = None
    assert await slot.aget() == "engine" and factory.calls == 2
    assert slot.status()["ready"] and slot.status()["error"] is None


def test_idle_replicas_load_their_default_engine_only_and_no_torch() -> None:
    """In a fresh process: what a replica holds after __init__ and reconfigure."""
    code = """
import sys
from deployments.face_detector import FaceDetector
from deployments.ocr_reader import OcrReader

ocr = OcrReader.func_or_class()
ocr.reconfigure({"default_engine": "easyocr", "threads": 2})  # stays lazy until asked
faces = FaceDetector.func_or_class()
assert "torch" not in sys.modules, "torch imported at start"
assert ocr.threads == 2 and ocr.default_engine == "easyocr"
for replica, default, other in ((ocr, "tesseract", "easyocr"), (faces, "haar", "mtcnn")):
    status = replica.status()["engines"]
    assert status[default]["loaded"] and not status[default]["lazy"], status
    assert status[other]["ready"] and not status[other]["loaded"] and status[other]["lazy"], status
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


async def test_mtcnn_loads_on_its_first_request() -> None:
    faces = FaceDetector.func_or_class()
    assert not faces.status()["engines"]["mtcnn"]["loaded"]
    result = await faces.detect(np.asarray(photo("astronaut")), {"engine": "mtcnn"})
    found = [face.model_dump() for face in result.faces]
    assert result.engine == "mtcnn" and best_iou(ASTRONAUT_FACE, found) >= 0.6
    mtcnn = faces.status()["engines"]["mtcnn"]
    assert mtcnn["loaded"] and mtcnn["error"] is None and mtcnn["load_seconds"] > 0
