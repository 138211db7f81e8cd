"""Operating the live service: /metrics passes promtool and is scraped by a real Prometheus
that finds Serve's series and ours; a request id survives two deployments' JSON logs; the
health report shows dependencies and breakers."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve_app.cli.local import free_port
from tests.conftest import encode, photo
from tests.integration.conftest import Service

OUR_SERIES = (
    "ray_image_requests",
    "ray_image_request_duration_seconds_bucket",
    "ray_image_processing_duration_seconds_bucket",
    "ray_image_faces_detected",
    "ray_image_rejections",
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make install` installs Debian's prometheus package")
    return path


def _traffic(client: httpx.Client) -> None:
    """A little of everything the metrics count."""
    jpeg = encode(photo("astronaut"), "JPEG")
    for width in (40, 41):
        files = {"file": ("a.jpg", jpeg, "image/jpeg")}
        assert client.post("/api/v1/resize", files=files, data={"width": str(width)}).is_success
    files = {"file": ("a.jpg", jpeg, "image/jpeg")}
    assert client.post("/api/v1/detect-faces", files=files).is_success
    files = {"file": ("x.jpg", b"not an image at all", "image/jpeg")}
    assert client.post("/api/v1/resize", files=files, data={"width": "10"}).status_code == 415


def _metrics_with(
    client: httpx.Client, names: tuple[str, ...], timeout: float = 60, *, also: str = ""
) -> str:
    """/metrics once every series in `names` (and the text `also`) is there: each replica
    exports on its own schedule, and the ingress has two."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get("/metrics")
        assert answer.status_code == 200, answer.text
        text = answer.text
        missing = [n for n in names if f"\n{n}" not in text and not text.startswith(n)]
        missing += [also] if also not in text else []
        if not missing:
            return text
        assert time.monotonic() < deadline, f"never exported: {missing}"
        time.sleep(1)


def test_metrics_endpoint_passes_promtool(client: httpx.Client, tmp_path: Path) -> None:
    _traffic(client)
    text = _metrics_with(
        client, ("ray_serve_num_http_requests", *OUR_SERIES), also='reason="format"'
    )
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    checked = subprocess.run(
        [_tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True
    )
    # promtool exits 1 for lint advice too: Ray tags every series, ours included, with
    # camelCase labels (SessionName, WorkerId...). A format error, or any other complaint
    # about our series (names, units, suffixes), must not appear.
    ray_tags = "label names should be written in 'snake_case' not 'camelCase'"
    problems = [
        line
        for line in checked.stderr.splitlines()
        if "error while linting" in line
        or (line.startswith("ray_image_") and not line.endswith(ray_tags))
    ]
    assert not problems, problems
    assert 'reason="format"' in text  # the 415 above, counted as a rejection
    assert 'route="/api/v1/resize"' in text


@pytest.fixture(scope="module")
def prometheus(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus server scraping the service's /metrics every second."""
    folder = tmp_path_factory.mktemp("prometheus")
    target = service.base_url.removeprefix("http://")
    (folder / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: image-service\n"
        "    metrics_path: /metrics\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            _tool("prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_real_prometheus_scrapes_our_series(client: httpx.Client, prometheus: str) -> None:
    _traffic(client)
    deadline = time.monotonic() + 90
    wanted = {"ray_image_requests_total", "ray_image_processing_duration_seconds_bucket",
              "ray_serve_num_http_requests_total"}  # fmt: skip
    found: set[str] = set()
    with httpx.Client(timeout=5) as prom:
        while found != wanted:
            assert time.monotonic() < deadline, f"Prometheus found only {found}"
            for name in wanted - found:
                try:
                    answer = prom.get(f"{prometheus}/api/v1/query", params={"query": name})
                except httpx.HTTPError:
                    break  # still starting
                if answer.status_code == 200 and answer.json()["data"]["result"]:
                    found.add(name)
            time.sleep(1)
        up = prom.get(f"{prometheus}/api/v1/query", params={"query": "up"}).json()
    assert up["data"]["result"][0]["value"][1] == "1"


def _log_lines_with(service: Service, needle: str) -> dict[str, list[dict[str, object]]]:
    """JSON log records naming `needle`, by the deployment whose replica wrote them."""
    assert service.cluster.temp_dir is not None
    found: dict[str, list[dict[str, object]]] = {}
    for path in Path(service.cluster.temp_dir).glob("session_*/logs/serve/replica_*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if needle in line:
                record = json.loads(line)
                found.setdefault(str(record.get("deployment")), []).append(record)
    return found


def test_request_id_is_kept_returned_and_logged_by_each_deployment(
    client: httpx.Client, service: Service
) -> None:
    request_id = f"trace-{uuid.uuid4().hex}"
    files = {"file": ("a.jpg", encode(photo("astronaut")), "image/jpeg")}
    answer = client.post("/api/v1/detect-faces", files=files, headers={"X-Request-ID": request_id})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == request_id
    deadline = time.monotonic() + 30
    while True:
        found = _log_lines_with(service, request_id)
        if {f"image-service_{d}" for d in ("Ingress", "Preprocessor", "FaceDetector")} <= set(
            found
        ):
            break
        assert time.monotonic() < deadline, f"request id logged only by {sorted(found)}"
        time.sleep(0.5)
    for records in found.values():
        assert all(r["request_id"] == request_id for r in records)
    # Without one, Serve makes an id and returns it.
    made = client.get("/health/live").headers.get("x-request-id")
    assert made and made != request_id


def test_batch_tasks_record_the_request_id(client: httpx.Client, service: Service) -> None:
    request_id = f"batch-{uuid.uuid4().hex}"
    files = [("files", ("a.jpg", encode(photo("coffee")), "image/jpeg"))]
    pipeline = json.dumps({"steps": [{"op": "resize", "width": 33}]})
    answer = client.post(
        "/api/v1/batch", files=files, data={"pipeline": pipeline},
        headers={"X-Request-ID": request_id},
    )  # fmt: skip
    task_id = answer.json()["task_id"]
    rows = service.sql("SELECT request_id FROM tasks WHERE id = :id", id=task_id)
    assert rows == [(request_id,)]


def test_health_report_shows_dependencies_and_breakers(client: httpx.Client) -> None:
    report = client.get("/health/").json()
    assert report["status"] == "ok"
    assert {"deployments", "database", "storage"} <= set(report["checks"])
    assert all(state == "closed" for state in report["breakers"].values())
    assert client.get("/health/ready").status_code == 200
