"""OCR and face detection (issue #9, benchmark 4): images/s through the service vs bare.

Engines: Tesseract and EasyOCR (OCR, on a rendered 1200x500 page of text), Haar and MTCNN
(faces, on the 800x800 astronaut photo). Per engine, one after another:
- bare:     decode the JPEG (Pillow) and call the engine from pipelines/ in this one process,
            sequentially (c=1) and from 2 threads (c=2: what one process gets from 2 cores;
            the EasyOCR and MTCNN engines serialise their calls, so only torch's own threads
            help them); torch on 2 threads;
- service:  POST /api/v1/ocr or /api/v1/detect-faces with `engine=` at concurrency 1 and 4, over
            HTTP (proxy, ingress, decode in the Preprocessor, the OcrReader or FaceDetector),
            result cache off.

    python -m bench.ai_engines [--quick]     # ~3 min on 2 cores, writes results/ai_engines.json
"""

from __future__ import annotations

import argparse
import io
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data as skdata

from bench.common import (
    NO_CACHE,
    finish,
    http_load,
    machine,
    serve_cluster,
    thread_load,
    write_json,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TEXT = (
    "Ray Serve scales image processing on one machine and on Kubernetes. Each request is "
    "validated, decoded once, and handed to the deployment that does the work. Thumbnails, "
    "filters and conversions run in the Preprocessor; detection, text and faces in their own "
    "replicas. The benchmark measures throughput and latency against the bare library."
)


def _jpeg(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def page() -> bytes:
    img = Image.new("RGB", (1200, 500), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 30)
    for i, line in enumerate(textwrap.wrap(TEXT, 62)):
        draw.text((40, 30 + i * 48), line, fill="black", font=font)
    return _jpeg(img)


def page_image(side: int) -> np.ndarray:
    """The benchmark's page of text, scaled so its longest side is `side` (RGB array)."""
    img = Image.open(io.BytesIO(page())).convert("RGB")
    scale = side / max(img.size)
    size = (round(img.width * scale), round(img.height * scale))
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS))


def portrait() -> bytes:
    load: Callable[[], np.ndarray] = skdata.astronaut
    return _jpeg(Image.fromarray(load()).resize((800, 800), Image.Resampling.LANCZOS))


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def engines() -> dict[str, tuple[str, Callable[[], Callable[[np.ndarray], object]], bytes]]:
    """name -> (route, a factory of the bare call, the input)."""
    from pipelines.faces import FaceParams, HaarEngine, MtcnnEngine
    from pipelines.ocr import EasyOcrEngine, TesseractEngine

    def tesseract() -> Callable[[np.ndarray], object]:
        engine = TesseractEngine()
        return lambda image: engine.read(image, "eng")

    def easyocr() -> Callable[[np.ndarray], object]:
        engine = EasyOcrEngine()
        return lambda image: engine.read(image, "en")

    def haar() -> Callable[[np.ndarray], object]:
        engine = HaarEngine()
        params = FaceParams()
        return lambda image: engine.detect(image, params)

    def mtcnn() -> Callable[[np.ndarray], object]:
        engine = MtcnnEngine()
        params = FaceParams()
        return lambda image: engine.detect(image, params)

    text, face = page(), portrait()
    return {
        "tesseract": ("/api/v1/ocr", tesseract, text),
        "easyocr": ("/api/v1/ocr", easyocr, text),
        "haar": ("/api/v1/detect-faces", haar, face),
        "mtcnn": ("/api/v1/detect-faces", mtcnn, face),
    }


# The slow engines get longer points, so that each point sees more than a couple of images.
SLOWER = {"easyocr": 4.0, "tesseract": 2.0}


def run(seconds: float, names: list[str]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(2)
    table = engines()
    results: dict[str, Any] = {"machine": machine(), "seconds_per_point": seconds, "engines": {}}
    for name in names:
        route, factory, body = table[name]
        call = factory()

        def job(data: bytes, call: Callable[[np.ndarray], object] = call) -> object:
            return call(_decode(data))

        job(body)  # warm-up (model load, first-call setup)
        results["engines"][name] = {
            "route": route,
            "seconds_per_point": seconds * SLOWER.get(name, 1.0),
            "bare": [thread_load(job, [body], c, seconds * SLOWER.get(name, 1.0)) for c in (1, 2)],
        }
        del call
    with serve_cluster(NO_CACHE) as bench:
        for name in names:
            route, _, body = table[name]
            url = bench.base_url + route
            fields = {"engine": name}
            http_load(url, [body], fields, 2, seconds=max(2.0, seconds / 2))  # warm-up, load
            point = seconds * SLOWER.get(name, 1.0)
            results["engines"][name]["service"] = [
                http_load(url, [body], fields, c, seconds=point) for c in (1, 4)
            ]
    finish(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--engines", default="tesseract,easyocr,haar,mtcnn")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    results = run(seconds, args.engines.split(","))
    print(f"wrote {write_json('ai_engines', results)}")


if __name__ == "__main__":
    main()
