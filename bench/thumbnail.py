"""Thumbnail benchmark: JPEG photos ~1920 px -> 300x300 (fit and fill), JPEG q85.

Side by side in one run on the same machine:
- bare:       Pillow alone in one process (open, JPEG draft, thumbnail/fit, save): per core;
- ceiling:    the bare loop in one process per core, all cores at once;
- pipeline:   our pipelines.run_pipeline in one process (what a replica computes);
- service:    HTTP through Serve's proxy -> Ingress -> Preprocessor, at concurrency 1/8/32,
              with Ray Serve's defaults and with RAY_SERVE_THROUGHPUT_OPTIMIZED=1.

    python -m bench.thumbnail            # full run (~3 min), writes results/thumbnail.json
    python -m bench.thumbnail --quick    # shorter loops, for a smoke run
"""

from __future__ import annotations

import argparse
import io
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

from PIL import Image, ImageOps

from bench.common import http_load, machine, photos_jpeg, serve_cluster, timed_loop, write_json
from bench.report import render
from pipelines.limits import Limits
from pipelines.pipeline import run_pipeline
from pipelines.spec import PipelineSpec

BOX = (300, 300)
JOBS: dict[str, dict[str, str]] = {
    "fit": {"width": "300", "height": "300", "quality": "85"},
    "fill": {"width": "300", "height": "300", "mode": "fill", "quality": "85"},
}
VARIANTS: dict[str, dict[str, str]] = {
    "serve_default": {},
    "serve_throughput_optimized": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}


def bare(job: str, data: bytes) -> bytes:
    """The job in plain Pillow, the way a careful hand-written loop would do it."""
    img: Image.Image = Image.open(io.BytesIO(data))
    img.draft("RGB", BOX)
    if job == "fit":
        img.thumbnail(BOX, Image.Resampling.LANCZOS)
    else:
        img = ImageOps.fit(img, BOX, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def _pipeline(data: bytes, *, spec: PipelineSpec, limits: Limits) -> bytes:
    return run_pipeline(data, spec, limits).data


def _bare_worker(args: tuple[str, list[bytes], float]) -> dict[str, float]:
    job, bodies, seconds = args
    return timed_loop(lambda d: bare(job, d), bodies, seconds)


def images() -> list[bytes]:
    return photos_jpeg((1920, 1920), 4) + photos_jpeg((1920, 1440), 4)


def run(seconds: float, concurrencies: list[int]) -> dict[str, Any]:
    bodies = images()
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {"machine": machine(), "jobs": {}}
    limits = Limits()
    for job, fields in JOBS.items():
        spec = PipelineSpec.model_validate(
            {
                "steps": [{"op": "resize", **{k: v for k, v in fields.items() if k != "quality"}}],
                "quality": 85,
            }
        )
        entry: dict[str, Any] = {
            "bare_per_core": timed_loop(partial(bare, job), bodies, seconds),
            "pipeline_per_core": timed_loop(
                partial(_pipeline, spec=spec, limits=limits), bodies, seconds
            ),
        }
        with ProcessPoolExecutor(cores) as pool:
            per_worker = list(pool.map(_bare_worker, [(job, bodies, seconds)] * cores))
        entry["bare_ceiling"] = {"per_s": round(sum(w["per_s"] for w in per_worker), 2)}
        results["jobs"][job] = entry
    for variant, env in VARIANTS.items():
        with serve_cluster(env) as bench:
            url = f"{bench.base_url}/api/v1/resize"
            http_load(url, bodies, JOBS["fit"], 4, seconds=2)  # warm-up: replicas, connections
            for job, fields in JOBS.items():
                runs = [http_load(url, bodies, fields, c, seconds=seconds) for c in concurrencies]
                results["jobs"][job][variant] = runs
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 8.0
    results = run(seconds, [1, 8, 32])
    path = write_json("thumbnail", results)
    print(f"wrote {path}")
    print(render())


if __name__ == "__main__":
    main()
