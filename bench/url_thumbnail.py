"""The URL API against thumbor, GET for GET (issue #16's acceptance benchmark).

Inputs: the thumbnail benchmarks' 4 square 1920x1920 and 4 4:3 1920x1440 JPEG photos (q90).
Jobs, each at concurrency 1, 8 and 32, thumbor and the service side by side in one run:
- fit:   `/unsafe/fit-in/300x300/<image>`, JPEG q85 on both sides;
- fill:  `/unsafe/300x300/<image>` (crop to fill);
- both again with the image fetched over HTTP (`http_fit`, `http_fill`) from a local origin on
  127.0.0.1 (an aiohttp file server in its own process, bench/origin.py): thumbor's HTTP
  loader against ours (SOURCE_HTTP_ENABLED, SOURCE_HTTP_ALLOW_LOOPBACK for the benchmark).

Every request names an image no earlier request named: the folder holds the 8 photos under
many names (hard links, so no disk is spent), each URL is used once. Neither side can answer
from a cache: thumbor runs without storage or result storage (bench/thumbor_peer.py), the
service with its result cache off (CACHE_ENABLED=false), and its by-URL source cache never
sees a name twice. thumbor: its file loader on that folder (or its HTTP loader), 2 processes
(one per core), started in its own session and stopped by process group. The service: the
app as serve_config.yaml deploys it (HAProxy, two ingress replicas), SOURCE_URL on the folder.

Each point is measured thumbor then service, the whole sequence `rounds` times, and keeps its
faster round (a burst of load from elsewhere hits both alike).

    python -m bench.url_thumbnail             # ~6 min on 2 cores
    python -m bench.url_thumbnail --quick     # one round, 2 s a point
Writes results/url_thumbnail.json and prints the table (rps, p50, ratio to thumbor).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import thumbor_peer
from bench.common import (
    MAX_REQUESTS,
    NO_CACHE,
    LoadResult,
    finish,
    get_load,
    machine,
    serve_cluster,
    thumbnail_sources,
    write_json,
)
from serve_app.cli.local import free_port

CONCURRENCIES = [1, 8, 32]
JOBS = {"fit": "fit-in/300x300", "fill": "300x300"}
# Names per system: every request of the run gets its own. A point takes RATE_CEILING x its
# seconds (beyond any rate either side reaches on a few cores) and spends them all.
NAMES = 50_000
RATE_CEILING = 350
HTTP_LOADER = "LOADER = 'thumbor.loaders.http_loader'\n"


def make_folder(root: Path, sources: list[bytes], names: int) -> None:
    """`names` names for the photos, n/<i>.jpg, as hard links to 8 files."""
    originals = root / "originals"
    originals.mkdir(parents=True)
    for i, data in enumerate(sources):
        (originals / f"{i}.jpg").write_bytes(data)
    folder = root / "n"
    folder.mkdir()
    for i in range(names):
        os.link(originals / f"{i % len(sources)}.jpg", folder / f"{i}.jpg")


class Names:
    """Hands out image names no earlier request used, for one system."""

    def __init__(self, start: int, stop: int) -> None:
        self.next = start
        self.stop = stop

    def take(self, count: int) -> list[str]:
        if self.next + count > self.stop:
            raise RuntimeError("ran out of fresh image names: raise NAMES")
        names = [f"n/{i}.jpg" for i in range(self.next, self.next + count)]
        self.next += count
        return names


def _urls(base: str, options: str, names: list[str], origin: str | None) -> list[str]:
    if origin is None:
        return [f"{base}/unsafe/{options}/{name}" for name in names]
    return [f"{base}/unsafe/{options}/{origin}/{name}" for name in names]


def _measure(
    base: str, options: str, names: Names, origin: str | None, c: int, seconds: float
) -> LoadResult:
    """One point; the URLs it did not get to are spent anyway (never asked again)."""
    budget = min(MAX_REQUESTS, int(RATE_CEILING * seconds) + 50)
    urls = _urls(base, options, names.take(budget), origin)
    result = get_load(urls, c, seconds=seconds, max_requests=len(urls))
    if result.requests >= len(urls):
        print(f"  warning: the point used every URL it had ({len(urls)})", file=sys.stderr)
    return result


@contextmanager
def origin_server(root: Path) -> Iterator[str]:
    """bench/origin.py serving `root` on a free 127.0.0.1 port, in its own session."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.origin", str(root), str(port)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{base}/originals/0.jpg", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the origin server did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _best(runs: list[LoadResult]) -> dict[str, Any]:
    best = max(runs, key=lambda r: r.rps)
    return {**asdict(best), "rps_rounds": [r.rps for r in runs]}


def run(seconds: float, cs: list[int], rounds: int, with_http: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-url-") as tmp:
        root = Path(tmp)
        make_folder(root, thumbnail_sources(), 2 * NAMES)
        thumbor_names, service_names = Names(0, NAMES), Names(NAMES, 2 * NAMES)
        env = {
            **NO_CACHE,
            "SOURCE_URL": f"file://{root}",
            "SOURCE_HTTP_ENABLED": "true",
            "SOURCE_HTTP_ALLOW_LOOPBACK": "true",
        }
        raw: dict[tuple[str, str, int], list[LoadResult]] = {}
        with ExitStack() as stack:
            processes = os.cpu_count() or 1
            thumbor = stack.enter_context(thumbor_peer.thumbor_on(root, processes=processes))
            thumbor_http = None
            origin = None
            if with_http:
                origin = stack.enter_context(origin_server(root))
                thumbor_http = stack.enter_context(
                    thumbor_peer.thumbor_on(None, processes=processes, config=HTTP_LOADER)
                )
            bench = stack.enter_context(serve_cluster(env))
            jobs: list[tuple[str, str, str, str | None]] = [
                (name, options, thumbor.base_url, None) for name, options in JOBS.items()
            ]
            if origin and thumbor_http:
                jobs += [
                    (f"http_{name}", options, thumbor_http.base_url, origin)
                    for name, options in JOBS.items()
                ]
            for _name, options, thumbor_base, source in jobs:  # warm-up
                _measure(thumbor_base, options, thumbor_names, source, 8, 1)
                _measure(bench.base_url, options, service_names, source, 8, 2)
            for _ in range(rounds):
                for name, options, thumbor_base, source in jobs:
                    for c in cs:
                        raw.setdefault((name, "thumbor", c), []).append(
                            _measure(thumbor_base, options, thumbor_names, source, c, seconds)
                        )
                        raw.setdefault((name, "service", c), []).append(
                            _measure(bench.base_url, options, service_names, source, c, seconds)
                        )
            out["thumbor_setup"] = {"version": thumbor.version, "processes": thumbor.processes}
            out["service_env"] = env
    for (name, system, _c), runs in raw.items():
        job = out.setdefault("jobs", {}).setdefault(name, {"options": JOBS[name.split("_")[-1]]})
        job.setdefault(system, []).append(_best(runs))
    out.update(seconds_per_point=seconds, rounds=rounds)
    return out


def table(results: dict[str, Any]) -> str:
    lines = [
        "| job | c | thumbor req/s | service req/s | ratio | thumbor p50 ms | service p50 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, job in results["jobs"].items():
        for theirs, ours in zip(job["thumbor"], job["service"], strict=True):
            ratio = ours["rps"] / theirs["rps"] if theirs["rps"] else float("nan")
            lines.append(
                f"| {name} | {ours['concurrency']} | {theirs['rps']} | {ours['rps']} | "
                f"{ratio:.2f}x | {theirs['p50_ms']} | {ours['p50_ms']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round, 2 s a point")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP loader rows")
    args = parser.parse_args()
    if not thumbor_peer.available():
        raise SystemExit(f"{thumbor_peer.THUMBOR} missing: `make bench` builds it")
    seconds = args.seconds or (2.0 if args.quick else 4.0)
    rounds = args.rounds or (1 if args.quick else 2)
    started = machine()
    results = run(seconds, CONCURRENCIES, rounds, not args.no_http)
    payload: dict[str, Any] = {"machine": started, **results}
    finish(payload)
    print(table(results))
    print(f"wrote {write_json('url_thumbnail', payload)}")


if __name__ == "__main__":
    main()
