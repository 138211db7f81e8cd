"""The ingress's own metrics, made with ray.serve.metrics: Ray exports them beside Serve's
built-in `ray_serve_*` series on each node's metrics port, with a `ray_` prefix and the
deployment/replica/application tags Serve adds. Model metrics live in deployments/metrics.py.

Outside a Ray replica (unit tests) the calls are harmless no-ops of Ray's own making.
"""

from __future__ import annotations

from functools import cache

from ray.serve import metrics

# Error codes that mean "refused by a limit", by the reason an operator filters on.
REJECTION_REASONS = {
    "upload_too_large": "size",
    "too_large": "size",
    "too_many_pixels": "pixels",
    "too_many_frames": "frames",
    "too_costly": "cost",
    "unsupported_format": "format",
    "not_an_image": "format",
    "unsupported_media_type": "format",
    "rate_limited": "rate_limit",
    "unauthorized": "auth",
    "forbidden": "auth",
    "overloaded": "overload",
    "source_too_large": "size",
    "source_address": "source_address",
    "source_host": "source_host",
    "bad_signature": "signature",
}
LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]


@cache
def requests() -> metrics.Counter:
    return metrics.Counter(
        "image_requests",
        description="HTTP requests answered by the ingress, by route template and status.",
        tag_keys=("route", "method", "status"),  # type: ignore[arg-type]  # stub says 1-tuple
    )


@cache
def request_duration() -> metrics.Histogram:
    return metrics.Histogram(
        "image_request_duration_seconds",
        description="Time from request to response at the ingress, by route template.",
        boundaries=LATENCY_BUCKETS,
        tag_keys=("route",),
    )


@cache
def rejections() -> metrics.Counter:
    return metrics.Counter(
        "image_rejections",
        description="Requests refused by a limit: size, pixels, frames, format, cost, rate_limit, "
        "auth, overload, signature, source_address (SSRF), source_host.",
        tag_keys=("reason",),
    )


@cache
def tasks() -> metrics.Gauge:
    return metrics.Gauge(
        "image_tasks",
        description="Batch tasks by status (queued, running), as the TaskRunner last counted.",
        tag_keys=("status",),
    )


def record_tasks(counts: dict[str, int]) -> None:
    for status in ("queued", "running"):
        tasks().set(counts.get(status, 0), tags={"status": status})


@cache
def event_streams() -> metrics.Gauge:
    return metrics.Gauge(
        "image_task_event_streams",
        description="Task event streams (GET /api/v1/tasks/{id}/events) open on this replica.",
    )


def record_event_streams(open_now: int) -> None:
    event_streams().set(open_now)


@cache
def retention_deleted() -> metrics.Counter:
    return metrics.Counter(
        "image_retention_deleted",
        description="Rows deleted past their retention (uploads, results, tasks) and blobs "
        "deleted once no row named them (blobs).",
        tag_keys=("kind",),
    )


def record_retention_deleted(kind: str, count: int) -> None:
    if count:
        retention_deleted().inc(count, tags={"kind": kind})


@cache
def cache_writes_dropped() -> metrics.Counter:
    return metrics.Counter(
        "image_cache_writes_dropped",
        description="Results not stored in the result cache: too many writes pending "
        "(backlog) or the cache's store unavailable or busy (unavailable).",
        tag_keys=("reason",),
    )


def record_cache_write_dropped(reason: str) -> None:
    cache_writes_dropped().inc(tags={"reason": reason})


def record_rejection(code: str) -> None:
    reason = REJECTION_REASONS.get(code)
    if reason is not None:
        rejections().inc(tags={"reason": reason})


def record_request(route: str, method: str, status: int, seconds: float) -> None:
    requests().inc(tags={"route": route, "method": method, "status": str(status)})
    request_duration().observe(seconds, tags={"route": route})


@cache
def source_fetches() -> metrics.Counter:
    return metrics.Counter(
        "image_source_fetches",
        description="URL API sources fetched, by loader (upload, file, s3, http) and outcome "
        "(ok, cached, not_found, refused, too_large, timeout, error).",
        tag_keys=("loader", "outcome"),  # type: ignore[arg-type]  # stub says 1-tuple
    )


@cache
def source_fetch_duration() -> metrics.Histogram:
    return metrics.Histogram(
        "image_source_fetch_duration_seconds",
        description="Time to fetch a URL API source, by loader.",
        boundaries=LATENCY_BUCKETS,
        tag_keys=("loader",),
    )


def record_source_fetch(loader: str, outcome: str, seconds: float) -> None:
    source_fetches().inc(tags={"loader": loader, "outcome": outcome})
    source_fetch_duration().observe(seconds, tags={"loader": loader})


@cache
def task_callbacks() -> metrics.Counter:
    return metrics.Counter(
        "image_task_callbacks",
        description="Task webhook POSTs by outcome: delivered, retry (failed, tried again "
        "after a back-off) and failed (given up, the reason stored on the task).",
        tag_keys=("outcome",),
    )


def record_task_callback(outcome: str) -> None:
    task_callbacks().inc(tags={"outcome": outcome})
