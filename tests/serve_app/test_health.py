"""Readiness (issue #15, item 7): a deployment that is autoscaling or rolling out new code with
replicas running is ready; probes are answered from one running check at a time, kept briefly,
on their own pool."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import pytest
from ray.serve._private.common import DeploymentStatus, ReplicaState

from pipelines.errors import DeadlineExceeded
from serve_app.errors import Unavailable
from serve_app.services import image_work, readiness
from serve_app.services.image_work import within
from serve_app.services.readiness import Check, NotReady, serving


@dataclass
class Overview:
    """The shape of serve.status()'s DeploymentStatusOverview."""

    status: DeploymentStatus
    replica_states: dict[ReplicaState, int] = field(default_factory=dict)


def test_autoscaling_and_rolling_updates_are_ready() -> None:
    deployments = {
        "Ingress": Overview(DeploymentStatus.UPSCALING, {ReplicaState.RUNNING: 2}),
        "Preprocessor": Overview(DeploymentStatus.DOWNSCALING, {ReplicaState.RUNNING: 3}),
        "YoloDetector": Overview(
            DeploymentStatus.UPDATING, {ReplicaState.RUNNING: 1, ReplicaState.STARTING: 1}
        ),
        "OcrReader": Overview(
            DeploymentStatus.UNHEALTHY, {ReplicaState.RUNNING: 1, ReplicaState.RECOVERING: 1}
        ),
        "FaceDetector": Overview(DeploymentStatus.HEALTHY, {ReplicaState.RUNNING: 1}),
    }
    report = serving(deployments)["deployments"]
    assert report["Ingress"] == {"status": "UPSCALING", "running": 2}
    assert report["YoloDetector"] == {"status": "UPDATING", "running": 1}


def test_a_deployment_with_no_running_replica_is_not_ready() -> None:
    deployments = {
        "Ingress": Overview(DeploymentStatus.HEALTHY, {ReplicaState.RUNNING: 2}),
        "Preprocessor": Overview(DeploymentStatus.UPDATING, {ReplicaState.STARTING: 1}),
    }
    with pytest.raises(NotReady, match=r"Preprocessor \(UPDATING\)"):
        serving(deployments)


async def test_probes_share_one_running_check_and_its_answer() -> None:
    calls = 0
    release = threading.Event()

    def slow_probe() -> dict[str, str]:
        nonlocal calls
        calls += 1
        release.wait(timeout=10)
        return {"backend": "x"}

    check = Check(slow_probe, ttl_s=60)
    probes = [asyncio.create_task(check.report()) for _ in range(10)]
    await asyncio.sleep(0.05)
    release.set()
    reports = await asyncio.gather(*probes)
    assert calls == 1 and all(r["ok"] and r["backend"] == "x" for r in reports)
    assert (await check.report())["ok"] and calls == 1  # kept: no new call within its ttl


async def test_a_hung_probe_answers_on_time_and_holds_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from serve_app.routes import health

    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.2)
    calls = 0
    release = threading.Event()

    def hung() -> None:
        nonlocal calls
        calls += 1
        release.wait(timeout=10)

    check = Check(hung, ttl_s=0)
    reports = await asyncio.gather(*(check.report() for _ in range(5)))
    assert all(not r["ok"] and "no answer within" in r["error"] for r in reports)
    assert (await check.report())["ok"] is False and calls == 1
    release.set()


async def test_a_slow_status_keeps_its_last_good_answer_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Serve's controller busy rolling out (seconds without an answer) is not a reason to take
    the service out; a check that fails outright is believed at once."""
    from serve_app.routes import health

    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.2)
    slow = threading.Event()
    answers = iter([{"deployments": "all running"}, "slow", "slow"])

    def status() -> object:
        answer = next(answers)
        if answer == "slow":
            slow.wait(timeout=10)
        return answer

    check = Check(status, ttl_s=0, slow_ok_s=30)
    assert (await check.report())["ok"]
    held = await check.report()
    assert held["ok"] and held["deployments"] == "all running" and "stale_s" in held
    check.slow_ok_s = 0  # too old now
    assert not (await check.report())["ok"]
    slow.set()

    def refused() -> None:
        raise NotReady("no replica running: Ingress (UNHEALTHY)")

    failing = Check(refused, ttl_s=0, slow_ok_s=30)
    failing._good, failing._good_at = {"ok": True}, time.monotonic()
    report = await failing.report()
    assert not report["ok"] and "Ingress" in report["error"]


@pytest.fixture
def serve_says(monkeypatch: pytest.MonkeyPatch) -> dict[str, Overview]:
    """What serve.status() reports for the app, as the tests set it; read through the real
    deployments check (serving, Check and its cache) that /health/ready uses."""
    overview: dict[str, Overview] = {}
    monkeypatch.setattr(readiness, "deployments", lambda: serving(overview))
    monkeypatch.setattr(readiness, "_checks", {})
    monkeypatch.setattr(image_work, "WATCH_S", 0.05)
    monkeypatch.setattr(readiness, "STATUS_TTL_S", 0.05)
    return overview


async def _never() -> None:
    await asyncio.Event().wait()


async def test_a_call_to_a_deployment_with_no_replica_running_is_503_at_once(
    serve_says: dict[str, Overview],
) -> None:
    """The YoloDetector's replica died and its replacement is starting: a call queued for it
    is cancelled and answered 503 to retry, not 504 once the 30 s deadline has passed."""
    serve_says["Preprocessor"] = Overview(DeploymentStatus.HEALTHY, {ReplicaState.RUNNING: 1})
    serve_says["YoloDetector"] = Overview(DeploymentStatus.UNHEALTHY, {ReplicaState.STARTING: 1})
    call = asyncio.ensure_future(_never())
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"YoloDetector \(UNHEALTHY\) has no replica"):
        await within(started + 30, call, ("Preprocessor", "YoloDetector"))
    assert time.monotonic() - started < 2
    await asyncio.wait({call}, timeout=1)
    assert call.cancelled()  # Serve carries that to the replica, once there is one


async def test_a_call_waits_while_its_deployments_have_replicas_or_nobody_knows(
    serve_says: dict[str, Overview],
) -> None:
    serve_says["Preprocessor"] = Overview(DeploymentStatus.UPSCALING, {ReplicaState.RUNNING: 1})

    async def slow() -> str:
        await asyncio.sleep(0.4)
        return "done"

    assert await within(time.monotonic() + 5, slow(), ("Preprocessor",)) == "done"
    assert await within(time.monotonic() + 5, slow(), ("NotInTheReport",)) == "done"
    with pytest.raises(DeadlineExceeded):
        await within(time.monotonic() - image_work.HOP_GRACE_S + 0.3, _never(), ("Preprocessor",))
