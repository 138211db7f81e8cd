"""Thumbnail and 3-step pipeline benchmarks (issue #9, benchmarks 1 and 2).

Inputs: 4 square 1920x1920 and 4 4:3 1920x1440 JPEG photos (q90). Jobs:
- fit:       fit into 300x300, JPEG q85   (service `/resize` width/height; thumbor
             `/unsafe/fit-in/300x300/`);
- fill:      fill 300x300 (crop to fill), JPEG q85   (service `mode=fill`; thumbor's bare
             `300x300`, which crops to fill);
- pipeline3: fit 300x300, sharpen, WebP q85   (service `/process` with three steps; thumbor
             `fit-in/300x300/filters:sharpen(1,1,false):format(webp)`: thumbor's sharpen is an
             unsharp mask, ours and the bare loop's Pillow's 3x3 SHARPEN kernel).

Side by side in one run, at concurrency 1, 8 and 32:
- bare:     the job in plain Pillow, in this one process, `concurrency` threads (Pillow releases
            the GIL while it decodes, resizes and encodes, so one process uses every core): the
            ceiling; plus, for reference and before the servers start, one process per core and
            our own `run_pipeline` on one core (what a replica computes);
- thumbor:  over HTTP (bench/thumbor_peer.py: file loader, no storage, one process per core);
- service:  over HTTP through HAProxy and the app as serve_config.yaml deploys it, with the
            result cache off (CACHE_ENABLED=false; bench.cache measures the cache), the JPEG
            uploaded in every request;
- service, stored image: the same, the JPEGs uploaded once beforehand and named by `image_id`
            (read from the service's storage, as thumbor reads them from disk: the like-for-like
            row next to thumbor's file loader).
Both servers are up throughout (each idle while the other is measured); every point is measured
bare, thumbor, service, service with stored images in turn, the whole sequence twice, and each
point keeps its faster round: on a machine shared with other work a burst of load then hits
them all alike. The load client (aiohttp, one process) shares the machine with whichever server
it measures.

    python -m bench.thumbnail                   # all three jobs (~7 min on 2 cores)
    python -m bench.thumbnail --quick           # a short smoke run (one round, 2 s a point)
    python -m bench.thumbnail --jobs pipeline3  # one job (bench.pipeline3 does this)
    python -m bench.thumbnail --env RAY_SERVE_THROUGHPUT_OPTIMIZED=1  # a service variant
Writes results/thumbnail.json (fit, fill) and results/pipeline3.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from bench import thumbor_peer
from bench.common import (
    NO_CACHE,
    LoadResult,
    finish,
    form_load,
    get_load,
    http_load,
    machine,
    serve_cluster,
    stored_forms,
    thread_load,
    thumbnail_sources,
    timed_loop,
    upload_images,
    write_json,
)
from pipelines.limits import Limits
from pipelines.pipeline import run_pipeline
from pipelines.spec import PipelineSpec

BOX = (300, 300)
CONCURRENCIES = [1, 8, 32]


def bare_fit(data: bytes) -> bytes:
    """The job in plain Pillow, the way a careful hand-written loop would do it."""
    img: Image.Image = Image.open(io.BytesIO(data))
    img.draft("RGB", BOX)
    img.thumbnail(BOX, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def bare_fill(data: bytes) -> bytes:
    img: Image.Image = Image.open(io.BytesIO(data))
    img.draft("RGB", BOX)
    img = ImageOps.fit(img, BOX, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def bare_pipeline3(data: bytes) -> bytes:
    img: Image.Image = Image.open(io.BytesIO(data))
    img.draft("RGB", BOX)
    img.thumbnail(BOX, Image.Resampling.LANCZOS)
    img = img.filter(ImageFilter.SHARPEN)
    out = io.BytesIO()
    img.save(out, "WEBP", quality=85, method=4)
    return out.getvalue()


@dataclass(frozen=True)
class Job:
    name: str
    title: str
    bare: Callable[[bytes], bytes]
    spec: dict[str, Any]  # our pipeline, for /process and run_pipeline
    route: str  # the service's endpoint
    fields: dict[str, str]  # its form fields
    thumbor: str  # thumbor's options between /unsafe/ and the image


PIPELINE3 = {
    "steps": [
        {"op": "resize", "width": 300, "height": 300},
        {"op": "filter", "name": "sharpen"},
    ],
    "format": "webp",
    "quality": 85,
}

JOBS = {
    job.name: job
    for job in (
        Job(
            "fit",
            "fit into 300x300, JPEG q85",
            bare_fit,
            {"steps": [{"op": "resize", "width": 300, "height": 300}], "quality": 85},
            "/api/v1/resize",
            {"width": "300", "height": "300", "quality": "85"},
            "fit-in/300x300",
        ),
        Job(
            "fill",
            "fill 300x300 (crop), JPEG q85",
            bare_fill,
            {
                "steps": [{"op": "resize", "width": 300, "height": 300, "mode": "fill"}],
                "quality": 85,
            },
            "/api/v1/resize",
            {"width": "300", "height": "300", "mode": "fill", "quality": "85"},
            "300x300",
        ),
        Job(
            "pipeline3",
            "3 steps: fit 300x300, sharpen, WebP q85",
            bare_pipeline3,
            PIPELINE3,
            "/api/v1/process",
            {"pipeline": json.dumps(PIPELINE3)},
            "fit-in/300x300/filters:sharpen(1.0,1.0,false):format(webp)",
        ),
    )
}


def _pipeline(data: bytes, *, spec: PipelineSpec, limits: Limits) -> bytes:
    return run_pipeline(data, spec, limits).data


def _per_core_worker(args: tuple[str, list[bytes], float]) -> dict[str, float]:
    name, bodies, seconds = args
    return timed_loop(JOBS[name].bare, bodies, seconds)


def measure_reference(job: Job, bodies: list[bytes], seconds: float) -> dict[str, Any]:
    """The job on one core (bare and our run_pipeline), and one bare process per core."""
    cores = os.cpu_count() or 1
    spec = PipelineSpec.model_validate(job.spec)
    entry: dict[str, Any] = {
        "bare_per_core": timed_loop(job.bare, bodies, seconds),
        "pipeline_per_core": timed_loop(
            partial(_pipeline, spec=spec, limits=Limits()), bodies, seconds
        ),
    }
    with ProcessPoolExecutor(cores) as pool:
        per_worker = list(pool.map(_per_core_worker, [(job.name, bodies, seconds)] * cores))
    entry["bare_processes"] = {"per_s": round(sum(w["per_s"] for w in per_worker), 2)}
    return entry


def _best(runs: list[LoadResult]) -> dict[str, Any]:
    """The fastest of a point's rounds (other users of the machine only ever slow a round
    down), with every round's rate kept beside it."""
    best = max(runs, key=lambda r: r.rps)
    return {**asdict(best), "rps_rounds": [r.rps for r in runs]}


def run(
    jobs: list[str],
    seconds: float,
    cs: list[int],
    env: dict[str, str],
    with_thumbor: bool,
    rounds: int = 2,
) -> dict[str, dict[str, Any]]:
    """Both servers up at once; each point is measured bare, thumbor, service in turn, and the
    whole sequence `rounds` times, so a burst of load from elsewhere hits all three alike."""
    bodies = thumbnail_sources()
    out: dict[str, dict[str, Any]] = {}
    for name in jobs:
        job = JOBS[name]
        out[name] = {"title": job.title, "route": job.route, "thumbor_options": job.thumbor}
        out[name].update(measure_reference(job, bodies, seconds))
    thumbor_info: dict[str, Any] = {"available": thumbor_peer.available() and with_thumbor}
    service_env = {**NO_CACHE, **env}
    raw: dict[tuple[str, str, int], list[LoadResult]] = {}
    with ExitStack() as stack:
        thumbor = None
        if thumbor_info["available"]:
            thumbor = stack.enter_context(thumbor_peer.thumbor_server(bodies))
            thumbor_info.update(version=thumbor.version, processes=thumbor.processes)
        bench = stack.enter_context(serve_cluster(service_env))
        ids = upload_images(bench.base_url, bodies)
        for name in jobs:  # warm-up: replicas, connections, thumbor's workers
            job = JOBS[name]
            http_load(bench.base_url + job.route, bodies, job.fields, 8, seconds=2)
            form_load(bench.base_url + job.route, stored_forms(ids, job.fields), 8, seconds=1)
            if thumbor:
                get_load(thumbor.urls(job.thumbor), 8, seconds=1)
        for _ in range(rounds):
            for name in jobs:
                job = JOBS[name]
                for c in cs:
                    raw.setdefault((name, "bare", c), []).append(
                        thread_load(job.bare, bodies, c, seconds)
                    )
                    if thumbor:
                        raw.setdefault((name, "thumbor", c), []).append(
                            get_load(thumbor.urls(job.thumbor), c, seconds=seconds)
                        )
                    raw.setdefault((name, "service", c), []).append(
                        http_load(bench.base_url + job.route, bodies, job.fields, c, seconds)
                    )
                    stored = stored_forms(ids, job.fields)
                    raw.setdefault((name, "service_stored", c), []).append(
                        form_load(bench.base_url + job.route, stored, c, seconds)
                    )
    for (name, system, _c), runs in raw.items():
        out[name].setdefault(system, []).append(_best(runs))
    for entry in out.values():
        entry["thumbor_setup"] = thumbor_info
        entry["service_env"] = service_env
        entry["seconds_per_point"] = seconds
        entry["rounds"] = rounds
    return out


def main(default_jobs: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per point")
    parser.add_argument("--jobs", default=",".join(default_jobs or JOBS))
    parser.add_argument("--seconds", type=float, default=None, help="per measured point")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per point (best kept)")
    parser.add_argument("--no-thumbor", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the cluster")
    args = parser.parse_args()
    jobs = [j for j in args.jobs.split(",") if j]
    seconds = args.seconds or (2.0 if args.quick else 4.0)
    rounds = args.rounds or (1 if args.quick else 2)
    env = dict(item.split("=", 1) for item in args.env)
    started = machine()
    results = run(jobs, seconds, CONCURRENCIES, env, not args.no_thumbor, rounds)
    for file, names in (("thumbnail", ["fit", "fill"]), ("pipeline3", ["pipeline3"])):
        done = {n: results[n] for n in names if n in results}
        if done:
            payload: dict[str, Any] = {"machine": dict(started), "jobs": done}
            finish(payload)
            print(f"wrote {write_json(file, payload)}")


if __name__ == "__main__":
    main()
