"""Several YOLO models on the live cluster (MODELS_YOLO_REGISTRY, Serve's model multiplexing):
each request gets its model's classes, a mixed load never mixes models in one model call, the
LRU evicts at max_num_models_per_replica, and /health/ and /metrics show the loads."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import encode, ultralytics_asset
from tests.integration.test_http_api import assert_error, post

pytestmark = pytest.mark.serve
BUS = encode(ultralytics_asset("bus.jpg"), "JPEG", quality=90)
PERSON_LABELS = {"Normal", "Fall"}
YOLO11N_LABELS = {str(i) for i in range(80)}  # a yaml-built model names classes by number


def detector(client: httpx.Client) -> dict[str, Any]:
    health = client.get("/health/")
    assert health.status_code == 200, health.text
    status: dict[str, Any] = health.json()["models"]["objects"]
    return status


def ask(client: httpx.Client, model: str) -> httpx.Response:
    return post(client, "/detect-objects", BUS, model=model, confidence=0.0, max_detections=20)


def test_each_request_gets_its_models_classes_and_batches_never_mix(client: httpx.Client) -> None:
    before = detector(client)
    models = ["person", "yolo11n"] * 8
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda m: ask(client, m), models))
    for model, answer in zip(models, answers, strict=True):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == model
        labels = {d["label"] for d in body["detections"]}
        assert labels and labels <= (PERSON_LABELS if model == "person" else YOLO11N_LABELS)
    after = detector(client)
    assert {"person", "yolo11n"} <= set(after["loaded"])
    # Every model call ran one model: calls were counted per model, and the batches that came
    # with both were split (Serve splits by model id before they reach us).
    calls = sum(after["calls"].values()) - sum(before["calls"].values())
    assert calls >= 2
    default = post(client, "/detect-objects", BUS)
    assert default.status_code == 200 and default.json()["model"] == "best.pt"


def test_unknown_and_client_sent_models_are_refused(client: httpx.Client) -> None:
    assert_error(ask(client, "nope"), 422, "model")
    assert_error(ask(client, "../weights.pt"), 422, "model")
    wrong_class = post(client, "/detect-objects", BUS, model="person", classes="0")
    assert wrong_class.status_code == 200  # class ids are the model's own
    assert_error(post(client, "/detect-objects", BUS, model="person", classes="car"), 422)


def test_the_lru_evicts_at_max_models_per_replica(client: httpx.Client) -> None:
    for model in ("yolo11n-b", "yolo11n"):  # the replica's two places, least recent first
        assert ask(client, model).status_code == 200
    before = detector(client)
    cycle = ["person", "yolo11n-b", "yolo11n"] * 2  # three names, two places: every one misses
    for model in cycle:
        assert ask(client, model).status_code == 200
    after = detector(client)
    assert after["max_num_models_per_replica"] == 2
    assert len(after["loaded"]) == 3  # the default weights and two registry models
    loads = sum(after["loads"].values()) - sum(before["loads"].values())
    assert loads == len(cycle)
    deadline = time.monotonic() + 60
    while "ray_image_model_loads_total{" not in (text := client.get("/metrics").text):
        assert time.monotonic() < deadline, "ray_image_model_loads_total never exported"
        time.sleep(1)
    assert 'model="yolo11n-b"' in text
