"""Result cache (issue #9, benchmark 6): a repeated request vs the first one.

The service as deployed, cache on (the default). For each of N distinct ~1920 px JPEGs (the
thumbnail photos, each re-encoded at its own quality so its sha256 differs): the first request
(a miss: decode, resize, encode, store), then R repeats with the same bytes and parameters (hits:
sha256 of the input + the canonical pipeline finds the stored result) and R repeats with
`If-None-Match` (304, no body). Sequential, one client: latency, not throughput. Each answer's
`X-Cache` header is checked.

Jobs: fit 300x300 JPEG q85 (/resize) and the 3-step pipeline (/process), each with the image
uploaded in the request; and fit on a stored image (`image_id`, uploaded once beforehand): there
a hit needs neither the upload nor a read of the source, only the key (the stored row's sha256
plus the pipeline), so it shows the cache's own cost rather than the upload's.

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

from bench.common import (
    _local_only,
    finish,
    machine,
    serve_cluster,
    thumbnail_sources,
    upload_images,
    write_json,
)
from bench.thumbnail import JOBS


def distinct_sources(count: int) -> list[bytes]:
    photos = [Image.open(io.BytesIO(b)) for b in thumbnail_sources()]
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        # Its own bytes (so its own sha256) through a comment, at one quality for all.
        photos[i % len(photos)].save(buffer, "JPEG", quality=85, comment=f"source {i}")
        out.append(buffer.getvalue())
    return out


Source = bytes | str  # the image's bytes, or the id of the stored image


def _post(
    session: requests.Session, url: str, source: Source, fields: dict[str, str], etag: str | None
) -> tuple[float, requests.Response]:
    headers = {"If-None-Match": etag} if etag else {}
    if isinstance(source, str):
        send: dict[str, Any] = {"data": {**fields, "image_id": source}}
    else:
        send = {"files": {"file": ("photo.jpg", source, "image/jpeg")}, "data": fields}
    started = time.perf_counter()
    response = session.post(url, headers=headers, **send)
    return (time.perf_counter() - started) * 1000, response


def _summary(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2) if values else float("nan"),
        "p99_ms": round(float(np.percentile(values, 99)), 2) if values else float("nan"),
    }


# (result name, job in bench.thumbnail, whether the image is stored first)
CASES = [("fit", "fit", False), ("pipeline3", "pipeline3", False), ("fit_stored", "fit", True)]


def measure(
    base_url: str, sources: list[bytes], to_store: list[bytes], repeats: int
) -> dict[str, Any]:
    """`sources` are sent in each request; `to_store` are uploaded first, then named by id
    (other bytes, or their first request would hit what `sources` left in the cache)."""
    out: dict[str, Any] = {}
    with requests.Session() as session:
        _local_only(base_url)
        stored: list[Source] = [*upload_images(base_url, to_store)]
        for name, job_name, by_id in CASES:
            job = JOBS[job_name]
            url = base_url + job.route
            first: list[float] = []
            hits: list[float] = []
            not_modified: list[float] = []
            wrong = recomputed = 0
            inputs: list[Source] = stored if by_id else list(sources)
            for body in inputs:
                ms, response = _post(session, url, body, job.fields, None)
                wrong += response.status_code != 200 or response.headers.get("X-Cache") != "miss"
                first.append(ms)
                etag = response.headers.get("ETag")
                for _ in range(repeats):
                    ms, response = _post(session, url, body, job.fields, None)
                    wrong += response.status_code != 200
                    # A repeat that reaches the other ingress replica before the first result
                    # was stored is computed again: correct, and counted apart.
                    if response.status_code == 200 and response.headers.get("X-Cache") != "hit":
                        recomputed += 1
                    else:
                        hits.append(ms)
                for _ in range(repeats):
                    ms, response = _post(session, url, body, job.fields, etag)
                    wrong += response.status_code != 304
                    not_modified.append(ms)
            miss, hit = _summary(first), _summary(hits)
            out[name] = {
                "title": job.title + (", stored image (image_id)" if by_id else ""),
                "first": miss,
                "hit": hit,
                "if_none_match_304": _summary(not_modified),
                "speedup_p50": round(float(miss["p50_ms"]) / float(hit["p50_ms"]), 2),
                "unexpected_answers": wrong,
                "repeats_recomputed": recomputed,
            }
    return out


def run(count: int, repeats: int) -> dict[str, Any]:
    every = distinct_sources(2 * count + 6)
    sources, to_store = every[:count], every[count : 2 * count]
    warm = every[2 * count :]  # other bytes: warm-up without warming the cache
    results: dict[str, Any] = {"machine": machine(), "images": count, "repeats": repeats}
    with serve_cluster() as bench:
        measure(bench.base_url, warm[:3], warm[3:], 1)  # replicas, connections, the database
        results["jobs"] = measure(bench.base_url, sources, to_store, repeats)
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
