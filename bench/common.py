"""What every benchmark shares: test images, bounded load loops, a cluster, reports.

Load loops are bounded in requests and seconds and target 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import psutil
import requests
import yaml
from PIL import Image
from skimage import data as skdata

from serve_app.cli.local import DEFAULT_CONFIG, LocalCluster, Ports, free_port, session_processes

RESULTS = Path(__file__).resolve().parent / "results"
# Benchmarks 1-4 compare the work itself: the result cache is off (thumbor's result storage is
# off by default too); bench.cache measures it with the cache on.
NO_CACHE = {"CACHE_ENABLED": "false"}
# Every load loop stops at whichever bound comes first.
MAX_REQUESTS = 20_000


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


def thumbnail_sources() -> list[bytes]:
    """The thumbnail benchmarks' inputs: 4 square 1920x1920 and 4 4:3 1920x1440 JPEGs."""
    return photos_jpeg((1920, 1920), 4) + photos_jpeg((1920, 1440), 4)


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
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def _local_only(url: str) -> None:
    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"benchmarks load 127.0.0.1 only, not {url}")


# One request: (session, index) -> succeeded?
Send = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


async def _drive(
    send: Send, concurrency: int, seconds: float, max_requests: int, timeout_s: float
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(index: int) -> None:
            nonlocal errors, sent
            i = index
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                started = time.perf_counter()
                try:
                    ok = await send(session, i)
                except (aiohttp.ClientError, TimeoutError):
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
        p50_ms=_percentile(latencies, 50),
        p95_ms=_percentile(latencies, 95),
        p99_ms=_percentile(latencies, 99),
    )


def form_load(
    url: str,
    form: Callable[[int], aiohttp.FormData],
    concurrency: int,
    seconds: float = 8.0,
    max_requests: int = MAX_REQUESTS,
    timeout_s: float = 120.0,
) -> LoadResult:
    """POST form(i) for the i-th request; 200 is success."""
    _local_only(url)

    async def send(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.post(url, data=form(i)) as response:
            await response.read()
            return response.status == 200

    return asyncio.run(_drive(send, concurrency, seconds, max_requests, timeout_s))


def http_load(
    url: str,
    bodies: list[bytes],
    fields: dict[str, str],
    concurrency: int,
    seconds: float = 8.0,
    max_requests: int = MAX_REQUESTS,
    timeout_s: float = 120.0,
) -> LoadResult:
    """POST multipart `file` (cycling through bodies) plus form fields; 200 is success."""

    def upload(i: int) -> aiohttp.FormData:
        form = aiohttp.FormData()
        form.add_field("file", bodies[i % len(bodies)], filename="photo.jpg")
        for key, value in fields.items():
            form.add_field(key, value)
        return form

    return form_load(url, upload, concurrency, seconds, max_requests, timeout_s)


def stored_forms(image_ids: list[str], fields: dict[str, str]) -> Callable[[int], aiohttp.FormData]:
    """For form_load: multipart form fields naming a stored image (`image_id`, cycling)."""

    def named(i: int) -> aiohttp.FormData:
        form = {**fields, "image_id": image_ids[i % len(image_ids)]}
        return aiohttp.FormData(form, default_to_multipart=True)  # /process takes no other

    return named


def upload_images(base_url: str, bodies: list[bytes]) -> list[str]:
    """Store each body once through the service (`POST /api/v1/upload`): their ids."""
    _local_only(base_url)
    ids = []
    with requests.Session() as session:
        for body in bodies:
            response = session.post(
                base_url + "/api/v1/upload", files={"file": ("photo.jpg", body, "image/jpeg")}
            )
            response.raise_for_status()
            ids.append(str(response.json()["id"]))
    return ids


def get_load(
    urls: list[str],
    concurrency: int,
    seconds: float = 8.0,
    max_requests: int = MAX_REQUESTS,
    timeout_s: float = 120.0,
) -> LoadResult:
    """GET the urls in turn (thumbor's URL API); 200 is success."""
    for url in urls:
        _local_only(url)

    async def send(session: aiohttp.ClientSession, i: int) -> bool:
        async with session.get(urls[i % len(urls)]) as response:
            await response.read()
            return response.status == 200

    return asyncio.run(_drive(send, concurrency, seconds, max_requests, timeout_s))


def timed_loop(
    fn: Callable[[bytes], object], bodies: list[bytes], seconds: float
) -> dict[str, float]:
    """Run fn over the bodies for `seconds` in this process: items/s and p50/p99 latency."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    started = time.monotonic()
    while time.monotonic() < deadline and i < MAX_REQUESTS:
        t = time.perf_counter()
        fn(bodies[i % len(bodies)])
        latencies.append((time.perf_counter() - t) * 1000)
        i += 1
    wall = time.monotonic() - started
    return {
        "per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": _percentile(latencies, 99),
    }


def thread_load(
    fn: Callable[[bytes], object], bodies: list[bytes], concurrency: int, seconds: float
) -> LoadResult:
    """The bare library loop in one process at a concurrency: `concurrency` threads each
    calling fn in turn (Pillow, OpenCV and torch release the GIL while they compute, so one
    process uses every core). Same fields as an HTTP load, so the two sit in one table."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    per_thread = max(1, MAX_REQUESTS // concurrency)

    def worker(index: int) -> None:
        mine: list[float] = []
        i = index
        while time.monotonic() < deadline and len(mine) < per_thread:
            t = time.perf_counter()
            fn(bodies[i % len(bodies)])
            mine.append((time.perf_counter() - t) * 1000)
            i += concurrency
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=0,
        seconds=round(wall, 2),
        rps=round(len(latencies) / wall, 2),
        p50_ms=_percentile(latencies, 50),
        p95_ms=_percentile(latencies, 95),
        p99_ms=_percentile(latencies, 99),
    )


def live_replicas(deployment: str, app: str = "image-service") -> list[Any]:
    """Ray's state of each live replica actor of `deployment` (name, pid, actor_id). Needs a
    connected Ray driver."""
    from ray.util.state import list_actors

    return list(
        list_actors(
            filters=[
                ("class_name", "=", f"ServeReplica:{app}:{deployment}"),
                ("state", "=", "ALIVE"),
            ]
        )
    )


@dataclass
class BenchCluster:
    base_url: str
    cluster: LocalCluster
    config: dict[str, Any]
    workdir: Path

    def deployment(self, name: str) -> dict[str, Any]:
        """A deployment's entry in the config this cluster runs (as last deployed)."""
        (app,) = self.config["applications"]
        (target,) = [d for d in app["deployments"] if d["name"] == name]
        return target

    def redeploy(
        self,
        deployment: str,
        actor_options: dict[str, Any] | None = None,
        autoscaling: dict[str, Any] | None = None,
        **user_config: object,
    ) -> None:
        """serve deploy the same config with one deployment's user_config (and, optionally,
        ray_actor_options and autoscaling_config) changed."""
        target = self.deployment(deployment)
        target["user_config"] = {**target.get("user_config", {}), **user_config}
        if actor_options:
            target["ray_actor_options"] = {**target.get("ray_actor_options", {}), **actor_options}
        if autoscaling:
            target["autoscaling_config"] = {**target["autoscaling_config"], **autoscaling}
        path = self.workdir / "serve_config.yaml"
        path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        _deploy(self.cluster, path)

    def rss_bytes(self) -> dict[str, int]:
        return cluster_memory(self.cluster)


def cluster_processes(cluster: LocalCluster) -> list[psutil.Process]:
    """Every process of the cluster (those of its `ray start --block` session)."""
    assert cluster.process is not None, "only clusters started with block=True"
    return session_processes(cluster.process.pid)


def cluster_memory(cluster: LocalCluster, *, pss: bool = False) -> dict[str, int]:
    """The cluster's resident memory: the sum of its processes' RSS (counts pages they share,
    such as Ray's object store, once per process) and, with pss=True, of their PSS (shared
    pages split between the sharers: what the cluster really takes)."""
    rss = 0
    pss_total = 0
    count = 0
    for proc in cluster_processes(cluster):
        try:
            if pss:
                info = proc.memory_full_info()
                rss += info.rss
                pss_total += info.pss
            else:
                rss += proc.memory_info().rss
            count += 1
        except psutil.Error:
            continue
    out = {"rss": rss, "processes": count}
    if pss:
        out["pss"] = pss_total
    return out


@contextmanager
def serve_cluster(
    env: dict[str, str] | None = None, config_edit: Callable[[dict[str, Any]], None] | None = None
) -> Iterator[BenchCluster]:
    """A Ray head with the app from serve_config.yaml on free ports (config_edit may change
    the config first)."""
    import tempfile

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    port = free_port()
    config["http_options"]["port"] = port
    if config_edit:
        config_edit(config)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "serve_config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        cluster = LocalCluster(
            Ports.free(), num_cpus=os.cpu_count(), env={"DATA_DIR": f"{tmp}/data", **(env or {})}
        )
        cluster.start(block=True)
        try:
            _deploy(cluster, path)
            yield BenchCluster(f"http://127.0.0.1:{port}", cluster, config, Path(tmp))
        finally:
            cluster.stop()


def _deploy(cluster: LocalCluster, path: Path, attempts: int = 6) -> None:
    """`serve deploy`, again if the dashboard dropped the connection: on a busy machine its
    Serve API can answer a few seconds after /api/version does."""
    for attempt in range(attempts):
        try:
            cluster.deploy(path)
            return
        except subprocess.CalledProcessError:
            if attempt == attempts - 1:
                raise
            time.sleep(10)


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine and the versions, and how busy it was when the benchmark started."""
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ray": _version("ray"),
        "pillow": _version("pillow"),
        "torch": _version("torch"),
        "ultralytics": _version("ultralytics"),
        "opencv": _version("opencv-python-headless"),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def finish(payload: dict[str, Any]) -> None:
    """Record the load average at the end next to the one at the start."""
    payload.setdefault("machine", machine())["load_avg_at_end"] = [
        round(x, 2) for x in os.getloadavg()
    ]


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o)) + "\n")
    return path


def read_json(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
