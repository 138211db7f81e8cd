"""One Ray cluster for the whole session, started the way `make run` starts it: a Ray head and
`serve deploy serve_config.yaml` (on free ports, with its own data folder).

TEST_STACK picks what it stores into: `sqlite+local` (the embedded defaults, by default) or
`postgresql+s3` (a private schema in the machine's PostgreSQL and a bucket in a moto S3
server this session starts). `make test` runs the persistence-heavy tests on both.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import httpx
import pytest
import ray
import yaml
from sqlalchemy import Engine, create_engine, text

from serve_app.cli.local import DEFAULT_CONFIG, LocalCluster, Ports, free_port
from tests.conftest import FALL_MODEL, private_schema

STACK = os.environ.get("TEST_STACK", "sqlite+local")
URL_SIGNING_KEY = "integration-url-signing-key"
CALLBACK_KEY = "integration-callback-key"


@dataclass
class Stack:
    """Where the cluster under test keeps its rows and blobs."""

    name: str
    env: dict[str, str]
    database_url: str
    storage_url: str
    storage_options: dict[str, object] = field(default_factory=dict)


@dataclass
class Service:
    cluster: LocalCluster
    base_url: str
    data_dir: Path
    config: Path
    stack: Stack
    engine: Engine

    def rows(self, table: str = "images") -> int:
        with self.engine.connect() as conn:
            count: int = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            return count

    def sql(self, query: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query), params)]

    def stored(self, quiet_s: float = 1.0, timeout_s: float = 20.0) -> tuple[int, int]:
        """(image rows, blobs) once earlier requests' background writes (the result cache
        saves after answering) have settled: no change for `quiet_s`."""
        deadline = time.monotonic() + timeout_s
        last = (self.rows(), self.blobs(), self.rows("results"))
        stable_since = time.monotonic()
        while time.monotonic() - stable_since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.2)
            now = (self.rows(), self.blobs(), self.rows("results"))
            if now != last:
                last, stable_since = now, time.monotonic()
        return last[0], last[1]

    def blobs(self) -> int:
        fs, root = fsspec.url_to_fs(self.stack.storage_url, **self.stack.storage_options)
        if not fs.exists(root):
            return 0
        return len(fs.find(root))


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    if STACK == "sqlite+local":
        yield Stack(STACK, {}, "", "")  # the cluster's DATA_DIR defaults; set by `service`
        return
    assert STACK == "postgresql+s3", f"unknown TEST_STACK {STACK!r}"
    import boto3

    # Only this stack needs them: the services are checked (and required under CI) here.
    admin: Engine = request.getfixturevalue("postgres_admin")
    endpoint: str = request.getfixturevalue("moto_endpoint")
    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(creds)
    bucket = f"it-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    storage = f"s3://{bucket}/blobs"
    with private_schema(admin, "it") as url:
        env = {**creds, "DATABASE_URL": url, "STORAGE_URL": storage, "S3_ENDPOINT_URL": endpoint}
        yield Stack(STACK, env, url, storage, {"client_kwargs": {"endpoint_url": endpoint}})


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, stack: Stack) -> Iterator[Service]:
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
        # Models a request may name (issue #17): the person detector and two random-weight
        # yolo11n, so three names cycle through a replica's two places.
        "MODELS_YOLO_REGISTRY": json.dumps(
            {"person": FALL_MODEL, "yolo11n": "yolo11n.yaml", "yolo11n-b": "yolo11n.yaml"}
        ),
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
        # Short leases so the tests see a dead runner's task taken over in seconds.
        "TASKS_LEASE_S": "4",
        "TASKS_SWEEP_INTERVAL_S": "0.5",
        # Replicas report metrics to the node's agent every second, not every ten.
        "RAY_metrics_report_interval_ms": "1000",
        # The URL API's HTTP loader on (loopback refused, as by default): its refusals are
        # tested without a byte leaving the machine.
        "SOURCE_HTTP_ENABLED": "true",
        # Signed URLs verify (the Playground signs with this key); unsafe/ stays allowed.
        "URL_SIGNING_KEYS": URL_SIGNING_KEY,
        # Task webhooks signed with this key, to a receiver on loopback allowed for callbacks
        # alone (sources still refuse loopback: test_url_api counts that refusal).
        "TASKS_CALLBACK_KEY": CALLBACK_KEY,
        "TASKS_CALLBACK_ALLOW_LOOPBACK": "true",
        **stack.env,
    }
    if stack.name == "sqlite+local":
        stack.database_url = f"sqlite:///{data_dir}/metadata.db"
        stack.storage_url = f"file://{data_dir}/blobs"
    cluster = LocalCluster(Ports.free(), num_cpus=2, env=env)
    cluster.start(block=True)
    engine = create_engine(stack.database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        cluster.deploy(config_path)
        yield Service(cluster, f"http://127.0.0.1:{port}", data_dir, config_path, stack, engine)
    finally:
        engine.dispose()
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
