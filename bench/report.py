"""bench/RESULTS.md from bench/results/*.json: the figures, the machine, the ratios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import RESULTS

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def _thumbnail(data: dict[str, Any]) -> list[str]:
    lines = [
        "## Thumbnail: ~1920 px JPEG -> 300x300, JPEG q85",
        "",
        "`python -m bench.thumbnail`. Images: 4 square 1920x1920 and 4 1920x1440 photos.",
        "The load client runs on the same machine and takes CPU from the service.",
        "",
    ]
    for job, entry in data["jobs"].items():
        bare = entry["bare_per_core"]
        ceiling = entry["bare_ceiling"]["per_s"]
        pipeline = entry["pipeline_per_core"]
        lines += [
            f"### {job}",
            "",
            f"- bare Pillow, one core: **{bare['per_s']} img/s**, p50 {bare['p50_ms']} ms",
            f"- bare Pillow, all cores (ceiling): **{ceiling} img/s**",
            f"- our pipeline in-process, one core: {pipeline['per_s']} img/s "
            f"({pipeline['per_s'] / bare['per_s']:.2f}x bare), p50 {pipeline['p50_ms']} ms",
            "",
            "| service variant | concurrency | req/s | x ceiling | p50 ms | p99 ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for variant, runs in entry.items():
            if not variant.startswith("serve_"):
                continue
            for run in runs:
                lines.append(
                    f"| {variant.removeprefix('serve_')} | {run['concurrency']} | {run['rps']} | "
                    f"{run['rps'] / ceiling:.2f} | {run['p50_ms']} | {run['p99_ms']} | "
                    f"{run['errors']} |"
                )
        lines.append("")
        default = {r["concurrency"]: r for r in entry.get("serve_default", [])}
        if 1 in default and 8 in default:
            share = default[8]["rps"] / ceiling
            lines += [
                f"Reading: with Serve's defaults the service does {share:.2f}x "
                f"the all-core ceiling at concurrency 8, and at concurrency 1 its p50 is "
                f"{default[1]['p50_ms'] - bare['p50_ms']:.1f} ms above the bare library's. The "
                "image work itself costs what bare Pillow costs (the in-process line); the rest "
                "is the HTTP proxy, the ingress and the ingress -> Preprocessor hop.",
                "",
            ]
    return lines


def _yolo(data: dict[str, Any]) -> list[str]:
    best_bare = max(b["img_per_s"] for b in data["bare"])
    lines = [
        f"## YOLO: {data['weights']} at {data['image_size']} px, CPU",
        "",
        "`python -m bench.yolo`. The service is the YoloDetector through a DeploymentHandle",
        "(arrays in: no HTTP, no decode); the bare loop is ultralytics' predict in one process.",
        "Both use torch on 2 threads.",
        "",
        "| bare ultralytics | img/s | batch p50 ms |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| batch {b['batch']} | {b['img_per_s']} | {b['batch_p50_ms']} |" for b in data["bare"]
    ]
    lines += [
        "",
        "| service | concurrency | img/s | x best bare | mean batch | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in ("batching_on", "batching_off"):
        for run in data.get(label, []):
            lines.append(
                f"| {label.replace('_', ' ')} | {run['concurrency']} | {run['img_per_s']} | "
                f"{run['img_per_s'] / best_bare:.2f} | {run['mean_batch']} | {run['p50_ms']} | "
                f"{run['p99_ms']} | {run['errors']} |"
            )
    return [*lines, ""]


def render() -> str:
    path = RESULTS / "thumbnail.json"
    if not path.exists():
        return "no results yet: run `make bench`"
    data = json.loads(path.read_text())
    yolo_path = RESULTS / "yolo.json"
    yolo = json.loads(yolo_path.read_text()) if yolo_path.exists() else None
    m = data["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {m['cpus']} CPUs, {m['platform']}; Python {m['python']}, Ray {m['ray']}, "
        f"Pillow {m['pillow']}; run on {m['date']}. Figures are from one run; compare ratios "
        "within it, not absolute numbers across machines.",
        "",
        *_thumbnail(data),
        *(_yolo(yolo) if yolo else []),
    ]
    text = "\n".join(lines)
    RESULTS_MD.write_text(text + "\n")
    return text


if __name__ == "__main__":
    print(render())
