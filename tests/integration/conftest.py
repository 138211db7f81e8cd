"""One Ray cluster for the whole session, started the way `make run` starts it: a Ray head and
`serve deploy serve_config.yaml` (on free ports, with its own data folder)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import ray
import yaml

from serve_app.local import DEFAULT_CONFIG, LocalCluster, Ports, free_port
from tests.conftest import FALL_MODEL


@dataclass
class Service:
    cluster: LocalCluster
    base_url: str
    data_dir: Path
    config: Path

    def rows(self, table: str = "images") -> int:
        with sqlite3.connect(self.data_dir / "metadata.db") as conn:
            count: int = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            return count

    def blobs(self) -> int:
        return sum(1 for p in (self.data_dir / "blobs").rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("serve")
    data_dir = root / "data"
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    port = free_port()
    config["http_options"]["port"] = port
    config_path = root / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    # Small limits make the over-limit cases cheap to send; everything else is the default.
    env = {
        "DATA_DIR": str(data_dir),
        "LIMITS_MAX_UPLOAD_BYTES": str(8 * 1024 * 1024),
        # No COCO weights ship offline: a trained person detector stands in for yolo11n.pt.
        "MODELS_YOLO_WEIGHTS": FALL_MODEL,
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
    }
    cluster = LocalCluster(Ports.free(), num_cpus=2, env=env)
    cluster.start(block=True)
    try:
        cluster.deploy(config_path)
        yield Service(cluster, f"http://127.0.0.1:{port}", data_dir, config_path)
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def driver(service: Service) -> Iterator[None]:
    """This process as a Ray driver of the session's cluster, connected once: Serve's handle
    router is a per-process singleton that does not survive ray.shutdown() and a new init."""
    service.cluster.connect()
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.base_url, timeout=60) as http:
        yield http
