"""Memory (issue #9, benchmark 5): the whole cluster's resident memory idle, and its peak while
16 clients upload ~20 MB JPEGs.

The cluster is every process of the Ray head this benchmark starts (GCS, raylet, dashboard and
its agents, Serve's controller and proxy, every replica), as serve_config.yaml deploys it with
the default settings. Figures: the sum of their RSS (what `ps` shows; pages they share, such as
Ray's object store and shared libraries, count once per process) and of their PSS (shared pages
split among the sharers: the memory the cluster really takes).

The flood: 16 clients POST a ~20 MB 5200x3900 JPEG to /api/v1/resize (a different width each
time, so the result cache never answers) for a bounded time; memory is sampled every 0.5 s.
Bounded means the peak in the flood's second half is not above the first half's by more than
10% (no growth with the number of requests) and memory settles after it.

    python -m bench.memory [--quick]      # ~2 min, writes results/memory.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import threading
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import psutil
from PIL import Image
from skimage import data as skdata

from bench.common import (
    BenchCluster,
    LoadResult,
    _drive,
    _local_only,
    cluster_memory,
    cluster_processes,
    finish,
    machine,
    serve_cluster,
    write_json,
)

GIB = 2**30
CLIENTS = 16


def big_jpeg(target_mb: float = 20.0) -> bytes:
    """A 5200x3900 photo with grain, at the quality that brings it to about target_mb."""
    rng = np.random.default_rng(7)
    load: Callable[[], np.ndarray] = skdata.astronaut
    photo = Image.fromarray(load()).resize((5200, 3900), Image.Resampling.BILINEAR)
    base = np.asarray(photo, dtype=np.int16)
    grain = rng.integers(-60, 60, size=base.shape, dtype=np.int16)
    img = Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))
    best = b""
    for quality in (95, 97, 98, 99):
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=quality)
        best = buffer.getvalue()
        if len(best) >= target_mb * 1e6:
            break
    return best


class Sampler:
    """The cluster's memory every `interval` seconds, in a thread."""

    def __init__(self, bench: BenchCluster, interval: float = 0.5) -> None:
        self.bench = bench
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []  # (t, rss, pss, processes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            memory = cluster_memory(self.bench.cluster, pss=True)
            self.samples.append(
                (time.monotonic() - start, memory["rss"], memory["pss"], memory["processes"])
            )
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def breakdown(bench: BenchCluster) -> list[dict[str, Any]]:
    """Each process of the cluster: what it is, its RSS and PSS in MiB, largest first."""
    rows = []
    for proc in cluster_processes(bench.cluster):
        try:
            info = proc.memory_full_info()
            title = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        rows.append(
            {
                "process": _name(title) or proc.name(),
                "rss_mib": round(info.rss / 2**20),
                "pss_mib": round(info.pss / 2**20),
            }
        )
    return sorted(rows, key=lambda r: -int(r["rss_mib"]))


def _name(title: str) -> str:
    """ray::ServeReplica:image-service:Preprocessor -> ServeReplica:image-service:Preprocessor;
    /path/bin/gcs_server --flags -> gcs_server; python -m ray.dashboard... -> dashboard..."""
    if title.startswith("ray::"):
        return title.split()[0].removeprefix("ray::")
    words = title.split()
    for word in words:
        if word.endswith(".py"):
            return word.rsplit("/", 1)[-1]
    return words[0].rsplit("/", 1)[-1] if words else ""


def flood(url: str, body: bytes, seconds: float) -> LoadResult:
    _local_only(url)

    async def send(session: aiohttp.ClientSession, i: int) -> bool:
        form = aiohttp.FormData()
        form.add_field("file", body, filename="big.jpg", content_type="image/jpeg")
        form.add_field("width", str(200 + i % 200))  # a new cache key every time
        form.add_field("height", "300")
        async with session.post(url, data=form) as response:
            await response.read()
            return response.status == 200

    return asyncio.run(_drive(send, CLIENTS, seconds, max_requests=2000, timeout_s=120))


def run(seconds: float, settle: float) -> dict[str, Any]:
    body = big_jpeg()
    results: dict[str, Any] = {"machine": machine(), "upload_mb": round(len(body) / 1e6, 1)}
    with serve_cluster() as bench:
        time.sleep(settle)  # let start-up work (imports, first health checks) finish
        idle = cluster_memory(bench.cluster, pss=True)
        results["idle"] = {
            "rss_gib": round(idle["rss"] / GIB, 2),
            "pss_gib": round(idle["pss"] / GIB, 2),
            "processes": idle["processes"],
            "by_process": breakdown(bench),
        }
        url = f"{bench.base_url}/api/v1/resize"
        with Sampler(bench) as sampler:
            load = flood(url, body, seconds)
            flood_end = sampler.samples[-1][0] if sampler.samples else 0.0
            time.sleep(settle)
        after = cluster_memory(bench.cluster, pss=True)
    samples = [s for s in sampler.samples if s[0] <= flood_end]
    half = flood_end / 2
    first = max((s[1] for s in samples if s[0] <= half), default=0)
    second = max((s[1] for s in samples if s[0] > half), default=0)
    peak_rss = max((s[1] for s in samples), default=0)
    peak_pss = max((s[2] for s in samples), default=0)
    results["flood"] = {
        "clients": CLIENTS,
        "load": load,
        "peak_rss_gib": round(peak_rss / GIB, 2),
        "peak_pss_gib": round(peak_pss / GIB, 2),
        "peak_first_half_rss_gib": round(first / GIB, 2),
        "peak_second_half_rss_gib": round(second / GIB, 2),
        "after_rss_gib": round(after["rss"] / GIB, 2),
        "after_pss_gib": round(after["pss"] / GIB, 2),
        "bounded": bool(second <= first * 1.10),
        "most_processes": max((s[3] for s in samples), default=0),
        # (seconds, RSS GiB, PSS GiB, processes): a new replica (autoscaling) adds a process
        "samples": [
            (round(t, 1), round(r / GIB, 3), round(p / GIB, 3), n) for t, r, p, n in samples
        ],
    }
    finish(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = run(seconds=8.0 if args.quick else 30.0, settle=5.0 if args.quick else 15.0)
    print(f"wrote {write_json('memory', results)}")


if __name__ == "__main__":
    main()
