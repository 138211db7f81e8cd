"""Readiness under autoscaling (issue #15, item 7): /health/ready stays 200 while a load makes
the Ingress scale up and then down again, and the graceful downscale drops no request. The
Ingress is given a quick autoscaling config for the test (1-2 replicas, metrics every 0.5 s);
the session's config is restored after."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import yaml

from bench.faults_ingress import ReadyProbe
from serve_app.cli.local import dashboard_get
from tests.integration.conftest import Service
from tests.integration.loads import ResizeLoad

QUICK_AUTOSCALING = {
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 2,
    "upscale_delay_s": 0.5,
    "downscale_delay_s": 1,
    "metrics_interval_s": 0.5,
    "look_back_period_s": 1,
}


def _ingress(service: Service) -> dict[str, object]:
    url = f"{service.cluster.dashboard_url}/api/serve/applications/"
    with dashboard_get(url, timeout=10) as answer:
        apps = json.load(answer)["applications"]
    (app,) = apps.values()
    ingress: dict[str, object] = app["deployments"]["Ingress"]
    return ingress


def _running(service: Service) -> int:
    replicas = _ingress(service)["replicas"]
    assert isinstance(replicas, list)
    return sum(1 for r in replicas if r["state"] == "RUNNING")


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.2)


@pytest.fixture
def quick_autoscaling(service: Service) -> Iterator[None]:
    config = yaml.safe_load(service.config.read_text())
    (app,) = config["applications"]
    (ingress,) = [d for d in app["deployments"] if d["name"] == "Ingress"]
    ingress["autoscaling_config"] = QUICK_AUTOSCALING
    path = service.config.with_name("serve_config.readiness.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    service.cluster.deploy(path)
    try:
        yield
    finally:
        service.cluster.deploy(service.config)


def test_ready_stays_200_while_the_ingress_scales_up_and_down(
    service: Service, quick_autoscaling: None
) -> None:
    _wait(lambda: _running(service) == 1, 60, "the Ingress down to its 1 replica")
    with ReadyProbe(service.base_url, every_s=0.2) as probe:
        with ResizeLoad(service.base_url, clients=8) as load:
            _wait(lambda: _running(service) == 2, 90, "the load scales the Ingress up")
        _wait(lambda: _running(service) == 1, 90, "the idle Ingress scales down")
        time.sleep(1)  # a few probes with the downscaled replica draining
    outcomes = load.outcomes()
    print(f"readiness through the scaling: {probe.summary()}; load {dict(outcomes)}")
    assert probe.answers["200"] >= 20, probe.answers
    assert set(probe.answers) == {"200"}, (probe.answers, probe.failures)
    # A graceful downscale drops nothing; the load itself may be shed, never cut off.
    assert set(outcomes) <= {"200", "503"}, outcomes
    assert outcomes["200"] > 0
