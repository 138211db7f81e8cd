"""Run the service on this machine: a local Ray head plus `serve deploy serve_config.yaml`.

    python -m serve_app.cli.local up     # start Ray if needed, deploy, wait, print the URLs
    python -m serve_app.cli.local down   # shut the app down and stop Ray

`make run` and `make stop` call these; the test suite starts its own cluster through the same
functions on free ports, so what the tests exercise is what a user runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_CONFIG = PROJECT_ROOT / "serve_config.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bin(name: str) -> str:
    """The Ray CLIs of this interpreter's environment (the venv), not whatever is on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def _ray_token() -> str | None:
    """The token a Ray cluster started here will require, where Ray would find it.

    Ray 2.60 turns token authentication on for every `ray start` that finds a token (and a
    plain local `ray.init()` writes one to ~/.ray/auth_token), so the dashboard then answers
    401 to anything that does not present it.
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return None
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    return path.read_text().strip() if path.is_file() else None


def dashboard_get(url: str, timeout: float) -> Any:
    """GET from the dashboard, with the cluster's token when there is one."""
    token = _ray_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


@dataclass
class Ports:
    """Every port a Ray head listens on; Ray's defaults would collide between two clusters
    (and its GCS default, 6379, with Redis)."""

    gcs: int = 6380
    dashboard: int = 8265
    client_server: int = 10001
    agent_listen: int = 52365
    agent_grpc: int = 0
    runtime_env_agent: int = 0
    metrics_export: int = 0
    # HAProxy's own listeners (fast ingress only): Prometheus exporter and stats page.
    haproxy_metrics: int = 9101
    haproxy_stats: int = 8404

    @classmethod
    def free(cls) -> Ports:
        return cls(*(free_port() for _ in range(9)))

    def flags(self) -> list[str]:
        pairs = {
            "--port": self.gcs,
            "--dashboard-port": self.dashboard,
            "--ray-client-server-port": self.client_server,
            "--dashboard-agent-listen-port": self.agent_listen,
            "--dashboard-agent-grpc-port": self.agent_grpc,
            "--runtime-env-agent-port": self.runtime_env_agent,
            "--metrics-export-port": self.metrics_export,
        }
        return [f"{flag}={port}" for flag, port in pairs.items() if port]


# Serve settings for every cluster this project starts (the Dockerfile sets the same; a test
# keeps them equal). Figures: bench/RESULTS.md.
SERVE_ENV = {
    # Serve logs (one JSON access line per request) go to its log files only, not a second
    # time to each worker's stderr file: ingress CPU per health check 1.86 -> 1.73 ms.
    # Replica print()/stderr then land in those files.
    "RAY_SERVE_LOG_TO_STDERR": "0",
    # The controller's loop at 2 Hz instead of 10: an idle cluster's controller 7% -> 2.4% of a
    # core, and fewer wake-ups to preempt torch's OpenMP threads. Autoscaling waits seconds
    # (upscale_delay_s) and health checks run every 10 s anyway.
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    # Uvicorn (Serve's proxy and each ingress replica's HTTP server) trusts X-Forwarded-For
    # from 127.0.0.1 by default and rewrites the client address from it: HAProxy connects from
    # there and passes a client's header on untouched (it adds none), so any client could pick
    # its own address. Trust nobody here; the guard reads the header itself, as far as
    # FORWARDED_TRUSTED_HOPS says (serve_app/guards/tenant.py).
    "FORWARDED_ALLOW_IPS": "none",
}


# What a request sees when an ingress replica dies (issue #15, item 11; bench/faults_ingress.py).
# A request HAProxy has not yet handed to a replica (its connection refused: the replica is
# gone) is retried on another, up to 3 times, each time on a different one (Serve's template
# adds `option redispatch 1`): nothing that had not reached the dead replica is lost. Only
# connection failures are retried, as Serve chooses: a request the replica had started may
# have stored an upload or created a task, and HAProxy cannot replay a body it did not keep
# whole anyway (measured: with `empty-response` added and 1 MiB buffers, the ~150 KB uploads
# killed in flight were lost all the same). Those in flight end as HAProxy ends them: a
# keep-alive connection closed without an answer (its signal that the client may retry,
# RFC 9112 9.3.1), or Serve's 500 on a connection's first request. Set here, not left to
# Serve's defaults, so that an upgrade cannot change it unnoticed (a test reads it back).
HAPROXY_RETRIES = {"RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure", "RAY_SERVE_HAPROXY_RETRIES": "3"}


def fast_ingress_env(ports: Ports) -> dict[str, str]:
    """Serve's fast HTTP path (bench/RESULTS.md measures it): HAProxy takes the HTTP port and
    forwards to the ingress replicas, which serve HTTP themselves, instead of Serve's ProxyActor
    relaying every request (and its body, in ASGI messages) to them over actor calls.
    RAY_SERVE_THROUGHPUT_OPTIMIZED added nothing measurable on top of it here, buffers request
    logs until 1000 lines, and breaks handles used from synchronous driver code that inherits
    the environment: left off."""
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        **HAPROXY_RETRIES,
        # One HAProxy thread per core is plenty at this size; its default is 4.
        "RAY_SERVE_HAPROXY_NBTHREAD": str(min(4, os.cpu_count() or 1)),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(ports.haproxy_metrics),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(ports.haproxy_stats),
    }


def fast_ingress_default() -> bool:
    """On unless SERVE_FAST_INGRESS says 0/false (then Serve's default proxy)."""
    return os.environ.get("SERVE_FAST_INGRESS", "1").lower() not in ("0", "false", "no", "off")


@dataclass
class LocalCluster:
    ports: Ports = field(default_factory=Ports)
    num_cpus: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    temp_dir: str | None = None
    # HAProxy binds the HTTP port on every node: several nodes on one machine need it off.
    fast_ingress: bool = field(default_factory=fast_ingress_default)

    @property
    def process_env(self) -> dict[str, str]:
        """Environment for `ray start` and the Ray CLIs: Ray's CLIs send the cluster token only
        when the mode says "token", so say it whenever a token will be required."""
        auth = {"RAY_AUTH_MODE": "token"} if _ray_token() else {}
        fast = fast_ingress_env(self.ports) if self.fast_ingress else {}
        return {**os.environ, **auth, **SERVE_ENV, **fast, **self.env}

    def connect(self) -> None:
        """Join this process to the cluster as a Ray driver (tests, benchmarks)."""
        import logging

        import ray

        if self.process_env.get("RAY_AUTH_MODE") == "token":
            os.environ["RAY_AUTH_MODE"] = "token"
            # Ray caches its config at import; re-read it so this process sends the token
            # (what Ray itself does when it turns token auth on).
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")
        ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports.gcs}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dashboard}"

    def is_up(self) -> bool:
        try:
            with dashboard_get(f"{self.dashboard_url}/api/version", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def start(self, *, block: bool = False, timeout_s: float = 90) -> None:
        """`block=True` keeps `ray start` in the foreground, in its own process group, so the
        caller can stop exactly this cluster (tests); otherwise Ray daemonises (make run)."""
        cmd = [
            _bin("ray"),
            "start",
            "--head",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--disable-usage-stats",
            *self.ports.flags(),
        ]
        if self.num_cpus is not None:
            cmd.append(f"--num-cpus={self.num_cpus}")
        env = self.process_env
        if block:
            # A private temp dir: Ray records "the current cluster" under its temp dir, and a
            # later plain `ray.init()` must not find this short-lived cluster there.
            self.temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
            cmd.append(f"--temp-dir={self.temp_dir}")
            self.process = subprocess.Popen(
                [*cmd, "--block"], env=env, cwd=PROJECT_ROOT, start_new_session=True
            )
        else:
            subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, check=True)
        deadline = time.monotonic() + timeout_s
        while not self.is_up():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("the Ray dashboard did not come up")
            time.sleep(0.5)

    def deploy(self, config: Path, *, timeout_s: float = 180) -> None:
        subprocess.run(
            [_bin("serve"), "deploy", "-a", self.dashboard_url, str(config)],
            cwd=PROJECT_ROOT,
            env=self.process_env,
            check=True,
        )
        names = [a["name"] for a in yaml.safe_load(config.read_text())["applications"]]
        self.wait_running(names, timeout_s=timeout_s)

    def app_status(self) -> dict[str, str]:
        url = f"{self.dashboard_url}/api/serve/applications/"
        with dashboard_get(url, timeout=10) as response:
            body = json.load(response)
        return {name: app["status"] for name, app in (body.get("applications") or {}).items()}

    def wait_running(self, names: list[str], *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        status: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                status = self.app_status()
            except (urllib.error.URLError, OSError, ValueError):
                status = {}
            if any(status.get(n) == "DEPLOY_FAILED" for n in names):
                raise RuntimeError(f"deploy failed: {status}; see `serve status`")
            if status and all(status.get(n) == "RUNNING" for n in names):
                return
            time.sleep(1)
        raise TimeoutError(f"applications not RUNNING after {timeout_s}s: {status}")

    def stop(self) -> None:
        if self.process is not None:
            # Every process of this cluster shares the group `ray start --block` leads; an
            # orderly drain would wait ~30 s on the GCS for nothing we need to keep.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            _kill_session(self.process.pid)
            self.process = None
            if self.temp_dir:
                shutil.rmtree(self.temp_dir, ignore_errors=True)
        else:
            subprocess.run([_bin("ray"), "stop"], check=False)


def session_processes(sid: int) -> list[psutil.Process]:
    """Every live process in session `sid`. `ray start --block` leads its own session, and the
    GCS, raylet, dashboard, HAProxy and replicas all run inside it."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
            if os.getsid(proc.pid) == sid:
                found.append(proc)
    return found


def _kill_session(sid: int) -> None:
    """What outlived the process group: HAProxy runs in its own group (its parent's, a Ray
    worker's) and does not die with the raylet, but it stays in the session."""
    for proc in session_processes(sid):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def http_port(config: Path) -> int:
    port: int = (yaml.safe_load(config.read_text()).get("http_options") or {}).get("port", 8000)
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.cli.local", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--ray-port", type=int, default=int(os.environ.get("RAY_PORT", 6380)))
    parser.add_argument(
        "--dashboard-port", type=int, default=int(os.environ.get("RAY_DASHBOARD_PORT", 8265))
    )
    parser.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("RAY_METRICS_PORT", 8080))
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(
        Ports(gcs=args.ray_port, dashboard=args.dashboard_port, metrics_export=args.metrics_port)
    )
    if args.command == "down":
        if cluster.is_up():
            subprocess.run(
                [_bin("serve"), "shutdown", "-y", "-a", cluster.dashboard_url],
                env=cluster.process_env,
                check=False,
            )
        cluster.stop()
        return 0
    if cluster.is_up():
        print(f"Ray is already running at {cluster.address}; redeploying.")
    else:
        cluster.start()
    cluster.deploy(args.config)
    api = f"http://127.0.0.1:{http_port(args.config)}"
    print(
        "\nImage Processing Service is running.\n"
        f"  API:            {api}/api/v1\n"
        f"  Docs (OpenAPI): {api}/docs\n"
        f"  Health:         {api}/health/ready\n"
        f"  Ray dashboard:  {cluster.dashboard_url}\n"
        f"  Metrics:        http://127.0.0.1:{args.metrics_port}/metrics\n"
        "Stop it with `make stop`."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
