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

Then, issue #18, models fed at the size they need: faces (haar, mtcnn), objects (YOLO, the
offline person detector) and OCR (tesseract) on a 6000x4500 JPEG against the same picture at
1500x1125, through the service: seconds per request at each size, and agreement (boxes found
on the big one, in its pixels, against the small one's scaled by 4: matched at IoU >= 0.7; OCR
words of the small one also read on the big one).

    python -m bench.ai_engines [--quick]     # ~4 min on 2 cores, writes results/ai_engines.json
    python -m bench.ai_engines --engines none --sizes   # only the size rows
"""

from __future__ import annotations

import argparse
import io
import statistics
import textwrap
import time
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


def people_photo(width: int, height: int) -> bytes:
    """ultralytics' zidane.jpg (two people, two faces), cropped to 4:3, at width x height."""
    from pathlib import Path

    import ultralytics

    img = Image.open(Path(ultralytics.__file__).parent / "assets" / "zidane.jpg").convert("RGB")
    side = img.height * 4 // 3
    left = (img.width - side) // 2
    img = img.crop((left, 0, left + side, img.height))
    return _jpeg(img.resize((width, height), Image.Resampling.LANCZOS))


def text_photo(width: int, height: int) -> bytes:
    """Lines of text filling a 4:3 page, legible at 1500x1125 (~24 px letters there)."""
    img = Image.new("RGB", (6000, 4500), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 110)
    for i, line in enumerate(textwrap.wrap(TEXT, 48)[:14]):
        draw.text((260, 260 + i * 280), line, fill="black", font=font)
    return _jpeg(img.resize((width, height), Image.Resampling.LANCZOS))


BIG, SMALL = (6000, 4500), (1500, 1125)


def _agreement(big: list[dict[str, Any]], small: list[dict[str, Any]], scale: float) -> float:
    """The share of the small result's boxes, scaled, that a big-result box matches at IoU
    >= 0.7 (1.0 when both found nothing)."""
    from pipelines.results import Box

    if not small:
        return 1.0 if not big else 0.0
    found = [Box(**b["box"]) for b in big]
    matched = 0
    for item in small:
        b = item["box"]
        target = Box(x1=b["x1"] * scale, y1=b["y1"] * scale, x2=b["x2"] * scale, y2=b["y2"] * scale)
        matched += max((target.iou(f) for f in found), default=0.0) >= 0.7
    return round(matched / len(small), 3)


def _words(text: str) -> set[str]:
    return {w.strip(".,;:").lower() for w in text.split() if len(w.strip(".,;:")) > 2}


def sizes(base_url: str, repeats: int) -> dict[str, Any]:
    """Each model on the 6000x4500 photo and on the 1500x1125 one, through the service."""
    import requests

    cases = [
        ("faces haar", "/api/v1/detect-faces", {"engine": "haar"}, people_photo, "faces"),
        ("faces mtcnn", "/api/v1/detect-faces", {"engine": "mtcnn"}, people_photo, "faces"),
        ("objects (YOLO)", "/api/v1/detect-objects", {}, people_photo, "detections"),
        ("ocr tesseract", "/api/v1/ocr", {"engine": "tesseract"}, text_photo, "blocks"),
    ]
    rows: dict[str, Any] = {}
    with requests.Session() as http:
        for name, route, fields, make, key in cases:
            answers: dict[str, Any] = {}
            for label, size in (("big", BIG), ("small", SMALL)):
                body = make(*size)
                times = []
                for _ in range(repeats + 1):  # the first warms the engine up
                    started = time.monotonic()
                    answer = http.post(
                        base_url + route, files={"file": ("p.jpg", body, "image/jpeg")},
                        data=fields, timeout=120,
                    )  # fmt: skip
                    times.append(time.monotonic() - started)
                answers[label] = {
                    "status": answer.status_code,
                    "seconds": round(statistics.median(times[1:]), 3),
                    "bytes": len(body),
                    "json": answer.json(),
                }
            big, small = answers["big"]["json"], answers["small"]["json"]
            ok = answers["big"]["status"] == answers["small"]["status"] == 200
            row: dict[str, Any] = {
                "route": route,
                "status": [answers["big"]["status"], answers["small"]["status"]],
                "big_s": answers["big"]["seconds"],
                "small_s": answers["small"]["seconds"],
                "found": [len(big.get(key, [])), len(small.get(key, []))] if ok else None,
            }
            if ok and key == "blocks":
                legible = _words(small["text"])
                row["agreement"] = round(
                    len(legible & _words(big["text"])) / max(1, len(legible)), 3
                )
            elif ok:
                row["agreement"] = _agreement(big[key], small[key], BIG[0] / SMALL[0])
            rows[name] = row
    return rows


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


def run(seconds: float, names: list[str], with_sizes: bool = True) -> dict[str, Any]:
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
    # The offline person detector stands in for COCO weights (none ship offline).
    env = {**NO_CACHE, "MODELS_YOLO_WEIGHTS": "pkg:fall_detection/models/best.pt"}
    with serve_cluster(env) as bench:
        if with_sizes:
            results["sizes"] = sizes(bench.base_url, repeats=1 if seconds < 4 else 3)
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
    parser.add_argument("--engines", default="tesseract,easyocr,haar,mtcnn", help="or none")
    parser.add_argument("--no-sizes", action="store_true", help="skip the 6000 vs 1500 rows")
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    names = [] if args.engines == "none" else args.engines.split(",")
    results = run(seconds, names, with_sizes=not args.no_sizes)
    print(f"wrote {write_json('ai_engines', results)}")


if __name__ == "__main__":
    main()
