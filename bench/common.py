"""What every benchmark shares: test images, a bounded HTTP load loop, a cluster, reports.

Load loops are bounded in requests and seconds and target 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yaml
from PIL import Image
from skimage import data as skdata

from serve_app.local import DEFAULT_CONFIG, LocalCluster, Ports, free_port

RESULTS = Path(__file__).resolve().parent / "results"


def photos(size: tuple[int, int]) -> list[Image.Image]:
    """Four real photos (scikit-image), resized."""
    loaders: list[Callable[[], np.ndarray]] = [
        skdata.astronaut,
        skdata.coffee,
        skdata.chelsea,
        skdata.rocket,
    ]
    return [
        Image.fromarray(load()).convert("RGB").resize(size, Image.Resampling.LANCZOS)
        for load in loaders
    ]


def photos_jpeg(size: tuple[int, int], count: int = 4, quality: int = 90) -> list[bytes]:
    """Real photos at camera-like size, as JPEG."""
    sources = photos(size)
    out = []
    for i in range(count):
        img = sources[i % len(sources)]
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _load(
    url: str,
    bodies: list[bytes],
    fields: dict[str, str],
    concurrency: int,
    seconds: float,
    max_requests: int,
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(index: int) -> None:
            nonlocal errors, sent
            i = index
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                form = aiohttp.FormData()
                form.add_field("file", bodies[i % len(bodies)], filename="photo.jpg")
                for key, value in fields.items():
                    form.add_field(key, value)
                started = time.perf_counter()
                try:
                    async with session.post(url, data=form) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                elapsed = time.perf_counter() - started
                if ok:
                    latencies.append(elapsed * 1000)
                else:
                    errors += 1
                i += concurrency

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.monotonic() - started
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies) + errors,
        errors=errors,
        seconds=round(wall, 2),
        rps=round(len(latencies) / wall, 2),
        p50_ms=round(_percentile(latencies, 50), 1),
        p95_ms=round(_percentile(latencies, 95), 1),
        p99_ms=round(_percentile(latencies, 99), 1),
    )


def http_load(
    url: str,
    bodies: list[bytes],
    fields: dict[str, str],
    concurrency: int,
    seconds: float = 8.0,
    max_requests: int = 5000,
) -> LoadResult:
    return asyncio.run(_load(url, bodies, fields, concurrency, seconds, max_requests))


def timed_loop(
    fn: Callable[[bytes], object], bodies: list[bytes], seconds: float
) -> dict[str, float]:
    """Run fn over the bodies for `seconds` in this process: items/s and p50/p99 latency."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    started = time.monotonic()
    while time.monotonic() < deadline:
        t = time.perf_counter()
        fn(bodies[i % len(bodies)])
        latencies.append((time.perf_counter() - t) * 1000)
        i += 1
    wall = time.monotonic() - started
    return {
        "per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_percentile(latencies, 99), 2),
    }


@dataclass
class BenchCluster:
    base_url: str
    cluster: LocalCluster
    config: dict[str, Any]
    workdir: Path

    def redeploy(self, deployment: str, **user_config: object) -> None:
        """serve deploy the same config with one deployment's user_config changed."""
        (app,) = self.config["applications"]
        (target,) = [d for d in app["deployments"] if d["name"] == deployment]
        target["user_config"] = {**target.get("user_config", {}), **user_config}
        path = self.workdir / "serve_config.yaml"
        path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.cluster.deploy(path)


@contextmanager
def serve_cluster(env: dict[str, str] | None = None) -> Iterator[BenchCluster]:
    """A Ray head with the app from serve_config.yaml on free ports."""
    import tempfile

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    port = free_port()
    config["http_options"]["port"] = port
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "serve_config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        cluster = LocalCluster(
            Ports.free(), num_cpus=os.cpu_count(), env={"DATA_DIR": f"{tmp}/data", **(env or {})}
        )
        cluster.start(block=True)
        try:
            cluster.deploy(path)
            yield BenchCluster(f"http://127.0.0.1:{port}", cluster, config, Path(tmp))
        finally:
            cluster.stop()


def machine() -> dict[str, Any]:
    import PIL
    import ray

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "pillow": PIL.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o)) + "\n")
    return path
