"""A stale task runner (issue #15, item 2), for `make reliability` and on its own.

A batch runs; the TaskRunner replica that holds it is frozen (SIGSTOP) past its lease, so the
other replica's sweeper takes the task over (a new lease epoch); then the frozen one is resumed
(SIGCONT) while the successor works, still believing it owns the task. The promise: the task
ends with the successor's outcome (succeeded, every item), and nothing the stale runner tries
after it resumes lands: the items are the same a lease after the end as at the end.

    python -m bench.faults_tasks            # its own cluster (SQLite, local blobs)

`bench/reliability.py` runs the same scenario on its PostgreSQL + S3 + Redis stack.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import time
from typing import Any

import httpx
from PIL import Image
from skimage import data as skdata

from bench.common import live_replicas
from serve_app.store.db import Database
from serve_app.store.task_store import TERMINAL, TaskStore, TaskView

APP = "image-service"
ITEMS = 16
# Each item takes a while (a median filter on a 1 MP image), so the batch outlives the pause.
PIPELINE = {
    "steps": [
        {"op": "resize", "width": 1200},
        {"op": "filter", "name": "median", "size": 7},
        {"op": "convert", "format": "png"},
    ]
}


def runner_pids() -> dict[str, int]:
    """Each live TaskRunner replica's id (the name it claims tasks under) and pid. Needs a
    connected Ray driver."""
    alive = live_replicas("TaskRunner", APP)
    # Serve names a replica's actor SERVE_REPLICA::<app>#<deployment>#<replica id>.
    return {str(a.name).rsplit("#", 1)[-1]: int(a.pid) for a in alive if a.pid and a.name}


def _batch(http: httpx.Client) -> str:
    files = []
    source = Image.fromarray(skdata.astronaut())  # type: ignore[no-untyped-call]
    for index in range(ITEMS):
        img = source.rotate(index * 7)  # new bytes each: the result cache never answers
        out = io.BytesIO()
        img.save(out, "JPEG", quality=90)
        files.append(("files", (f"{index}.jpg", out.getvalue(), "image/jpeg")))
    answer = http.post("/api/v1/batch", files=files, data={"pipeline": json.dumps(PIPELINE)})
    answer.raise_for_status()
    return str(answer.json()["task_id"])


def _items(view: TaskView) -> list[tuple[Any, ...]]:
    return [(i.status, i.result_image_id, i.error_code) for i in view.items]


def _wait(store: TaskStore, task_id: str, check: Any, timeout_s: float) -> TaskView | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = store.view(task_id)
        if view is not None and check(view):
            return view
        time.sleep(0.25)
    return None


def run(base_url: str, database_url: str, lease_s: float) -> dict[str, Any]:
    """The scenario on a running cluster whose driver is connected; its figures."""
    for plain in ("postgresql://", "postgres://"):  # psycopg 3, as the service's settings do
        if database_url.startswith(plain):
            database_url = "postgresql+psycopg://" + database_url[len(plain) :]
    store = TaskStore(Database(database_url))
    with httpx.Client(base_url=base_url, timeout=120) as http:
        task_id = _batch(http)
    started = _wait(store, task_id, lambda v: v.task.status == "running", 60)
    assert started is not None, "the batch never started"
    stale, epoch = started.task.runner, started.task.lease_epoch
    pid = runner_pids()[str(stale)]
    result: dict[str, Any] = {"task_id": task_id, "items": ITEMS, "lease_s": lease_s}
    os.kill(pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    try:
        taken = _wait(store, task_id, lambda v: v.task.lease_epoch > epoch, 4 * lease_s + 30)
    finally:
        os.kill(pid, signal.SIGCONT)  # resumed while the successor works
    result["paused_s"] = round(time.monotonic() - paused_at, 1)
    result["taken_over"] = taken is not None
    ended = _wait(store, task_id, lambda v: v.task.status in TERMINAL, 300)
    if ended is None:
        return result | {"ended": False, "held": False}
    time.sleep(lease_s + 2)  # anything the stale runner still writes would land by now
    later = store.view(task_id)
    assert later is not None
    result |= {
        "ended": True,
        "status": ended.task.status,
        "error": ended.task.error,
        "attempts": ended.task.attempts,
        "outcome_by_successor": ended.task.runner != stale or ended.task.lease_epoch > epoch,
        "items_succeeded": sum(i.status == "succeeded" for i in ended.items),
        "undone_after_end": sum(a != b for a, b in zip(_items(ended), _items(later), strict=True))
        + (later.task.status != ended.task.status),
        "stale_runner_alive": runner_pids().get(str(stale)) == pid,
    }
    result["held"] = bool(
        result["taken_over"]
        and result["status"] == "succeeded"
        and result["items_succeeded"] == ITEMS
        and result["outcome_by_successor"]
        and not result["undone_after_end"]
    )
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    """The section bench.reliability writes into RELIABILITY.md."""
    return [
        "## A stale task runner (issue #15)",
        "",
        f"A batch of {result['items']} images; its TaskRunner replica frozen (SIGSTOP) for "
        f"{result.get('paused_s')} s against a {result['lease_s']} s lease, then resumed "
        "(SIGCONT) while the other replica runs the task.",
        "",
        "| | figure |",
        "| --- | --- |",
        f"| taken over by the other replica | {result.get('taken_over')} |",
        f"| outcome | {result.get('status')} ({result.get('items_succeeded')} of "
        f"{result['items']} items, attempts {result.get('attempts')}) |",
        f"| outcome is the successor's | {result.get('outcome_by_successor')} |",
        f"| rows changed after the end (stale writes) | {result.get('undone_after_end')} |",
        f"| stale replica alive after resuming | {result.get('stale_runner_alive')} |",
        f"| promise | {'held' if result.get('held') else 'BROKEN'} |",
        "",
    ]


def main() -> None:
    from bench.common import serve_cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lease-s", type=float, default=8.0)
    args = parser.parse_args()
    env = {"TASKS_LEASE_S": str(args.lease_s), "TASKS_SWEEP_INTERVAL_S": "1"}
    with serve_cluster(env=env) as bench:
        bench.cluster.connect()
        result = run(bench.base_url, f"sqlite:///{bench.workdir}/data/metadata.db", args.lease_s)
    print(json.dumps(result, indent=2))
    print("\n".join(report_lines(result)))
    if not result.get("held"):
        raise SystemExit("stale runner: the promise did not hold")


if __name__ == "__main__":
    main()
