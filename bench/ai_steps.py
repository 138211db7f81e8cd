"""AI steps in pipelines (issue #17's benchmark): `redact(faces)` and `gravity=faces`
thumbnails through the URL API and `/api/v1/process`, next to `/api/v1/detect-faces` alone.

Inputs: photos with faces the packages ship (ultralytics' zidane.jpg and bus.jpg, scikit-image's
astronaut at 1024 px), JPEG q90. Jobs, each at concurrency 1 and 8:
- detect_faces:    POST /api/v1/detect-faces (the detection a redaction needs, alone);
- process_redact:  POST /api/v1/process, a 300x300 thumbnail then redact(faces);
- process_gravity: POST /api/v1/process, resize fill 300x300 with gravity faces;
- url_redact:      GET /unsafe/300x300/filters:redact(faces)/<image>;
- url_smart:       GET /unsafe/300x300/smart/<image> (the URL's smart aims at faces);
- process_plain / url_plain: the same thumbnail without a detector, for reference.

No answer comes from a cache: the result cache is off (CACHE_ENABLED=false) and every GET names
an image no earlier request named (hard links in the source folder, as bench/url_thumbnail.py).
The acceptance figure: a redaction costs at most 15% over the detection it needs, i.e.
process_redact's images/s at least 0.87x detect_faces' at the same concurrency.

    python -m bench.ai_steps            # two rounds, 8 s a point
    python -m bench.ai_steps --quick    # one round, 2 s a point
Writes results/ai_steps.json and prints the table.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from bench.common import (
    MAX_REQUESTS,
    NO_CACHE,
    LoadResult,
    finish,
    get_load,
    http_load,
    machine,
    serve_cluster,
    write_json,
)
from bench.url_thumbnail import Names, make_folder

CONCURRENCIES = [1, 8]
RATE_CEILING = 200  # requests a second no job reaches on a few cores
THUMBNAIL = {"op": "thumbnail", "width": 300, "height": 300}
PROCESS = {
    "process_plain": [THUMBNAIL],
    "process_redact": [THUMBNAIL, {"op": "redact", "target": "faces"}],
    "process_gravity": [
        {"op": "resize", "mode": "fill", "width": 300, "height": 300, "gravity": "faces"}
    ],
}
URLS = {
    "url_plain": "300x300",
    "url_redact": "300x300/filters:redact(faces)",
    "url_smart": "300x300/smart",
}


def sources() -> list[bytes]:
    import ultralytics
    from skimage import data as skdata

    assets = Path(ultralytics.__file__).parent / "assets"
    images = [Image.open(assets / name).convert("RGB") for name in ("zidane.jpg", "bus.jpg")]
    astronaut = skdata.astronaut()  # type: ignore[no-untyped-call]
    images.append(Image.fromarray(astronaut).resize((1024, 1024)))
    out = []
    for img in images:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _get(base: str, options: str, names: Names, c: int, seconds: float) -> LoadResult:
    budget = min(MAX_REQUESTS, int(RATE_CEILING * seconds) + 50)
    urls = [f"{base}/unsafe/{options}/{name}" for name in names.take(budget)]
    return get_load(urls, c, seconds=seconds, max_requests=len(urls))


def _post(base: str, job: str, bodies: list[bytes], c: int, seconds: float) -> LoadResult:
    if job == "detect_faces":
        return http_load(f"{base}/api/v1/detect-faces", bodies, {}, c, seconds)
    pipeline = json.dumps({"steps": PROCESS[job], "format": "jpeg", "quality": 85})
    return http_load(f"{base}/api/v1/process", bodies, {"pipeline": pipeline}, c, seconds)


def run(seconds: float, cs: list[int], rounds: int) -> dict[str, Any]:
    bodies = sources()
    raw: dict[tuple[str, int], list[LoadResult]] = {}
    jobs = ["detect_faces", *PROCESS, *URLS]
    with tempfile.TemporaryDirectory(prefix="bench-ai-steps-") as tmp:
        root = Path(tmp)
        # Every GET of the run names a fresh image: a budget per point, and one per warm-up.
        needed = (rounds * len(cs) + 1) * len(URLS) * (int(RATE_CEILING * seconds) + 50)
        make_folder(root, bodies, needed)
        names = Names(0, needed)
        env = {**NO_CACHE, "SOURCE_URL": f"file://{root}"}
        with serve_cluster(env) as bench:
            for job in jobs:  # warm-up: models loaded, pools started
                if job in URLS:
                    _get(bench.base_url, URLS[job], names, 8, 1)
                else:
                    _post(bench.base_url, job, bodies, 8, 1)
            for _ in range(rounds):
                for job in jobs:
                    for c in cs:
                        if job in URLS:
                            result = _get(bench.base_url, URLS[job], names, c, seconds)
                        else:
                            result = _post(bench.base_url, job, bodies, c, seconds)
                        raw.setdefault((job, c), []).append(result)
    out: dict[str, Any] = {"jobs": {}, "seconds_per_point": seconds, "rounds": rounds}
    for (job, _c), runs in raw.items():
        best = max(runs, key=lambda r: r.rps)
        out["jobs"].setdefault(job, []).append(
            {**asdict(best), "rps_rounds": [r.rps for r in runs]}
        )
    out["redaction_over_detection"] = {
        str(c): _ratio(out, "process_redact", "detect_faces", c) for c in cs
    }
    return out


def _point(results: dict[str, Any], job: str, c: int) -> dict[str, Any] | None:
    return next((p for p in results["jobs"].get(job, []) if p["concurrency"] == c), None)


def _ratio(results: dict[str, Any], job: str, base: str, c: int) -> float | None:
    a, b = _point(results, job, c), _point(results, base, c)
    if not a or not b or not b["rps"]:
        return None
    return round(a["rps"] / b["rps"], 2)


def table(results: dict[str, Any]) -> str:
    lines = [
        "| job | c | images/s | p50 ms | p95 ms | errors | vs detect_faces |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for job, points in results["jobs"].items():
        for p in points:
            ratio = _ratio(results, job, "detect_faces", p["concurrency"])
            lines.append(
                f"| {job} | {p['concurrency']} | {p['rps']} | {p['p50_ms']} | {p['p95_ms']} "
                f"| {p['errors']} | {ratio if ratio is not None else '-'}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, 2 s a point")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    seconds, rounds = (2.0, 1) if args.quick else (args.seconds, args.rounds)
    results: dict[str, Any] = {"machine": machine()}
    results.update(run(seconds, CONCURRENCIES, rounds))
    finish(results)
    path = write_json("ai_steps_quick" if args.quick else "ai_steps", results)
    print(table(results))
    print(f"redaction / detection alone (images/s): {results['redaction_over_detection']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
