"""YOLO benchmark (issue #9, benchmark 3): the yolo11n architecture (random weights: right for
speed and batching, says nothing of accuracy) at 640 px.

Side by side in one run:
- bare:     ultralytics' batched predict loop in one process (batches of 1, 4, 8; on a GPU 1, 8,
            16, 32), torch on 2 threads, measured while the Ray cluster is up and idle (as in
            the thumbnail benchmark): the ceiling is its best. The same loop before the cluster
            starts is kept too (`bare_cluster_down`): the gap is what an idle cluster's
            background work costs torch's two-thread OpenMP loops on 2 cores;
- service:  the YoloDetector through a DeploymentHandle (arrays in: no HTTP, no decode) at
            concurrency 1, 8, 16 and 32, with dynamic batching on (serve_config.yaml's
            max_batch_size, 4; 16 on a GPU) and off (max_batch_size=1), changed live
            through user_config;
- profile:  on the CPU, serve_config.yaml's other YoloDetector profile: two replicas of one
            torch thread each instead of one of two (c=1 and c=16, batching on);
- http:     the whole service, POST /api/v1/detect-objects with a 640x480 JPEG (proxy, ingress,
            decode in the Preprocessor, the detector), batching on.
The result cache is off (CACHE_ENABLED=false). On a shared 2-core VM one window of a few
seconds swings by 20%, and the ratio's denominator is a maximum: every bare and handle figure
is the median of ROUNDS windows, taken in turns (all points once, then again), so that a
slow or fast spell of the machine falls on every point alike.

    python -m bench.yolo                  # ~8 min on 2 cores, writes results/yolo.json
    python -m bench.yolo --quick
    python -m bench.yolo --device cuda    # on a GPU machine (bench/gpu_check.sh): yolo_gpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import ray
from PIL import Image
from ray import serve

from bench.common import (
    NO_CACHE,
    BenchCluster,
    finish,
    http_load,
    live_replicas,
    machine,
    photos,
    serve_cluster,
    write_json,
)
from pipelines.detection import YoloEngine

WEIGHTS = "yolo11n.yaml"
SIZE = 640
CONCURRENCIES = [1, 8, 16, 32]
ROUNDS = 3
# serve_config.yaml's CPU throughput profile (see its YoloDetector comment).
TWO_BY_ONE = {"replicas": 2, "num_cpus": 0.25, "threads": 1}


def frames() -> list[np.ndarray]:
    return [np.asarray(img) for img in photos((640, 480))]


def jpegs(images: list[np.ndarray]) -> list[bytes]:
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def bare(
    engine: YoloEngine, images: list[np.ndarray], batch: int, seconds: float
) -> dict[str, Any]:
    import torch

    done = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline and done < 20_000:
        chunk = [images[(done + i) % len(images)][:, :, ::-1] for i in range(batch)]
        if engine.device == "cpu":
            torch.set_num_threads(2)  # ultralytics lowers it after each predict
        t = time.perf_counter()
        engine.model.predict(chunk, imgsz=SIZE, conf=0.25, verbose=False, device=engine.device)
        latencies.append((time.perf_counter() - t) * 1000)
        done += batch
    wall = time.monotonic() - started
    return {
        "batch": batch,
        "img_per_s": round(done / wall, 2),
        "batch_p50_ms": round(statistics.median(latencies), 1),
    }


async def _load(
    handle: Any, images: list[np.ndarray], concurrency: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    per_worker = max(1, 20_000 // concurrency)

    async def worker(index: int) -> None:
        nonlocal errors
        i = index
        done = 0
        while time.monotonic() < deadline and done < per_worker:
            t = time.perf_counter()
            try:
                await handle.detect.remote(images[i % len(images)], {"image_size": SIZE})
                latencies.append((time.perf_counter() - t) * 1000)
            except Exception:  # noqa: BLE001 - counted, reported
                errors += 1
            i += concurrency
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall = time.monotonic() - started
    return {
        "concurrency": concurrency,
        "img_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "errors": errors,
    }


def rounds_of(
    measure: Callable[[Any], dict[str, Any]], points: list[Any], key: str
) -> list[dict[str, Any]]:
    """`measure(point)` for every point, ROUNDS times in turns; per point, the round whose
    `key` is the median (its other figures with it) plus every round's `key`."""
    runs: dict[Any, list[dict[str, Any]]] = {point: [] for point in points}
    for _ in range(ROUNDS):
        for point in points:
            runs[point].append(measure(point))
    out = []
    for point in points:
        ranked = sorted(runs[point], key=lambda r: r[key])
        out.append({**ranked[len(ranked) // 2], f"{key}_rounds": [r[key] for r in runs[point]]})
    return out


def _wait_batch_size(handle: Any, size: int | None) -> dict[str, Any]:
    """The replica's status once it is ready (and, given a size, batches up to it)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            status: dict[str, Any] = handle.status.remote().result(timeout_s=30)
            if status["ready"] and size in (None, status["max_batch_size"]):
                return status
        except Exception:  # noqa: BLE001 - a replica still starting; ask again
            pass
        time.sleep(1)
    raise TimeoutError(f"max_batch_size never became {size}")


def _two_by_one(
    bench: BenchCluster, handle: Any, images: list[np.ndarray], seconds: float, batch: int
) -> list[dict[str, Any]]:
    """The CPU throughput profile: TWO_BY_ONE's replicas, each torch on one thread, at c=1 and
    16 (batching on). Measured once the new replicas (none of the old) all run."""
    old = {a.actor_id for a in live_replicas("YoloDetector")}
    threads = TWO_BY_ONE["threads"]
    actor = {
        "num_cpus": TWO_BY_ONE["num_cpus"],
        "runtime_env": {"env_vars": {"OMP_NUM_THREADS": str(threads)}},
    }
    bench.redeploy(
        "YoloDetector",
        actor,
        {"min_replicas": TWO_BY_ONE["replicas"]},
        max_batch_size=batch,
        threads=threads,
        weights=WEIGHTS,
    )
    deadline = time.monotonic() + 300
    while True:
        now = {a.actor_id for a in live_replicas("YoloDetector")}
        if len(now) == TWO_BY_ONE["replicas"] and not now & old:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"YoloDetector never ran {TWO_BY_ONE}; replicas {now}")
        time.sleep(2)
    _wait_batch_size(handle, batch)
    asyncio.run(_load(handle, images, 4, 2.0))  # warm-up, both replicas

    def point(c: int) -> dict[str, Any]:
        return asyncio.run(_load(handle, images, c, seconds))

    return rounds_of(point, [1, 16], "img_per_s")


def run(seconds: float, concurrencies: list[int], device: str) -> dict[str, Any]:
    gpu = device != "cpu"
    images = frames()
    results: dict[str, Any] = {
        "machine": machine(),
        "weights": WEIGHTS,
        "image_size": SIZE,
        "device": device,
        "seconds_per_point": seconds,
    }
    engine = YoloEngine(WEIGHTS, device="cuda:0" if gpu else "cpu", threads=None if gpu else 2)
    engine.warm_up(SIZE)
    batches = [1, 8, 16, 32] if gpu else [1, 4, 8]

    def bare_point(batch: int) -> dict[str, Any]:
        return bare(engine, images, batch, seconds)

    results["bare_cluster_down"] = rounds_of(bare_point, batches, "img_per_s")
    # On a GPU the replica gets the whole device and waits longer for a batch to fill.
    actor = {"num_gpus": 1} if gpu else None
    wait: dict[str, Any] = {"batch_wait_timeout_s": 0.02} if gpu else {}
    with serve_cluster({**NO_CACHE, "MODELS_YOLO_WEIGHTS": WEIGHTS}) as bench:
        bench.cluster.connect()
        # serve_config.yaml's batch size on the CPU; on a GPU bigger batches pay.
        on_size = (
            16 if gpu else int(bench.deployment("YoloDetector")["user_config"]["max_batch_size"])
        )
        try:
            handle = serve.get_deployment_handle("YoloDetector", app_name="image-service")
            _wait_batch_size(handle, None)  # the cluster is up and idle: the bare loop's turn
            results["bare"] = rounds_of(bare_point, batches, "img_per_s")

            def service_point(c: int) -> dict[str, Any]:
                before = handle.status.remote().result(timeout_s=30)
                run = asyncio.run(_load(handle, images, c, seconds))
                after = handle.status.remote().result(timeout_s=30)
                calls = max(1, after["batches"] - before["batches"])
                run["mean_batch"] = round((after["images"] - before["images"]) / calls, 2)
                return run

            for label, size in (("batching_on", on_size), ("batching_off", 1)):
                bench.redeploy("YoloDetector", actor, max_batch_size=size, weights=WEIGHTS, **wait)
                status = _wait_batch_size(handle, size)
                results.setdefault("service_device", status.get("device"))
                asyncio.run(_load(handle, images, 4, 2.0))  # warm-up
                results[label] = rounds_of(service_point, concurrencies, "img_per_s")
            # The whole service over HTTP, batching on again.
            bench.redeploy("YoloDetector", actor, max_batch_size=on_size, **wait)
            _wait_batch_size(handle, on_size)
            url = f"{bench.base_url}/api/v1/detect-objects"
            bodies = jpegs(images)
            http_load(url, bodies, {}, 4, seconds=2.0)  # warm-up
            results["http_batching_on"] = [
                http_load(url, bodies, {}, c, seconds=seconds) for c in concurrencies
            ]
            if not gpu:
                results["two_replicas_one_thread"] = _two_by_one(
                    bench, handle, images, seconds, on_size
                )
        finally:
            ray.shutdown()
    finish(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 4.0)  # per window; ROUNDS of them
    results = run(seconds, CONCURRENCIES, args.device)
    name = "yolo" if args.device == "cpu" else "yolo_gpu"
    print(f"wrote {write_json(name, results)}")


if __name__ == "__main__":
    main()
