"""Expensive requests under load (issue #18), for `make reliability`.

16 clients send the most expensive requests the limits admit (a size-15 median filter on a
JPEG sized so that its estimate is just under LIMITS_MAX_WORK, new pixels every time) for a
while, as a 17th, in a process of its own, measures a small thumbnail's latency. The promise:
the thumbnail's p99 stays under 1 s and nothing answers 5xx but 503 (the expensive work is
shed with Retry-After, never left to time out), and once the load stops every replica (its
killable children included) is idle within the pipeline deadline + 2 s.

    python -m bench.faults_cost [--seconds 20]   # its own cluster; bench.reliability calls run()
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image
from skimage import data as skdata

from pipelines.limits import Limits
from pipelines.pipeline import estimate
from pipelines.spec import PipelineSpec
from serve_app.cli.local import LocalCluster, session_processes

MEDIAN_15 = {"name": "median", "size": "15"}
CLIENTS = 16
THUMB_CLIENT_START_S = 5.0  # a spawned Python imports PIL, httpx, skimage first
IDLE_CORES = 0.15  # replicas together under this share of a core: idle (Ray's own threads)


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    """`img` as a JPEG no earlier request sent, so the result cache never answers: a copy
    with random pixels in its top-left corner (new content, not just new metadata).

    It once wrote a fresh JPEG comment instead, on the one Image every client thread shared:
    Image.save keeps its options on the Image, so threads saving at once sent each other's
    comment, and most "expensive" requests were result-cache hits (measured: 260 of 266
    answers with 200 in 20 s were hits)."""
    marked = img.copy()
    corner = np.frombuffer(uuid.uuid4().bytes + uuid.uuid4().bytes[:11], np.uint8)
    marked.paste(Image.fromarray(np.repeat(corner.reshape(3, 3, 3), 8, axis=0).repeat(8, axis=1)))
    out = io.BytesIO()
    marked.save(out, "JPEG", quality=quality)
    return out.getvalue()


def costliest_size(limits: Limits) -> tuple[int, int]:
    """The 4:3 size whose median-15 estimate is just under `limits.max_work`."""
    spec = PipelineSpec.model_validate({"steps": [{"op": "filter", **MEDIAN_15}]})
    per_mp = estimate(spec, 1000, 750, "JPEG").total / 0.75
    width = int((0.97 * limits.max_work / per_mp * 1e6 * 4 / 3) ** 0.5)
    return width, width * 3 // 4


def replica_processes(cluster: LocalCluster) -> list[psutil.Process]:
    """Serve's replicas (their Ray workers) and their children (the killable workers)."""
    assert cluster.process is not None
    found = []
    for proc in session_processes(cluster.process.pid):
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.cmdline())
            if "ServeReplica" in line or "deployments.killable" in line:
                found.append(proc)
    return found


def cores_busy(cluster: LocalCluster, window_s: float = 0.5) -> float:
    procs = replica_processes(cluster)

    def total() -> float:
        seconds = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                seconds += times.user + times.system
        return seconds

    before = total()
    time.sleep(window_s)
    return (total() - before) / window_s


def run(cluster: LocalCluster, base_url: str, seconds: float, limits: Limits) -> dict[str, Any]:
    width, height = costliest_size(limits)
    spec = PipelineSpec.model_validate({"steps": [{"op": "filter", **MEDIAN_15}]})
    source = Image.fromarray(skdata.coffee()).resize((width, height))  # type: ignore[no-untyped-call]
    expensive: Counter[str] = Counter()
    # What each 5xx but 503 said ("504 deadline_exceeded: ..."): which part gave up.
    said: Counter[str] = Counter()
    stop = threading.Event()
    lock = threading.Lock()

    def heavy() -> None:
        with httpx.Client(base_url=base_url, timeout=120) as http:
            while not stop.is_set():
                files = {"file": ("big.jpg", _jpeg(source), "image/jpeg")}
                try:
                    response = http.post("/api/v1/filter", files=files, data=MEDIAN_15)
                except httpx.HTTPError as error:
                    code, what = "no answer", type(error).__name__
                else:
                    code, what = str(response.status_code), _error(response)
                with lock:
                    expensive[code] += 1
                    if code != "503" and not code.startswith(("2", "4")):
                        said[f"{code} {what}"] += 1
                if code == "503":
                    time.sleep(0.2)  # Retry-After says 1; a client that retries at once

    # The thumbnail client is a process of its own: beside 16 busy client threads, its timer
    # would count their hold on this process's GIL as the service's latency.
    start_at = time.time() + THUMB_CLIENT_START_S
    measuring = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    thumbs_done = measuring.submit(_thumbnails, base_url, start_at, start_at + seconds)
    time.sleep(max(0.0, start_at - time.time()))
    threads = [threading.Thread(target=heavy, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    ended = time.monotonic()
    # Idle: measured while the clients' last requests may still be open, as a real client's
    # would be; the bound is the deadline plus 2 s.
    bound = limits.pipeline_timeout_s + 2.0
    idle_after: float | None = None
    samples = []
    while time.monotonic() - ended < bound + 10:
        busy = cores_busy(cluster)
        samples.append(round(busy, 2))
        if busy < IDLE_CORES:
            idle_after = round(time.monotonic() - ended, 2)
            break
    for thread in threads:
        thread.join(timeout=130)
    thumbs = thumbs_done.result(timeout=120)
    measuring.shutdown()
    latencies = sorted(t for s, t in thumbs if s == 200)

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(float(np.percentile(latencies, p)) * 1000, 1)

    thumb_status = Counter(str(s) for s, _ in thumbs)
    answers = expensive + thumb_status
    failed = [code for code in answers if code in ("no answer", "None") or code.startswith("5")]
    server_errors = sum(answers[code] for code in failed if code != "503")
    return {
        "seconds": seconds,
        "clients": CLIENTS,
        "expensive_request": f"median 15 on {width}x{height} JPEG",
        "estimate": round(estimate(spec, width, height, "JPEG").total),
        "max_work": limits.max_work,
        "deadline_s": limits.pipeline_timeout_s,
        "expensive_answers": dict(expensive),
        "thumbnail_answers": dict(thumb_status),
        "thumbnail_p50_ms": pct(50),
        "thumbnail_p99_ms": pct(99),
        "thumbnail_p99_under_1s": (pct(99) or 1e9) < 1000,
        "server_errors": server_errors,
        "server_errors_said": dict(said),
        "idle_after_s": idle_after,
        "idle_bound_s": bound,
        "idle_within_bound": idle_after is not None and idle_after <= bound,
        "busy_samples": samples,
    }


def _error(response: httpx.Response) -> str:
    """The JSON error's code and message, or the start of a body that is not ours (a proxy's)."""
    try:
        error = response.json().get("error") or {}
        return f"{error.get('code')}: {error.get('message')}"
    except ValueError:
        return response.text[:80]


def _thumbnails(base_url: str, start_at: float, end_at: float) -> list[tuple[int | None, float]]:
    """The 17th client (in its own process): a 200 px thumbnail of a new 1024 px JPEG every
    0.1 s from `start_at` to `end_at` (time.time()); each answer's status and seconds."""
    source = Image.fromarray(skdata.chelsea()).resize((1024, 768))  # type: ignore[no-untyped-call]
    thumbs: list[tuple[int | None, float]] = []
    with httpx.Client(base_url=base_url, timeout=60) as http:
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < end_at:
            files = {"file": ("t.jpg", _jpeg(source), "image/jpeg")}
            started = time.monotonic()
            status: int | None
            try:
                status = http.post("/api/v1/resize", files=files, data={"width": "200"}).status_code
            except httpx.HTTPError:
                status = None
            thumbs.append((status, time.monotonic() - started))
            time.sleep(0.1)
    return thumbs


def report_lines(result: dict[str, Any]) -> list[str]:
    """The section bench.reliability writes into RELIABILITY.md."""
    return [
        "## Expensive requests (issue #18)",
        "",
        f"{result['clients']} clients sending {result['expensive_request']} (estimate "
        f"{result['estimate']} of LIMITS_MAX_WORK {result['max_work']:.0f}, deadline "
        f"{result['deadline_s']} s) for {result['seconds']} s, while one more client makes "
        "200 px thumbnails of a 1024 px JPEG.",
        "",
        "| | figure |",
        "| --- | --- |",
        f"| expensive requests' answers | {result['expensive_answers']} |",
        f"| thumbnail answers | {result['thumbnail_answers']} |",
        f"| thumbnail p50 / p99 ms | {result['thumbnail_p50_ms']} / {result['thumbnail_p99_ms']} "
        f"({'under' if result['thumbnail_p99_under_1s'] else 'OVER'} 1 s) |",
        f"| 5xx other than 503, or no answer | {result['server_errors']} "
        f"{result.get('server_errors_said') or ''} |",
        f"| replicas idle after the load | {result['idle_after_s']} s (bound "
        f"{result['idle_bound_s']} s: {'held' if result['idle_within_bound'] else 'MISSED'}) |",
        "",
    ]


def main() -> None:
    from bench.common import serve_cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with serve_cluster() as bench:
        result = run(bench.cluster, bench.base_url, args.seconds, Limits())
    print("\n".join(report_lines(result)))


if __name__ == "__main__":
    main()
