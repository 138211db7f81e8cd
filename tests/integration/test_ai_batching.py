"""YoloDetector through handles: dynamic batching, one bad image failing alone, live
reconfiguration (batch knobs, weights), and the 503 when weights cannot load."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import yaml
from ray import serve

from pipelines.errors import InvalidParameter, ModelUnavailable
from tests.conftest import FALL_MODEL, encode, photo, ultralytics_asset
from tests.integration.conftest import Service
from tests.integration.test_http_api import assert_error, post


@pytest.fixture(scope="module")
def detector(driver: None) -> serve.handle.DeploymentHandle:
    return serve.get_deployment_handle("YoloDetector", app_name="image-service")


def _yolo(config: dict) -> dict:
    (app,) = config["applications"]
    (yolo,) = [d for d in app["deployments"] if d["name"] == "YoloDetector"]
    return yolo  # type: ignore[no-any-return]


def redeploy(service: Service, **user_config: object) -> None:
    """serve deploy the session's config with the detector's user_config changed."""
    config = yaml.safe_load(service.config.read_text())
    yolo = _yolo(config)
    yolo["user_config"] = {**yolo.get("user_config", {}), **user_config}
    path = service.config.with_name("serve_config.reconfigured.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    service.cluster.deploy(path)


def wait_for_model(detector: serve.handle.DeploymentHandle, weights: str) -> dict:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = detector.status.remote().result(timeout_s=30)
        if status["model"] == weights and status["max_batch_size"]:
            return status
        time.sleep(1)
    raise TimeoutError(f"detector never switched to {weights}")


def test_concurrent_calls_share_batches(detector: serve.handle.DeploymentHandle) -> None:
    images = [np.asarray(photo(n)) for n in ("astronaut", "coffee", "chelsea", "camera")]
    images[3] = np.stack([images[3]] * 3, axis=-1)  # grey -> RGB
    before = detector.status.remote().result(timeout_s=30)

    async def many() -> list:
        calls = [detector.detect.remote(images[i % 4], {}) for i in range(12)]
        return await asyncio.gather(*calls)

    results = asyncio.run(many())
    after = detector.status.remote().result(timeout_s=30)
    calls = after["images"] - before["images"]
    batches = after["batches"] - before["batches"]
    assert calls == 12
    assert batches < calls, (batches, calls)  # several requests answered per model call
    expected = [(512, 512), (600, 400), (451, 300), (512, 512)]
    assert [(r.width, r.height) for r in results] == [expected[i % 4] for i in range(12)]


def test_a_corrupt_item_fails_alone(detector: serve.handle.DeploymentHandle) -> None:
    good = np.asarray(ultralytics_asset("bus.jpg"))
    bad = np.zeros((5, 5), dtype=np.uint8)

    async def mixed() -> list:
        calls = [detector.detect.remote(x, {}) for x in (good, good, bad, good, good)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(mixed())
    assert isinstance(results[2], InvalidParameter)
    for i in (0, 1, 3, 4):
        assert not isinstance(results[i], Exception) and len(results[i].detections) >= 3


def test_live_reconfiguration_and_missing_weights(
    service: Service, client: httpx.Client, detector: serve.handle.DeploymentHandle
) -> None:
    try:
        # Random-weight production architecture, bigger batches than serve_config.yaml's 4:
        # the batching path end to end.
        redeploy(service, weights="yolo11n.yaml", max_batch_size=8, batch_wait_timeout_s=0.05)
        status = wait_for_model(detector, "yolo11n.yaml")
        assert status["ready"] and status["classes"] == 80 and status["max_batch_size"] == 8
        response = post(client, "/detect-objects", encode(photo("coffee")), image_size=320)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "yolo11n.yaml"

        # Weights that cannot load: a fast 503 with the reason; everything else keeps working.
        redeploy(service, weights="/models/missing.pt")
        status = wait_for_model(detector, "/models/missing.pt")
        assert not status["ready"] and "missing.pt" in status["error"]
        error = assert_error(post(client, "/detect-objects", encode(photo("coffee"))), 503)
        assert error["code"] == "model_unavailable" and "missing.pt" in error["message"]
        with pytest.raises(ModelUnavailable):
            detector.detect.remote(np.zeros((32, 32, 3), np.uint8), {}).result(timeout_s=30)
        assert post(client, "/resize", encode(photo("coffee")), width=50).status_code == 200
        assert client.get("/health/ready").status_code == 200
        assert client.get("/health/").json()["models"]["objects"]["ready"] is False
    finally:
        # Back to the session's settings (user_config keeps no weights: name them).
        redeploy(
            service,
            **_yolo(yaml.safe_load(service.config.read_text()))["user_config"],
            weights=FALL_MODEL,
        )
        wait_for_model(detector, FALL_MODEL)
