"""Many nodes, simulated on this machine: what KubeRay's worker pods do on a cluster.

A Ray head (no CPUs, like the RayService's head) and worker nodes started with
`ray start --address` on free ports, each in its own process group so that killing one is a
real node loss. The app is the real Ingress and Preprocessor deployments (multinode_app.py),
deployed with `serve deploy` as KubeRay deploys serveConfigV2. Custom resources place them:
the Ingress on the `front` node, Preprocessor replicas only on the two `pool` nodes, at most
three per node, so four replicas cannot all fit on one.

1. Under load the Preprocessor scales out from one replica to four, spread over both pools.
2. A pool node is killed (SIGKILL to its raylet and workers) mid-load: every request gets an
   answer, 200 or a clear 503 (counted), and the survivors keep serving.
3. Without load it scales back in to one replica.

The load is bounded (a few client threads on 127.0.0.1, small images). Port 6379 and
`ray stop` are never used: only the processes this test started are stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serve_app.cli.local import LocalCluster, Ports, _bin, dashboard_get, free_port
from tests.conftest import encode, photo
from tests.kuberay.conftest import REPO_ROOT

pytestmark = pytest.mark.multinode

APP = "image-service"
INGRESS, PREPROCESSOR = "Ingress", "Preprocessor"
POOL_NODES = ("pool-a", "pool-b")
PER_POOL_NODE = 3  # Preprocessor replicas one pool node holds
MIN_REPLICAS, MAX_REPLICAS = 1, 4
CLIENT_THREADS = 4
# Detect a dead node in ~3 s instead of Ray's default ~30 s (GCS health checks).
FAST_FAILURE_DETECTION = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def serve_config(http_port: int) -> dict[str, Any]:
    """The deployments of serve_config.yaml, placed by custom resources, scaling fast."""
    return {
        # One proxy, on the head: on one machine every node's proxy would want the same port.
        # (On Kubernetes each pod has its own address and EveryNode is right.)
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": http_port},
        "applications": [
            {
                "name": APP,
                "route_prefix": "/",
                "import_path": "tests.kuberay.multinode_app:app",
                "deployments": [
                    {
                        "name": INGRESS,
                        "num_replicas": 1,
                        "max_ongoing_requests": 64,
                        "ray_actor_options": {"num_cpus": 0, "resources": {"front": 1}},
                    },
                    {
                        "name": PREPROCESSOR,
                        "max_ongoing_requests": 2,
                        "autoscaling_config": {
                            "min_replicas": MIN_REPLICAS,
                            "max_replicas": MAX_REPLICAS,
                            # Low, so that a few clients ask for every replica allowed.
                            "target_ongoing_requests": 0.5,
                            "upscale_delay_s": 1,
                            "downscale_delay_s": 3,
                            "metrics_interval_s": 0.5,
                            "look_back_period_s": 2,
                        },
                        "graceful_shutdown_wait_loop_s": 0.5,
                        "graceful_shutdown_timeout_s": 5,
                        "ray_actor_options": {"num_cpus": 0, "resources": {"pool": 1}},
                    },
                ],
            }
        ],
    }


@dataclass
class WorkerNode:
    name: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """The node disappears: its raylet, agents and workers die at once (no drain)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@dataclass
class MultiNodeCluster:
    head: LocalCluster
    log_dir: Path
    env: dict[str, str]
    workers: dict[str, WorkerNode] = field(default_factory=dict)

    def add_worker(self, name: str, resources: dict[str, float]) -> None:
        assert self.head.temp_dir
        cmd = [
            _bin("ray"),
            "start",
            f"--address={self.head.address}",
            "--block",
            "--num-cpus=1",
            "--object-store-memory=100000000",
            f"--resources={json.dumps({**resources, name: 1})}",
            f"--temp-dir={self.head.temp_dir}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
        ]
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            cmd,
            env={**self.head.process_env, **self.env},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers[name] = WorkerNode(name, process)

        # One at a time: nodes starting together on one machine can pick the same free port.
        def joined() -> bool:
            if process.poll() is not None:
                log_tail = (self.log_dir / f"{name}.log").read_text()[-2000:]
                raise RuntimeError(f"`ray start` of {name} exited:\n{log_tail}")
            return name in self.node_names().values()

        wait_for(joined, timeout_s=60, what=f"node {name} to join")

    def _get(self, path: str) -> Any:
        with dashboard_get(f"{self.head.dashboard_url}{path}", timeout=10) as response:
            return json.load(response)

    def node_names(self) -> dict[str, str]:
        """node id -> worker name (by its marker resource) or "head", for live nodes."""
        nodes = self._get("/api/v0/nodes?detail=1&limit=100")["data"]["result"]["result"]
        names = {}
        for node in nodes:
            if node["state"] != "ALIVE":
                continue
            marker = [n for n in self.workers if n in node["resources_total"]]
            names[node["node_id"]] = marker[0] if marker else "head"
        return names

    def replicas(self, deployment: str, state: str | None = "RUNNING") -> list[dict[str, Any]]:
        """A deployment's replicas in `state` (None: all), each with the name of its node."""
        body = self._get("/api/serve/applications/")
        app = (body.get("applications") or {}).get(APP) or {}
        details = (app.get("deployments") or {}).get(deployment) or {}
        names = self.node_names()
        return [
            {**r, "node": names.get(r.get("node_id") or "", "gone")}
            for r in details.get("replicas", [])
            if state is None or r["state"] == state
        ]

    def seen(self, load: Load) -> Callable[[], object]:
        """For wait_for: the load's answers so far and the Preprocessor's replicas by state."""

        def report() -> object:
            replicas = self.replicas(PREPROCESSOR, state=None)
            states = Counter(f"{r['state']}@{r['node']}" for r in replicas)
            return {"answers": dict(load.count()), "replicas": dict(states)}

        return report

    def stop(self) -> None:
        temp_dir = self.head.temp_dir
        for worker in self.workers.values():
            worker.kill()
        self.head.stop()
        # Ray's worker processes run in sessions of their own and outlive a killed raylet for
        # a while: end those of this cluster (their command lines name its private temp dir).
        if temp_dir:
            for pid in _processes_mentioning(f"{temp_dir}/"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.5,
    seen: Callable[[], object] | None = None,
) -> Any:
    """`seen`: what else to report on a timeout (the load's answers, replicas by state)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (OSError, ValueError, KeyError) as error:  # the dashboard between states
            last = error
        else:
            if last:
                return last
        time.sleep(interval_s)
    also = f"; {seen()}" if seen else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}{also}")


@dataclass
class Answer:
    at: float
    status: int | None  # None: no HTTP answer at all (connection error, timeout)
    code: str | None = None
    retry_after: str | None = None
    error: str | None = None


class Load:
    """A few clients posting a small resize, back to back, until stopped. Each asks for a
    different width, so the result cache cannot answer for the Preprocessor."""

    def __init__(self, url: str, image: bytes, threads: int = CLIENT_THREADS) -> None:
        self.url, self.image, self.threads = url, image, threads
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _run(self) -> None:
        widths = itertools.count(16)
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(
                        self.url,
                        files={"file": ("photo.jpg", self.image, "image/jpeg")},
                        data={"width": str(next(widths) % 4000 + 16)},
                    )
                except httpx.HTTPError as error:
                    answer = Answer(time.monotonic(), None, error=repr(error))
                else:
                    code = None
                    if response.headers.get("content-type", "").startswith("application/json"):
                        code = (response.json().get("error") or {}).get("code")
                    answer = Answer(
                        time.monotonic(),
                        response.status_code,
                        code,
                        response.headers.get("retry-after"),
                    )
                with self._lock:
                    self.answers.append(answer)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=60)

    def count(self, since: float = 0.0) -> Counter[int | None]:
        with self._lock:
            return Counter(a.status for a in self.answers if a.at >= since)


@dataclass
class Stack:
    cluster: MultiNodeCluster
    url: str
    image: bytes


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("multinode")
    http_port = free_port()
    config_path = root / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(serve_config(http_port), sort_keys=False))
    env = {
        "DATA_DIR": str(root / "data"),
        # Serve imports tests.kuberay.multinode_app on the nodes.
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
        # Image work one hop away, in the Preprocessor on the pool nodes (the layout for a
        # cluster that scales image work on nodes of its own), not inline in the ingress.
        "PROCESSING_INLINE": "false",
        **FAST_FAILURE_DETECTION,
    }
    # The head runs the GCS, the dashboard, the Serve controller and the proxy: no replicas.
    # Serve's own proxy: HAProxy would bind the HTTP port on every node of this one machine.
    head = LocalCluster(Ports.free(), num_cpus=0, env=env, fast_ingress=False)
    cluster = MultiNodeCluster(head, root, env)
    head.start(block=True)
    try:
        cluster.add_worker("front", {"front": 1})
        for name in POOL_NODES:
            cluster.add_worker(name, {"pool": PER_POOL_NODE})
        assert set(cluster.node_names().values()) == {"head", "front", *POOL_NODES}
        head.deploy(config_path, timeout_s=120)
        image = encode(photo("coffee"), "JPEG", quality=85)
        yield Stack(cluster, f"http://127.0.0.1:{http_port}/api/v1/resize", image)
    finally:
        cluster.stop()


def test_replicas_scale_out_across_nodes_under_load(stack: Stack) -> None:
    cluster = stack.cluster
    (ingress,) = cluster.replicas(INGRESS)
    assert ingress["node"] == "front"
    assert len(cluster.replicas(PREPROCESSOR)) == MIN_REPLICAS

    def scaled_out() -> list[dict[str, Any]] | None:
        replicas = cluster.replicas(PREPROCESSOR)
        return replicas if len(replicas) == MAX_REPLICAS else None

    with Load(stack.url, stack.image) as load:
        replicas = wait_for(
            scaled_out,
            timeout_s=60,
            what=f"{MAX_REPLICAS} Preprocessor replicas",
            seen=cluster.seen(load),
        )
    per_node = Counter(r["node"] for r in replicas)
    print(f"\nscale-out: replicas per node {dict(per_node)}; answers {dict(load.count())}")
    assert set(per_node) == set(POOL_NODES), per_node  # both pools, nothing elsewhere
    assert max(per_node.values()) <= PER_POOL_NODE
    assert set(load.count()) == {200}, load.count()


def test_requests_survive_the_loss_of_a_worker_node(stack: Stack) -> None:
    cluster = stack.cluster
    victim, survivor = POOL_NODES[1], POOL_NODES[0]

    def on_nodes(nodes: set[str], count: int | None = None) -> list[dict[str, Any]] | None:
        replicas = cluster.replicas(PREPROCESSOR)
        on = {r["node"] for r in replicas} == nodes
        return replicas if on and (count is None or len(replicas) == count) else None

    with Load(stack.url, stack.image) as load:
        replicas = wait_for(
            lambda: on_nodes(set(POOL_NODES)),
            timeout_s=60,
            what="Preprocessor replicas on both pool nodes",
            seen=cluster.seen(load),
        )
        doomed_pids = [r["pid"] for r in replicas if r["node"] == victim]
        wait_for(lambda: load.count()[200] >= 20, timeout_s=30, what="traffic before the loss")

        killed_at = time.monotonic()
        cluster.workers[victim].kill()
        for pid in doomed_pids:  # its replicas are really gone, not orphaned and serving
            wait_for(partial(_gone, pid), timeout_s=10, what=f"replica {pid} to die")

        # Serve replaces the lost replicas where they fit: the survivor holds three of the
        # four the load asks for (the fourth waits for a node, as on KubeRay for a new pod).
        wait_for(
            lambda: on_nodes({survivor}, PER_POOL_NODE),
            timeout_s=60,
            what=f"{PER_POOL_NODE} Preprocessor replicas on {survivor}",
            seen=cluster.seen(load),
        )
        recovered_at = time.monotonic()
        wait_for(
            lambda: load.count(since=recovered_at)[200] >= 20,
            timeout_s=30,
            what="traffic after recovery",
        )

    before, after = load.count()[200] - load.count(since=killed_at)[200], load.count(killed_at)
    print(
        f"\nnode loss: {sum(load.count().values())} requests; before the kill 200 x {before}; "
        f"from the kill on {dict(after)}; "
        f"recovered {recovered_at - killed_at:.1f}s after the kill"
    )
    unanswered = [a for a in load.answers if a.status is None]
    assert not unanswered, f"requests without an answer: {unanswered[:3]}"
    assert set(load.count()) <= {200, 503}, load.count()
    for answer in load.answers:
        if answer.status == 503:
            assert answer.code == "service_unavailable" and answer.retry_after, answer
    assert load.count(since=recovered_at) == Counter({200: load.count(since=recovered_at)[200]})


def test_scales_back_in_without_load(stack: Stack) -> None:
    cluster = stack.cluster
    wait_for(
        lambda: len(cluster.replicas(PREPROCESSOR)) == MIN_REPLICAS,
        timeout_s=60,
        what=f"the Preprocessor to scale in to {MIN_REPLICAS}",
    )
    # Deployments whose replicas died are UNHEALTHY until they run as many as they should.
    wait_for(
        lambda: cluster.head.app_status()[APP] == "RUNNING",
        timeout_s=30,
        what="the application to be RUNNING again",
    )
    response = httpx.post(
        stack.url, files={"file": ("photo.jpg", stack.image)}, data={"width": "64"}, timeout=30
    )
    assert response.status_code == 200


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
    return [pid for pid in pids if pid != os.getpid()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent, the killed raylet, cannot reap it).
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone(pid: int) -> bool:
    return not _alive(pid)
