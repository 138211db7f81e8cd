"""The face and OCR engines by name, built once per process and called by name.

The FaceDetector and OcrReader run these in a child process they can kill at a request's
deadline (deployments/engine_host.py); this module is what that child imports. It holds no
Ray, and nothing here is loaded until it is asked for: a Haar child never imports torch.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Literal

from pipelines.errors import ModelUnavailable
from pipelines.faces import FaceParams, HaarEngine, MtcnnEngine
from pipelines.ocr import EasyOcrEngine, OcrParams, TesseractEngine
from pipelines.results import FacesResult, OcrResult
from pipelines.sizing import ModelImage

Family = Literal["faces", "ocr"]
_loaded: dict[tuple[str, str], Any] = {}


def _set_threads(threads: int) -> None:
    # Ray sets OMP_NUM_THREADS from num_cpus; torch's count is set deliberately, every call
    # (a reconfigure may have changed it). Not imported yet: the engine sets it when it loads.
    torch = sys.modules.get("torch")
    if torch is not None and threads > 0:
        torch.set_num_threads(threads)


def _build(family: Family, name: str, threads: int) -> Any:
    if family == "faces" and name == "haar":
        return HaarEngine()
    if family == "ocr" and name == "tesseract":
        return TesseractEngine()
    import torch

    torch.set_num_threads(max(1, threads))
    gpu = torch.cuda.is_available()
    if family == "faces" and name == "mtcnn":
        return MtcnnEngine(device="cuda:0" if gpu else "cpu")
    if family == "ocr" and name == "easyocr":
        return EasyOcrEngine(gpu=gpu)
    raise ValueError(f"no {family} engine {name!r}")


def load(family: Family, name: str, threads: int = 1) -> float | None:
    """Build the engine in this process unless it is already; the seconds it took (None if
    it was there). ModelUnavailable, with the reason, when it cannot be built."""
    if (family, name) in _loaded:
        return None
    started = time.monotonic()
    try:
        _loaded[family, name] = _build(family, name, threads)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised raw
        reason = f"{name} could not be loaded: {type(exc).__name__}: {exc}"[:500]
        raise ModelUnavailable(reason) from None
    return time.monotonic() - started


def run(
    family: Family,
    name: str,
    threads: int,
    image: ModelImage,
    params: FaceParams | OcrParams,
    detail: bool = True,
) -> tuple[FacesResult | OcrResult, float | None]:
    """One call of engine `name`: (its result, the seconds a first load took, else None).
    `detail`: OCR's detail pass may run (it fits the request's budget)."""
    loaded = load(family, name, threads)
    _set_threads(threads)
    engine = _loaded[family, name]
    if isinstance(params, OcrParams):
        return engine.read(image, params.lang, detail=detail), loaded
    return engine.detect(image, params), loaded
