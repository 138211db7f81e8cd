"""YOLO benchmark: the yolo11n architecture (random weights: right for speed, says nothing of
accuracy) at 640 px on the CPU.

Side by side in one run:
- bare:     ultralytics' predict in one process, batches of 1 and of 8, torch on 2 threads;
- service:  the YoloDetector through a DeploymentHandle (arrays in, no HTTP, no decode) at
            concurrency 1, 8 and 16, with dynamic batching on (max_batch_size=8) and off
            (max_batch_size=1), changed live through user_config.

    python -m bench.yolo            # ~3 min, writes results/yolo.json
    python -m bench.yolo --quick
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import numpy as np
import ray
from ray import serve

from bench.common import machine, photos, serve_cluster, write_json
from bench.report import render
from pipelines.detection import YoloEngine

WEIGHTS = "yolo11n.yaml"
SIZE = 640


def frames() -> list[np.ndarray]:
    return [np.asarray(img) for img in photos((640, 480))]


def bare(images: list[np.ndarray], batch: int, seconds: float) -> dict[str, float]:
    import torch

    engine = YoloEngine(WEIGHTS, threads=2)
    engine.warm_up(SIZE)
    done = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline:
        chunk = [images[(done + i) % len(images)][:, :, ::-1] for i in range(batch)]
        torch.set_num_threads(2)  # ultralytics lowers it after each predict
        t = time.perf_counter()
        engine.model.predict(chunk, imgsz=SIZE, conf=0.25, verbose=False, device="cpu")
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

    async def worker(index: int) -> None:
        nonlocal errors
        i = index
        while time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                await handle.detect.remote(images[i % len(images)], {"image_size": SIZE})
                latencies.append((time.perf_counter() - t) * 1000)
            except Exception:  # noqa: BLE001 - counted, reported
                errors += 1
            i += concurrency

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


def _wait_batch_size(handle: Any, size: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status: dict[str, Any] = handle.status.remote().result(timeout_s=30)
        if status["ready"] and status["max_batch_size"] == size:
            return status
        time.sleep(1)
    raise TimeoutError(f"max_batch_size never became {size}")


def run(seconds: float, concurrencies: list[int]) -> dict[str, Any]:
    images = frames()
    results: dict[str, Any] = {"machine": machine(), "weights": WEIGHTS, "image_size": SIZE}
    results["bare"] = [bare(images, batch, seconds) for batch in (1, 8)]
    with serve_cluster({"MODELS_YOLO_WEIGHTS": WEIGHTS}) as bench:
        bench.cluster.connect()
        try:
            handle = serve.get_deployment_handle("YoloDetector", app_name="image-service")
            for label, size in (("batching_on", 8), ("batching_off", 1)):
                bench.redeploy("YoloDetector", max_batch_size=size, weights=WEIGHTS)
                _wait_batch_size(handle, size)
                asyncio.run(_load(handle, images, 4, 2.0))  # warm-up
                runs = []
                for c in concurrencies:
                    before = handle.status.remote().result(timeout_s=30)
                    run = asyncio.run(_load(handle, images, c, seconds))
                    after = handle.status.remote().result(timeout_s=30)
                    calls = after["batches"] - before["batches"]
                    run["mean_batch"] = round((after["images"] - before["images"]) / calls, 2)
                    runs.append(run)
                results[label] = runs
        finally:
            ray.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = run(4.0 if args.quick else 10.0, [1, 8, 16])
    print(f"wrote {write_json('yolo', results)}")
    print(render())


if __name__ == "__main__":
    main()
