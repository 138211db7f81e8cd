"""`make reliability`: the long reliability run, with figures, into bench/RELIABILITY.md.

One cluster stores into a PostgreSQL, a moto S3 server and a Redis of its own (rate limits on,
counted there), deployed from serve_config.yaml. Then, on 127.0.0.1 only, bounded in time:

1. Load: a mixed workload (resizes, 3-step pipelines, face and object detection, uploads,
   batches) at concurrency 1, 4, 16 and 64: requests/s, p50/p95/p99, and answers split into
   ok, shed (429/503/408), client (other 4xx) and server (5xx, dropped connections).
2. Faults under load (concurrency 8): a Preprocessor replica killed, a YoloDetector replica
   killed, Redis stopped, PostgreSQL stopped, the S3 server stopped — each brought back after a
   while. Every request must get an answer (success or a clear 503); the report says how long
   the service took to recover after the dependency returned. Then an Ingress replica killed
   and a rolling redeploy of the Ingress (bench/faults_ingress.py), /health/ready polled
   throughout: no request that started after the kill, or during the redeploy, may be lost.
   Then a batch at TASKS_MAX_ITEMS and two tenants sending one Idempotency-Key
   (bench/faults_tenants.py): the batch is accepted and succeeds, the tenants get a task each.
3. Tasks: a stale runner (bench/faults_tasks.py: a TaskRunner replica frozen past its lease,
   then resumed) leaves the outcome to its successor; every batch accepted during all of this
   must end (none lost, none stuck).
4. Memory: the cluster's resident memory idle, and its peak while 16 clients upload ~20 MB
   images, against a stated bound.

    python -m bench.reliability            # the full run (about 6 minutes)
    python -m bench.reliability --quick    # a short one, to try it
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import yaml
from PIL import Image
from skimage import data as skdata

from bench import faults_cost, faults_ingress, faults_tasks, faults_tenants
from bench.common import live_replicas
from bench.own_services import OwnServer, own_moto, own_postgres, own_redis, postgres_cluster
from pipelines.limits import Limits
from serve_app.cli.local import DEFAULT_CONFIG, LocalCluster, Ports, free_port

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "reliability.json"
REPORT = HERE / "RELIABILITY.md"
BUCKET = "reliability"
S3_KEY = "reliability"  # moto takes any credentials; botocore needs some to sign
MEMORY_BOUND_GIB = 8.0  # the stated ceiling for the whole cluster under the upload flood
TERMINAL = {"succeeded", "failed", "partially_failed", "cancelled"}


def _jpeg(img: Image.Image, quality: int = 88) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


PHOTOS = [_jpeg(Image.fromarray(f()).resize((1024, 768))) for f in (skdata.coffee, skdata.chelsea)]  # type: ignore[no-untyped-call]
FACE = _jpeg(Image.fromarray(skdata.astronaut()))  # type: ignore[no-untyped-call]


def classify(status: int | None) -> str:
    if status is None or (status >= 500 and status not in (503,)):
        return "server"
    if status in (429, 503, 408):
        return "shed"
    if status >= 400:
        return "client"
    return "ok"


@dataclass
class Answer:
    op: str
    status: int | None
    seconds: float
    at: float


@dataclass
class Load:
    """`clients` threads sending the mixed workload until stopped; every answer recorded."""

    base_url: str
    clients: int
    seed: int = 0
    answers: list[Answer] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _request(self, http: httpx.Client, rng: random.Random) -> tuple[str, httpx.Response]:
        roll = rng.random()
        photo = rng.choice(PHOTOS)
        files = {"file": ("p.jpg", photo, "image/jpeg")}
        if roll < 0.55:
            width = str(rng.randint(64, 900))
            return "resize", http.post("/api/v1/resize", files=files, data={"width": width})
        if roll < 0.70:
            pipeline = {"steps": [{"op": "resize", "width": rng.randint(64, 900)},
                                  {"op": "filter", "name": "sharpen"},
                                  {"op": "convert", "format": "webp"}]}  # fmt: skip
            data = {"pipeline": json.dumps(pipeline)}
            return "pipeline", http.post("/api/v1/process", files=files, data=data)
        if roll < 0.80:
            face = {"file": ("a.jpg", FACE, "image/jpeg")}
            return "faces", http.post("/api/v1/detect-faces", files=face)
        if roll < 0.87:
            face = {"file": ("a.jpg", FACE, "image/jpeg")}
            return "objects", http.post("/api/v1/detect-objects", files=face)
        if roll < 0.95:
            return "upload", http.post("/api/v1/upload", files=files)
        pipeline = {"steps": [{"op": "resize", "width": rng.randint(32, 200)}]}
        batch = [("files", ("a.jpg", p, "image/jpeg")) for p in PHOTOS]
        answer = http.post("/api/v1/batch", files=batch, data={"pipeline": json.dumps(pipeline)})
        if answer.status_code == 202:
            with self._lock:
                self.tasks.append(answer.json()["task_id"])
        return "batch", answer

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                op, status = "?", None
                try:
                    op, answer = self._request(http, rng)
                    status = answer.status_code
                except httpx.HTTPError:
                    pass  # no answer at all: counted as a server-side failure
                with self._lock:
                    self.answers.append(Answer(op, status, time.monotonic() - started, started))

    def __enter__(self) -> Load:
        for i in range(self.clients):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def since(self, start: float, end: float = float("inf")) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if start <= a.at < end]


def summary(answers: list[Answer], seconds: float) -> dict[str, Any]:
    classes = Counter(classify(a.status) for a in answers)
    ok = sorted(a.seconds for a in answers if classify(a.status) == "ok")

    def pct(p: float) -> float | None:
        return round(ok[min(len(ok) - 1, int(p * len(ok)))] * 1000, 1) if ok else None

    return {
        "requests": len(answers),
        "requests_per_s": round(len(answers) / seconds, 1),
        "ok_per_s": round(classes["ok"] / seconds, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "ok": classes["ok"],
        "shed": classes["shed"],
        "client": classes["client"],
        "server": classes["server"],
        "by_status": dict(Counter(str(a.status) for a in answers)),
        "by_op": {
            op: dict(Counter(str(a.status) for a in answers if a.op == op))
            for op in sorted({a.op for a in answers})
        },
    }


def cluster_memory(cluster: LocalCluster) -> tuple[int, int]:
    """(RSS, PSS) summed over the cluster's processes. RSS counts shared pages (Ray's object
    store, shared libraries) once per process; PSS splits them, so its sum is the real use."""
    assert cluster.process is not None
    root = psutil.Process(cluster.process.pid)
    rss = pss = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss, pss


def wait_until(check: Callable[[], bool], timeout_s: float) -> float | None:
    """Seconds until `check()` first holds, or None if it never did."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return round(time.monotonic() - started, 2)
        time.sleep(0.25)
    return None


@dataclass
class Stack:
    cluster: LocalCluster
    base_url: str
    redis: OwnServer
    postgres: OwnServer
    s3: OwnServer

    def restart_s3(self) -> None:
        """moto keeps buckets in memory: a restart comes back empty, so the bucket is made
        again (a real S3 outage loses nothing; objects stored before it are gone here)."""
        self.s3.start()
        self.make_bucket()

    def make_bucket(self) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.s3.url,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_KEY,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)


@contextlib.contextmanager
def stack() -> Iterator[Stack]:
    with (
        own_redis() as redis,
        postgres_cluster() as pg_folder,
        own_postgres(pg_folder) as postgres,
        own_moto() as s3,
        tempfile.TemporaryDirectory(prefix="reliability-") as root,
    ):
        port = free_port()
        config = yaml.safe_load(DEFAULT_CONFIG.read_text())
        config["http_options"]["port"] = port
        config_path = Path(root) / "serve_config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {
            "DATA_DIR": f"{root}/data",
            "DATABASE_URL": postgres.url,
            "STORAGE_URL": f"s3://{BUCKET}/blobs",
            "S3_ENDPOINT_URL": s3.url,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "REDIS_URL": redis.url,
            # Limits on (so Redis is in every request's path), high enough not to throttle.
            "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "RATE_LIMIT_BURST": "100000",
            "BREAKER_RESET_S": "3",
            "TASKS_LEASE_S": "8",
            "TASKS_SWEEP_INTERVAL_S": "1",
            "MODELS_YOLO_WEIGHTS": "pkg:fall_detection/models/best.pt",
            # As behind one proxy that appends X-Forwarded-For: bench/faults_tenants.py's two
            # open-mode tenants are two addresses it reports (clients sending none: the peer).
            "FORWARDED_TRUSTED_HOPS": "1",
        }
        built = Stack(LocalCluster(Ports.free(), num_cpus=2, env=env), "", redis, postgres, s3)
        built.make_bucket()
        built.cluster.start(block=True)
        try:
            built.cluster.deploy(config_path, timeout_s=300)
            built.base_url = f"http://127.0.0.1:{port}"
            built.cluster.connect()
            yield built
        finally:
            built.cluster.stop()


def _kill_replica(deployment: str) -> None:
    import ray

    name = live_replicas(deployment)[0].name
    assert name is not None, "Serve's replica actors are named"
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)


def _probe(base_url: str, kind: str) -> Callable[[], bool]:
    """A request that succeeds only when the faulted part works again."""

    def check() -> bool:
        with httpx.Client(base_url=base_url, timeout=10) as http:
            if kind == "objects":
                files = {"file": ("a.jpg", FACE, "image/jpeg")}
                return http.post("/api/v1/detect-objects", files=files).status_code == 200
            if kind == "ready":
                return http.get("/health/ready").status_code == 200
            if kind == "upload":
                files = {"file": ("p.jpg", PHOTOS[0], "image/jpeg")}
                return http.post("/api/v1/upload", files=files).status_code == 201
            width = str(random.randint(50, 999))
            files = {"file": ("p.jpg", PHOTOS[1], "image/jpeg")}
            return http.post("/api/v1/resize", files=files, data={"width": width}).is_success

    return check


def run(quick: bool) -> dict[str, Any]:
    hold = 4.0 if quick else 12.0
    fault_for = 4.0 if quick else 8.0
    levels = (1, 4, 16) if quick else (1, 4, 16, 64)
    report: dict[str, Any] = {"quick": quick, "levels": {}, "faults": {}}
    with stack() as built:
        base = built.base_url
        rss, pss = cluster_memory(built.cluster)
        report["memory"] = {
            "idle_rss_gib": round(rss / 2**30, 2),
            "idle_pss_gib": round(pss / 2**30, 2),
        }
        all_tasks: list[str] = []
        for clients in levels:
            with Load(base, clients, seed=clients) as load:
                time.sleep(hold)
            report["levels"][str(clients)] = summary(load.answers, hold)
            all_tasks += load.tasks
            print(f"load c={clients}: {report['levels'][str(clients)]}")

        faults: dict[str, tuple[Callable[[], None], Callable[[], None], str]] = {
            "kill Preprocessor replica": (
                lambda: _kill_replica("Preprocessor"), lambda: None, "resize"),
            "kill YoloDetector replica": (
                lambda: _kill_replica("YoloDetector"), lambda: None, "objects"),
            "stop Redis": (built.redis.stop, built.redis.start, "ready"),
            "stop PostgreSQL": (built.postgres.stop, built.postgres.start, "upload"),
            "stop S3 (moto)": (built.s3.stop, built.restart_s3, "upload"),
        }  # fmt: skip
        for name, (inject, heal, probe) in faults.items():
            with Load(base, 8, seed=len(name)) as load:
                time.sleep(hold / 2)
                fault_at = time.monotonic()
                inject()
                time.sleep(fault_for)
                heal()
                healed_at = time.monotonic()
                recovered = wait_until(_probe(base, probe), 120)
                time.sleep(hold / 2)
                ended = time.monotonic()
            during = load.since(fault_at, healed_at)
            after = load.since(healed_at + (recovered or 0), ended)
            entry = {
                "recovery_s": recovered,
                "during": summary(during, healed_at - fault_at),
                "after": summary(after, max(0.1, ended - healed_at - (recovered or 0))),
                "all": summary(load.answers, ended - load.answers[0].at if load.answers else 1),
            }
            report["faults"][name] = entry
            all_tasks += load.tasks
            print(f"fault {name}: recovered in {recovered}s; {entry['all']}")

        report["ingress_faults"], ingress_tasks = faults_ingress.run(
            built.cluster, base, hold_s=hold
        )
        all_tasks += ingress_tasks

        report["cost"] = faults_cost.run(built.cluster, base, 20.0 if quick else 60.0, Limits())
        print(f"expensive requests: {report['cost']}")

        report["stale_runner"] = faults_tasks.run(base, built.postgres.url, lease_s=8.0)
        print(f"stale runner: {report['stale_runner']}")
        addresses = [{"X-Forwarded-For": f"198.51.100.{n}"} for n in (1, 2)]
        report["tenants"], tenant_tasks = faults_tenants.run(base, addresses)
        all_tasks += tenant_tasks
        print(f"big batch and tenants: {report['tenants']}")

        # Every accepted task ends: none lost, none stuck.
        outcome: Counter[str] = Counter()
        with httpx.Client(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 240
            pending = set(all_tasks)
            while pending and time.monotonic() < deadline:
                for task_id in list(pending):
                    answer = http.get(f"/api/v1/tasks/{task_id}")
                    if answer.status_code == 404:
                        outcome["lost"] += 1
                        pending.discard(task_id)
                    elif answer.status_code == 200 and answer.json()["status"] in TERMINAL:
                        outcome[answer.json()["status"]] += 1
                        pending.discard(task_id)
                time.sleep(1)
            outcome["stuck"] = len(pending)
        report["tasks"] = {"accepted": len(all_tasks), **outcome}
        print(f"tasks: {report['tasks']}")

        report["memory"].update(memory_flood(built, seconds=hold))
    report["machine"] = {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
    }
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return report


def memory_flood(built: Stack, seconds: float) -> dict[str, Any]:
    """16 clients uploading ~20 MB images; the cluster's resident memory sampled throughout."""
    rng = np.random.default_rng(7)
    noise = Image.fromarray(rng.integers(0, 255, (3900, 3900, 3), dtype=np.uint8))
    big = _jpeg(noise, quality=97)  # ~20 MB: noise does not compress
    peak_rss = peak_pss = 0
    statuses = Counter[str]()
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=built.base_url, timeout=120) as http:
            while not stop.is_set():
                try:
                    code = http.post(
                        "/api/v1/resize",
                        files={"file": ("big.jpg", big, "image/jpeg")},
                        data={"width": str(random.randint(100, 2000))},
                    ).status_code
                except httpx.HTTPError:
                    code = 0
                with lock:
                    statuses[str(code)] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + max(seconds, 10)
    while time.monotonic() < deadline:
        rss, pss = cluster_memory(built.cluster)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    return {
        "upload_mb": round(len(big) / 2**20, 1),
        "flood_peak_rss_gib": round(peak_rss / 2**30, 2),
        "flood_peak_pss_gib": round(peak_pss / 2**30, 2),
        "bound_gib": MEMORY_BOUND_GIB,
        "within_bound": peak_pss / 2**30 < MEMORY_BOUND_GIB,
        "flood_answers": dict(statuses),
    }


def write_report(report: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Reliability",
        "",
        f"`make reliability` ({'quick' if report['quick'] else 'full'} run, finished "
        f"{report['finished']}; {report['machine']['cpus']} CPUs, load average at the end "
        f"{report['machine']['load_average']}). The cluster stores into its own PostgreSQL, "
        "moto S3 server and Redis (rate limits on); the client runs on the same machine. "
        "Raw figures: `bench/results/reliability.json`.",
        "",
        "## Load held (mixed workload)",
        "",
        "| clients | requests/s | ok/s | p50 ms | p95 ms | p99 ms | ok | shed (429/503) "
        "| client 4xx | server errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for clients, s in report["levels"].items():
        lines.append(
            f"| {clients} | {s['requests_per_s']} | {s['ok_per_s']} | {s['p50_ms']} | "
            f"{s['p95_ms']} | {s['p99_ms']} | {s['ok']} | {s['shed']} | {s['client']} | "
            f"{s['server']} |"
        )
    lines += [
        "",
        "## Faults survived (8 clients)",
        "",
        "| fault | recovered after it returned (s) | answers during | shed during "
        "| server errors (whole phase) | ok/s after |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in report["faults"].items():
        lines.append(
            f"| {name} | {f['recovery_s']} | {f['during']['requests']} | {f['during']['shed']} "
            f"| {f['all']['server']} | {f['after']['ok_per_s']} |"
        )
    if "ingress_faults" in report:
        lines += ["", *faults_ingress.report_lines(report["ingress_faults"])]
    tasks = report["tasks"]
    memory = report["memory"]
    lines += [
        "",
        "## Nothing lost",
        "",
        f"Batches accepted during the run: {tasks['accepted']}; lost: {tasks.get('lost', 0)}; "
        f"stuck: {tasks.get('stuck', 0)}; ended: "
        + ", ".join(f"{k} {v}" for k, v in tasks.items() if k in TERMINAL),
        "",
        "## Memory",
        "",
        f"Idle cluster: {memory['idle_pss_gib']} GiB proportional set size (PSS: shared pages "
        f"split between the processes that map them; {memory['idle_rss_gib']} GiB if every "
        f"process's RSS is added up). Peak while 16 clients uploaded {memory['upload_mb']} MB "
        f"JPEGs: {memory['flood_peak_pss_gib']} GiB PSS ({memory['flood_peak_rss_gib']} GiB "
        f"RSS summed); the bound is {memory['bound_gib']} GiB PSS: "
        f"{'held' if memory['within_bound'] else 'EXCEEDED'}. Answers {memory['flood_answers']}.",
        "",
        *(faults_cost.report_lines(report["cost"]) if "cost" in report else []),
        *(faults_tasks.report_lines(report["stale_runner"]) if "stale_runner" in report else []),
        *(
            faults_tenants.report_lines(report["tenants"], keyed=False)
            if "tenants" in report
            else []
        ),
        "## Bad inputs",
        "",
        "The hostile-input catalogue (`tests/fixtures/hostile/`), the property-based tests and "
        "the fuzz target run in `make test`; see those files for what each input attacks.",
        "",
    ]
    REPORT.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    report = run(args.quick)
    write_report(report)
    print(f"wrote {REPORT} and {RESULTS}")
    bad = sum(f["all"]["server"] for f in report["faults"].values())
    bad += sum(s["server"] for s in report["levels"].values())
    bad += faults_ingress.unexpected(report["ingress_faults"])
    bad += not report["stale_runner"].get("held")
    bad += faults_tenants.unexpected(report["tenants"], keyed=False)
    bad += report.get("cost", {}).get("server_errors", 0)  # issue #18: only 503 sheds work
    if bad or report["tasks"].get("lost") or report["tasks"].get("stuck"):
        raise SystemExit(f"reliability: {bad} server errors, tasks {report['tasks']}")


if __name__ == "__main__":
    main()
