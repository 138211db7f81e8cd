"""Measure the cost model's coefficients (pipelines/cost.py) on this machine, on one core.

Every figure in the code is "work units per megapixel" (or per image, for YOLO), where one work
unit is one megapixel through one cheap per-pixel pass: here, a Pillow point operation (a
lookup table) on an RGB image. So each coefficient is measured as

    (CPU seconds per megapixel of the operation) / (CPU seconds per megapixel of the point pass)

on the same machine, in the same run, which makes it nearly independent of the machine's speed;
`seconds_per_work_unit` (the point pass itself) is what turns work into seconds here, and
`LIMITS_MAX_WORK` is chosen from it: the default (5000 units, ~17 s at 3.5 ms per unit) leaves
an admitted request inside the 30 s deadline on one core with room for a busy machine. The run
ends with that check: the costliest requests just under the limit, timed, against their
estimate.

    python -m bench.cost_calibration [--quick]   # ~2 min quick, ~6 min full; one core

Writes bench/results/cost.json and bench/COST.md. Compare its "measured" column with the
figures in the code (the "in code" column) and update those that drifted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cost.json"
REPORT = HERE / "COST.md"


def _one_core() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def photo(width: int, height: int) -> Image.Image:
    from skimage import data as skdata

    pixels = skdata.astronaut()  # type: ignore[no-untyped-call]
    return Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS)


def cpu() -> float:
    """CPU seconds of this process and its reaped children (Tesseract runs as one): the price
    is CPU on one core, which other work on the machine does not inflate as it does wall."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Mean CPU seconds of a call, after one warm-up, over at least `repeats` calls and half a
    second of CPU (the clock ticks in 10 ms steps)."""
    fn()
    calls, started = 0, cpu()
    while calls < repeats or (cpu() - started < 0.5 and calls < 500):
        fn()
        calls += 1
    return (cpu() - started) / calls


def encoded(img: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def decode(data: bytes, scale: int = 1) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    if scale > 1:
        img.draft("RGB", (img.width // scale, img.height // scale))
    img.load()
    return img


def measure(quick: bool) -> dict[str, Any]:
    from pipelines import cost
    from pipelines import decode as decode_mod
    from pipelines.ops import enhance, filters, resize

    repeats = 3 if quick else 5
    side = 1500 if quick else 2000
    img = photo(side, side * 3 // 4)
    mp = img.width * img.height / 1e6
    lut = list(range(255, -1, -1)) * 3
    unit = timed(lambda: img.point(lut), repeats * 3) / mp
    rows: list[dict[str, Any]] = []

    def row(name: str, seconds_per_mp: float, in_code: float, per: str = "MP") -> None:
        rows.append(
            {
                "what": name,
                "per": per,
                "seconds": round(seconds_per_mp, 5),
                "measured": round(seconds_per_mp / unit, 2),
                "in_code": in_code,
            }
        )

    # Decoding: JPEG at scales 1..8 fits entropy (per source MP) + pixels (per decoded MP).
    jpeg = encoded(img, "JPEG", quality=90)
    xs, ys = [], []
    for scale in (1, 2, 4, 8):

        def decode_at(s: int = scale) -> object:
            return decode(jpeg, s)

        seconds = timed(decode_at, repeats)
        xs.append(1 / (scale * scale))
        ys.append(seconds / mp)
    slope, intercept = np.polyfit(xs, ys, 1)
    row("decode JPEG entropy", float(intercept), decode_mod.JPEG_ENTROPY_PER_SOURCE_MP)
    row("decode JPEG pixels", float(slope), decode_mod.JPEG_PIXELS_PER_DECODED_MP)
    for fmt in ("PNG", "WEBP", "BMP", "TIFF", "GIF"):
        source = img.convert("P") if fmt == "GIF" else img
        data = encoded(source, fmt)
        in_code = decode_mod.DECODE_WORK_PER_MP[fmt]

        def decoded(d: bytes = data) -> object:
            return decode(d)

        row(f"decode {fmt}", timed(decoded, repeats) / mp, in_code)
    for fmt, options in (
        ("jpeg", {"quality": 85}),
        ("png", {}),
        ("webp", {"quality": 80}),
        ("bmp", {}),
        ("tiff", {}),
    ):

        def encode_as(f: str = fmt, o: dict[str, Any] = options) -> object:
            return encoded(img, f.upper(), **o)

        seconds = timed(encode_as, repeats)
        row(f"encode {fmt}", seconds / mp, cost.ENCODE_WORK_PER_MP[fmt])

    # Resize: a big shrink is mostly the source term, an enlargement mostly the result term.
    big = photo(side * 2, side * 3 // 2)
    big_mp = big.width * big.height / 1e6
    shrink = timed(
        lambda: big.resize((300, 225), Image.Resampling.LANCZOS, reducing_gap=3.0), repeats
    )
    row("resize per source MP", shrink / big_mp, resize.RESIZE_WORK_PER_SOURCE_MP)
    small = photo(500, 375)
    grow = timed(lambda: small.resize((side, side * 3 // 4), Image.Resampling.LANCZOS), repeats)
    row("resize per result MP", grow / mp, resize.RESIZE_WORK_PER_RESULT_MP)
    row("crop (copy)", timed(lambda: img.crop((1, 1, img.width - 1, img.height - 1)), 5) / mp, 0.5)

    # Filters (as pipelines/ops/filters.py applies them).
    from pipelines.limits import Limits
    from pipelines.ops.filters import FilterStep
    from pipelines.ops.registry import OPERATIONS

    apply = OPERATIONS["filter"]
    limits = Limits()

    def filt(**params: Any) -> float:
        step = FilterStep.model_validate({"op": "filter", **params})
        return timed(lambda: apply(img, step, limits), repeats) / mp

    row("filter sharpen (3x3)", filt(name="sharpen"), filters.KERNEL_WORK_PER_MP)
    gaussian = filters.BLUR_WORK_PER_MP["gaussian"]
    row("filter gaussian r=2", filt(name="gaussian", radius=2), gaussian)
    row("filter gaussian r=50", filt(name="gaussian", radius=50), gaussian)
    row("filter blur r=2", filt(name="blur", radius=2), filters.BLUR_WORK_PER_MP["blur"])
    for size in (3, 5) if quick else (3, 5, 9):
        seconds = filt(name="median", size=size) / (size * size)
        row(f"filter median {size} per area", seconds, filters.MEDIAN_WORK_PER_MP_PER_AREA)
    for name, enhancer in (
        ("brightness", ImageEnhance.Brightness),
        ("contrast", ImageEnhance.Contrast),
        ("saturation", ImageEnhance.Color),
        ("sharpness", ImageEnhance.Sharpness),
    ):

        def enhanced(e: Any = enhancer) -> object:
            return e(img).enhance(1.3)

        seconds = timed(enhanced, repeats) / mp
        row(f"enhance {name}", seconds, enhance.ENHANCE_WORK_PER_MP[name])
    rows.extend(models(unit, repeats, quick))
    return {"seconds_per_work_unit": round(unit, 6), "rows": rows}


def models(unit: float, repeats: int, quick: bool) -> list[dict[str, Any]]:
    """Each engine at the working size it runs at (pipelines/sizing.py, ocr.py)."""
    from pipelines import detection, faces, ocr
    from pipelines.sizing import FACES_MAX_SIDE

    out: list[dict[str, Any]] = []

    def row(name: str, seconds: float, per_mp: float, in_code: float, per: str = "MP") -> None:
        out.append(
            {
                "what": name,
                "per": per,
                "seconds": round(seconds / per_mp, 5),
                "measured": round(seconds / per_mp / unit, 2),
                "in_code": in_code,
            }
        )

    import torch

    torch.set_num_threads(1)
    yolo = detection.YoloEngine("yolo11n.yaml", threads=1)
    image = np.zeros((480, 640, 3), dtype=np.uint8) + 90
    params = detection.DetectParams()
    seconds = timed(lambda: yolo.predict([image], [params]), repeats)
    row("YOLO (yolo11n) at 640", seconds, 1.0, detection.YOLO_WORK_AT_640, "image")

    side = FACES_MAX_SIDE
    portrait = np.asarray(photo(side, side * 3 // 4))
    mp = portrait.shape[0] * portrait.shape[1] / 1e6
    haar = faces.HaarEngine()
    fp = faces.FaceParams()
    row("faces haar", timed(lambda: haar.detect(portrait, fp), repeats), mp, faces.HAAR_WORK_PER_MP)
    mtcnn = faces.MtcnnEngine()
    mp_params = faces.FaceParams(engine="mtcnn")
    seconds = timed(lambda: mtcnn.detect(portrait, mp_params), max(1, repeats - 2))
    row("faces mtcnn", seconds, mp, faces.MTCNN_WORK_PER_MP)

    from bench.ai_engines import page_image

    for name, engine_cls in (("tesseract", ocr.TesseractEngine), ("easyocr", ocr.EasyOcrEngine)):
        if quick and name == "easyocr":
            continue
        page = page_image(ocr.OCR_SIDE[name])
        engine: ocr.TesseractEngine | ocr.EasyOcrEngine = engine_cls()
        lang = "eng" if name == "tesseract" else "en"

        def read(e: Any = engine, p: np.ndarray = page, code: str = lang) -> object:
            return e._words(p, code)

        seconds = timed(read, 1)
        page_mp = page.shape[0] * page.shape[1] / 1e6
        row(f"ocr {name}", seconds, page_mp, ocr.OCR_WORK_PER_MP[name])
    return out


def check_limit(seconds_per_unit: float) -> list[dict[str, Any]]:
    """The costliest requests just under LIMITS_MAX_WORK, run as the service runs them (one
    core): their estimate, the seconds it predicts and the seconds they took."""
    from pipelines.limits import Limits
    from pipelines.pipeline import estimate, run_pipeline
    from pipelines.spec import PipelineSpec

    limits = Limits()
    cases = {
        "median 15": {"steps": [{"op": "filter", "name": "median", "size": 15}]},
        "median 5 + gaussian": {
            "steps": [
                {"op": "filter", "name": "median", "size": 5},
                {"op": "filter", "name": "gaussian", "radius": 8},
            ]
        },
        "webp, sharpen, enhance": {
            "steps": [
                {"op": "filter", "name": "sharpen"},
                {"op": "enhance", "contrast": 1.2, "sharpness": 1.5},
            ],
            "format": "webp",
        },
    }
    out = []
    for name, raw in cases.items():
        spec = PipelineSpec.model_validate(raw)
        # The largest 4:3 JPEG this spec may take (work or pixels): price scales with pixels.
        per_mp = estimate(spec, 1000, 750, "JPEG").total / 0.75
        target_mp = min(0.97 * limits.max_work / per_mp, 0.95 * limits.max_pixels / 1e6)
        width = int((target_mp * 1e6 * 4 / 3) ** 0.5)
        height = width * 3 // 4
        data = encoded(photo(width, height), "JPEG", quality=90)
        priced = estimate(spec, width, height, "JPEG").total
        started, cpu_started = time.perf_counter(), cpu()
        # One core's CPU time is the promise; wall time shows how busy the machine was.
        run_pipeline(data, spec, limits, deadline=time.monotonic() + 600)
        took, wall = cpu() - cpu_started, time.perf_counter() - started
        out.append(
            {
                "request": f"{name} on {width}x{height}",
                "estimate": round(priced),
                "predicted_s": round(priced * seconds_per_unit, 2),
                "took_s": round(took, 2),
                "wall_s": round(wall, 2),
                "deadline_s": limits.pipeline_timeout_s,
            }
        )
    return out


def write(result: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Cost model calibration",
        "",
        "`python -m bench.cost_calibration` (one core; "
        f"{'quick' if result['quick'] else 'full'} run). One work unit is one megapixel "
        "through a Pillow point operation on RGB: "
        f"**{result['seconds_per_work_unit'] * 1000:.2f} ms** here. Each figure is the "
        "operation's seconds per megapixel (per image for YOLO) divided by that, so it holds "
        "across machines of one kind; `measured` is this run, `in code` what pipelines/ "
        "uses (update it when they drift apart by more than the noise).",
        "",
        "| what | per | CPU seconds | measured (units) | in code |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['what']} | {r['per']} | {r['seconds']} | {r['measured']} | {r['in_code']} |"
        )
    lines += [
        "",
        "## The limit, checked",
        "",
        "The costliest requests just under `LIMITS_MAX_WORK`, run as the service runs them: "
        "they must finish well inside the deadline on one core (CPU time; wall time is the "
        "machine's, shared with whatever else ran).",
        "",
        "| request | estimate | predicted s | took s (CPU) | wall s | deadline s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in result["limit"]:
        lines.append(
            f"| {c['request']} | {c['estimate']} | {c['predicted_s']} | {c['took_s']} "
            f"| {c['wall_s']} | {c['deadline_s']} |"
        )
    REPORT.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-limit-check", action="store_true")
    args = parser.parse_args()
    _one_core()
    result = measure(args.quick)
    result["quick"] = args.quick
    limit = [] if args.no_limit_check else check_limit(result["seconds_per_work_unit"])
    result["limit"] = limit
    write(result)
    for r in result["rows"]:
        print(f"{r['what']:32} measured {r['measured']:>8} in code {r['in_code']}")
    for c in limit:
        print(c)
    print(f"wrote {REPORT} and {RESULTS}")


if __name__ == "__main__":
    main()
