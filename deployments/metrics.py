"""Model and image metrics, made with ray.serve.metrics inside the replicas that do the work
(exported by Ray with a `ray_` prefix, beside Serve's built-in series)."""

from __future__ import annotations

from functools import cache

from ray.serve import metrics

from pipelines.cost import Estimate

DURATION_BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]


@cache
def processing_duration() -> metrics.Histogram:
    return metrics.Histogram(
        "image_processing_duration_seconds",
        description="Time spent on image work in a replica, by operation (a single-step "
        "pipeline's op, 'pipeline' for several steps, or info/probe/decode/annotate/"
        "detect_objects/ocr/detect_faces).",
        boundaries=DURATION_BUCKETS,
        tag_keys=("operation",),
    )


@cache
def objects_detected() -> metrics.Counter:
    return metrics.Counter(
        "image_objects_detected",
        description="Objects found by the YoloDetector, by label.",
        tag_keys=("label",),
    )


@cache
def model_loads() -> metrics.Counter:
    return metrics.Counter(
        "image_model_loads",
        description="Models loaded by a replica, by name (the default weights, or a "
        "MODELS_YOLO_REGISTRY name): steady growth means replicas thrash their LRU.",
        tag_keys=("model",),
    )


@cache
def faces_detected() -> metrics.Counter:
    return metrics.Counter(
        "image_faces_detected",
        description="Faces found by the FaceDetector, by engine.",
        tag_keys=("engine",),
    )


@cache
def ocr_confidence() -> metrics.Histogram:
    return metrics.Histogram(
        "image_ocr_confidence",
        description="Confidence (0-1) of each text block the OcrReader returned, by engine.",
        boundaries=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
        tag_keys=("engine",),
    )


# Work units (pipelines/cost.py): a thumbnail of a 2 MP JPEG is ~5, LIMITS_MAX_WORK 5000.
WORK_BUCKETS = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0]


@cache
def cost_estimate() -> metrics.Histogram:
    return metrics.Histogram(
        "image_cost_estimate_work",
        description="Estimated work (pipelines/cost.py units) of each admitted request, by "
        "operation (decode, encode, each step's op, detect_objects/ocr/detect_faces): what "
        "the limits let in. LIMITS_MAX_WORK bounds a request's total.",
        boundaries=WORK_BUCKETS,
        tag_keys=("operation",),
    )


def observe_estimate(estimate: Estimate) -> None:
    histogram = cost_estimate()
    for operation, work in estimate.by_operation().items():
        histogram.observe(work, tags={"operation": operation})


def observe(operation: str, seconds: float) -> None:
    processing_duration().observe(seconds, tags={"operation": operation})
