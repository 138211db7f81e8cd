"""Result cache (issue #9, benchmark 6): a repeated request vs the first one.

The service as deployed, cache on (the default). For each of N distinct ~1920 px JPEGs (the
thumbnail photos, each re-encoded at its own quality so its sha256 differs): the first request
(a miss: decode, resize, encode, store), then R repeats with the same bytes and parameters (hits:
sha256 of the input + the canonical pipeline finds the stored result) and R repeats with
`If-None-Match` (304, no body). Sequential, one client: latency, not throughput. Each answer's
`X-Cache` header is checked.

Jobs: fit 300x300 JPEG q85 (/resize) and the 3-step pipeline (/process).

    python -m bench.cache [--quick]     # ~1.5 min, writes results/cache.json
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from typing import Any

import numpy as np
import requests
from PIL import Image

from bench.common import _local_only, finish, machine, serve_cluster, thumbnail_sources, write_json
from bench.thumbnail import JOBS


def distinct_sources(count: int) -> list[bytes]:
    photos = [Image.open(io.BytesIO(b)) for b in thumbnail_sources()]
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        photos[i % len(photos)].save(buffer, "JPEG", quality=70 + i)
        out.append(buffer.getvalue())
    return out


def _post(
    session: requests.Session, url: str, body: bytes, fields: dict[str, str], etag: str | None
) -> tuple[float, requests.Response]:
    headers = {"If-None-Match": etag} if etag else {}
    started = time.perf_counter()
    response = session.post(
        url, files={"file": ("photo.jpg", body, "image/jpeg")}, data=fields, headers=headers
    )
    return (time.perf_counter() - started) * 1000, response


def _summary(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2) if values else float("nan"),
        "p99_ms": round(float(np.percentile(values, 99)), 2) if values else float("nan"),
    }


def measure(base_url: str, sources: list[bytes], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with requests.Session() as session:
        for name in ("fit", "pipeline3"):
            job = JOBS[name]
            url = base_url + job.route
            _local_only(url)
            first: list[float] = []
            hits: list[float] = []
            not_modified: list[float] = []
            wrong = 0
            for body in sources:
                ms, response = _post(session, url, body, job.fields, None)
                wrong += response.status_code != 200 or response.headers.get("X-Cache") != "miss"
                first.append(ms)
                etag = response.headers.get("ETag")
                for _ in range(repeats):
                    ms, response = _post(session, url, body, job.fields, None)
                    wrong += response.status_code != 200 or response.headers.get("X-Cache") != "hit"
                    hits.append(ms)
                for _ in range(repeats):
                    ms, response = _post(session, url, body, job.fields, etag)
                    wrong += response.status_code != 304
                    not_modified.append(ms)
            miss, hit = _summary(first), _summary(hits)
            out[name] = {
                "title": job.title,
                "first": miss,
                "hit": hit,
                "if_none_match_304": _summary(not_modified),
                "speedup_p50": round(float(miss["p50_ms"]) / float(hit["p50_ms"]), 2),
                "unexpected_answers": wrong,
            }
    return out


def run(count: int, repeats: int) -> dict[str, Any]:
    sources = distinct_sources(count)
    warm = distinct_sources(count + 3)[count:]  # other bytes: warm-up without warming the cache
    results: dict[str, Any] = {"machine": machine(), "images": count, "repeats": repeats}
    with serve_cluster() as bench:
        measure(bench.base_url, warm, 1)  # replicas, connections, the database
        results["jobs"] = measure(bench.base_url, sources, repeats)
    finish(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = run(count=6 if args.quick else 20, repeats=3 if args.quick else 5)
    print(json.dumps(results["jobs"], indent=2))
    print(f"wrote {write_json('cache', results)}")


if __name__ == "__main__":
    main()
