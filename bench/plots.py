"""Plots (PNG) from bench/results/*.json: throughput vs concurrency for each benchmark, plus the
memory flood's timeline and the cache's latencies.

    python -m bench.plots        # writes bench/results/*.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.common import RESULTS, read_json


def _series(ax: Any, runs: list[dict[str, Any]], label: str, key: str = "rps", **kw: Any) -> None:
    if runs:
        ax.plot([r["concurrency"] for r in runs], [r[key] for r in runs], "o-", label=label, **kw)


def _log2(ax: Any) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _finish(fig: Any, ax: Any, title: str, ylabel: str, path: Path) -> Path:
    ax.set_title(title)
    ax.set_xlabel("concurrency (clients)")
    ax.set_ylabel(ylabel)
    _log2(ax)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def thumbnail_plots() -> list[Path]:
    out = []
    for file in ("thumbnail", "pipeline3"):
        data = read_json(file)
        if not data:
            continue
        for job, entry in data["jobs"].items():
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            _series(ax, entry.get("bare", []), "bare Pillow, one process (ceiling)")
            _series(ax, entry.get("thumbor", []), "thumbor")
            _series(ax, entry.get("service", []), "this service (HTTP, upload)")
            _series(ax, entry.get("service_stored", []), "this service (HTTP, stored image)")
            procs = entry.get("bare_processes", {}).get("per_s")
            if procs:
                ax.axhline(procs, linestyle=":", color="grey", label="bare, 1 process per core")
            out.append(
                _finish(fig, ax, f"{job}: {entry['title']}", "requests/s", RESULTS / f"{job}.png")
            )
    return out


def yolo_plot(name: str = "yolo") -> list[Path]:
    data = read_json(name)
    if not data:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    _series(ax, data.get("batching_on", []), "handle, batching on", key="img_per_s")
    _series(ax, data.get("batching_off", []), "handle, max_batch_size=1", key="img_per_s")
    _series(ax, data.get("http_batching_on", []), "HTTP, batching on")
    best = max(data["bare"], key=lambda b: b["img_per_s"])
    ax.axhline(
        best["img_per_s"], linestyle=":", color="grey", label=f"bare best (batch {best['batch']})"
    )
    title = f"YOLO {data['weights']} {data['image_size']} px on {data.get('device', 'cpu')}"
    return [_finish(fig, ax, title, "images/s", RESULTS / f"{name}.png")]


def ai_plot() -> list[Path]:
    data = read_json("ai_engines")
    if not data:
        return []
    engines = data["engines"]
    fig, axes = plt.subplots(1, len(engines), figsize=(3.2 * len(engines), 3.6), squeeze=False)
    for ax, (name, entry) in zip(axes[0], engines.items(), strict=True):
        _series(ax, entry.get("bare", []), "bare (threads)")
        _series(ax, entry.get("service", []), "service (HTTP)")
        ax.set_title(name)
        ax.set_xlabel("concurrency")
        _log2(ax)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("images/s")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    path = RESULTS / "ai_engines.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def memory_plot() -> list[Path]:
    data = read_json("memory")
    if not data:
        return []
    samples = data["flood"]["samples"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot([s[0] for s in samples], [s[1] for s in samples], label="RSS, summed")
    ax.plot([s[0] for s in samples], [s[2] for s in samples], label="PSS, summed")
    ax.axhline(data["idle"]["rss_gib"], linestyle=":", color="C0", label="idle RSS")
    ax.set_title(f"cluster memory, 16 clients uploading {data['upload_mb']} MB JPEGs")
    ax.set_xlabel("seconds into the flood")
    ax.set_ylabel("GiB")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = RESULTS / "memory.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def cache_plot() -> list[Path]:
    data = read_json("cache")
    if not data:
        return []
    jobs = data["jobs"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    kinds = [("first", "first (miss)"), ("hit", "repeat (hit)"), ("if_none_match_304", "304")]
    width = 0.25
    for k, (key, label) in enumerate(kinds):
        ax.bar(
            [i + k * width for i in range(len(jobs))],
            [entry[key]["p50_ms"] for entry in jobs.values()],
            width,
            label=label,
        )
    ax.set_xticks([i + width for i in range(len(jobs))], list(jobs))
    ax.set_ylabel("p50 latency, ms (one client)")
    ax.set_title("result cache: first request vs repeats")
    ax.legend()
    fig.tight_layout()
    path = RESULTS / "cache.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def render() -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return [
        *thumbnail_plots(),
        *yolo_plot("yolo"),
        *yolo_plot("yolo_gpu"),
        *ai_plot(),
        *memory_plot(),
        *cache_plot(),
    ]


if __name__ == "__main__":
    for path in render():
        print(f"wrote {path}")
