"""Bound what one request can cost (issue #18) and live limits (issue #15 item 8), on the live
service: refused before decoding, deadlines that answer 504 and stop the work (the replica's
children measured, not only the answer), a departed client stopping its work, and one
`user_config` limits block reaching the ingress and the Preprocessor at once.

The deadline cases run under a live change of the limits (`serve deploy` with the one anchored
block of serve_config.yaml set), which is then undone: short deadlines keep the test quick.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from PIL import Image

from serve_app.cli.local import session_processes
from tests.conftest import encode, photo
from tests.integration.conftest import Service

# The deadline is well under the slow filter's time on the fastest host seen: median 15 on
# 1350x1012 is ~3700 units, ~13 s at the calibration's pace but 5 s on a faster day of this VM
# (a 5 s deadline once let it finish with 200 in CI).
PHASE_LIMITS = {"pipeline_timeout_s": 3.5, "max_work": 4000.0}
MEDIAN_15 = {"name": "median", "size": "15"}


def jpeg(width: int, height: int) -> bytes:
    # A fresh comment per call: distinct bytes, so the result cache never answers.
    img = photo("coffee").resize((width, height), Image.Resampling.BILINEAR)
    return encode(img, "JPEG", quality=85, comment=uuid.uuid4().bytes)


def killable_children(service: Service, deployment: str) -> list[psutil.Process]:
    """The child processes (deployments/killable.py) of `deployment`'s replicas."""
    assert service.cluster.process is not None
    found = []
    for proc in session_processes(service.cluster.process.pid):
        with contextlib.suppress(psutil.Error):
            if "deployments.killable" in " ".join(proc.cmdline()):
                parent = proc.parent()
                if parent is not None and deployment in " ".join(parent.cmdline()):
                    found.append(proc)
    return found


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def busy_during(procs: list[psutil.Process], seconds: float) -> float:
    """CPU seconds `procs` spend over the next `seconds`."""
    start = cpu_seconds(procs)
    time.sleep(seconds)
    return cpu_seconds(procs) - start


def test_median_15_on_a_27_mp_jpeg_is_refused_before_decoding(client: httpx.Client) -> None:
    data = encode(photo("coffee").resize((6000, 4500)), "JPEG", quality=80)
    started = time.monotonic()
    answer = client.post(
        "/api/v1/filter", files={"file": ("big.jpg", data, "image/jpeg")}, data=MEDIAN_15
    )
    took = time.monotonic() - started
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("too_costly", "size")
    assert "LIMITS_MAX_WORK" in error["message"] and "5,000" in error["message"]
    assert took < 5.0  # a full decode alone of 27 MP takes longer than the refusal


@pytest.fixture(scope="module")
def phase(service: Service) -> Iterator[Service]:
    """The service with PHASE_LIMITS set live through user_config, then set back."""
    config = yaml.safe_load(service.config.read_text())
    deployments = config["applications"][0]["deployments"]
    changed = Path(service.config).with_name("serve_config.limits.yaml")
    for deployment in deployments:  # what the anchor gives every one of them
        if "limits" in (deployment.get("user_config") or {}):
            deployment["user_config"]["limits"] = PHASE_LIMITS
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    service.cluster.deploy(changed)
    try:
        yield service
    finally:
        service.cluster.deploy(service.config)


def test_a_live_limits_change_reaches_the_ingress_and_the_preprocessor(
    phase: Service, client: httpx.Client, driver: None
) -> None:
    from ray import serve

    # ~4560 work units: under the default limit, over the phase's 4000. The ingress prices it
    # from the header (inline path's limits); the Preprocessor through its handle.
    data = jpeg(1500, 1125)
    answer = client.post(
        "/api/v1/filter", files={"file": ("a.jpg", data, "image/jpeg")}, data=MEDIAN_15
    )
    assert answer.status_code == 422, answer.text
    assert "the limit is 4,000" in answer.json()["error"]["message"]
    handle = serve.get_deployment_handle("Preprocessor", app_name="image-service")
    pipeline = {"steps": [{"op": "filter", "name": "median", "size": 15}]}
    with pytest.raises(Exception, match="the limit is 4,000"):
        handle.process.remote(data, pipeline).result()
    status: dict[str, Any] = handle.status.remote().result()
    assert status["limits"]["pipeline_timeout_s"] == PHASE_LIMITS["pipeline_timeout_s"]
    # Cheap work still runs inline under the same limits.
    small = client.post(
        "/api/v1/resize", files={"file": ("s.jpg", jpeg(800, 600), "image/jpeg")},
        data={"width": "200"},
    )  # fmt: skip
    assert small.status_code == 200


def test_past_its_deadline_a_slow_filter_answers_504_and_its_process_stops(
    phase: Service, client: httpx.Client
) -> None:
    # Median 15 on 1350x1012: ~3700 units (5-13 s of one core), admitted; the deadline 3.5 s.
    data = jpeg(1350, 1012)
    children = killable_children(phase, "Preprocessor")
    before = {p.pid for p in children}
    started = time.monotonic()
    answer = client.post(
        "/api/v1/filter", files={"file": ("a.jpg", data, "image/jpeg")}, data=MEDIAN_15
    )
    answered = time.monotonic()
    assert answer.status_code == 504, answer.text
    assert answer.json()["error"]["code"] == "deadline_exceeded"
    assert answered - started < PHASE_LIMITS["pipeline_timeout_s"] + 3  # 504 long before 408
    # Within deadline + 1 s the process doing it is gone (killed and replaced) and nothing of
    # the Preprocessor computes.
    time.sleep(max(0.0, started + PHASE_LIMITS["pipeline_timeout_s"] + 1.0 - time.monotonic()))
    after = {p.pid for p in killable_children(phase, "Preprocessor")}
    killed = before - after
    assert killed, "the child that ran the filter was not replaced"
    assert len(after) == len(before)  # a fresh one took its place (it is starting up)
    # Nothing of what was there before computes any more.
    assert busy_during([p for p in children if p.pid not in killed], 1.0) < 0.2


def _post_and_leave(base_url: str, data: bytes, fields: dict[str, str], wait_s: float) -> None:
    """Send a multipart POST on a raw socket, wait, and close it without reading the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    head = (
        f"POST /api/v1/filter HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + body)
        time.sleep(wait_s)


def test_a_client_that_leaves_stops_its_work(phase: Service) -> None:
    data = jpeg(1350, 1012)
    children = killable_children(phase, "Preprocessor")
    cpu_before = cpu_seconds(children)
    started = time.monotonic()
    _post_and_leave(phase.base_url, data, MEDIAN_15, wait_s=1.5)
    left = time.monotonic()
    assert cpu_seconds(children) - cpu_before > 0.3, "the filter never started"
    # Before the deadline would have stopped it: the cancellation reached the child, which
    # was killed.
    deadline = started + PHASE_LIMITS["pipeline_timeout_s"]
    while True:
        alive = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if len(alive) < len(children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    stopped = time.monotonic()
    assert len(alive) < len(children), "the child doing the work was not stopped"
    assert stopped < deadline, f"stopped {stopped - started:.2f} s in: by the deadline"
    assert busy_during(alive, 1.0) < 0.2
    assert left - started >= 1.5
