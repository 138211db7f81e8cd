"""Big batches and tenants (issue #15, items 1 and 3), for `make reliability`.

- A batch at TASKS_MAX_ITEMS (100 small JPEGs in one request) on the service as it stands:
  the promise is 202, then every item succeeds; a refusal would be 503 `overloaded`.
- Two tenants sending the same Idempotency-Key: each gets its own task (202 twice, never 409
  and never the other's task), and a retry by either replays its own (200). With API keys (the
  standalone run) the tenants are two keys, and each reading the other's task gets 404; in
  bench.reliability's open-mode stack they are two client addresses, as a proxy in front
  (FORWARDED_TRUSTED_HOPS=1 there) reports them in X-Forwarded-For.

    python -m bench.faults_tenants   # its own cluster, two API keys; bench.reliability calls run()
"""

from __future__ import annotations

import argparse
import io
import json
import time
import uuid
from typing import Any

import httpx
from PIL import Image
from skimage import data as skdata

TERMINAL = {"succeeded", "failed", "partially_failed", "cancelled"}
MAX_ITEMS = 100  # TASKS_MAX_ITEMS's default
PIPELINE = {"steps": [{"op": "resize", "width": 48}]}
KEYS = {"tenant-a": "bench-key-tenant-a", "tenant-b": "bench-key-tenant-b"}


def _files(count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    source = Image.fromarray(skdata.coffee())  # type: ignore[no-untyped-call]
    out = []
    for i in range(count):
        body = io.BytesIO()
        source.resize((96 + i, 64)).save(body, "JPEG", quality=80)
        out.append(("files", (f"{i}.jpg", body.getvalue(), "image/jpeg")))
    return out


def _submit(http: httpx.Client, files: list[Any], headers: dict[str, str]) -> httpx.Response:
    return http.post(
        "/api/v1/batch", files=files, data={"pipeline": json.dumps(PIPELINE)}, headers=headers
    )


def _wait(http: httpx.Client, task_id: str, headers: dict[str, str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = http.get(f"/api/v1/tasks/{task_id}", headers=headers)
        if answer.status_code == 200 and answer.json()["status"] in TERMINAL:
            return str(answer.json()["status"])
        time.sleep(0.5)
    return "stuck"


def run(base_url: str, tenants: list[dict[str, str]]) -> tuple[dict[str, Any], list[str]]:
    """Both scenarios; the report and the task ids accepted (bench.reliability checks that
    each ends). `tenants`: the headers that make two different tenants."""
    first, second = tenants
    tasks: list[str] = []
    with httpx.Client(base_url=base_url, timeout=120) as http:
        started = time.monotonic()
        big = _submit(http, _files(MAX_ITEMS), first)
        accept_s = round(time.monotonic() - started, 2)
        big_status = "refused"
        if big.status_code == 202:
            tasks.append(big.json()["task_id"])
            big_status = _wait(http, big.json()["task_id"], first, 300)
        batch = {
            "items": MAX_ITEMS,
            "answer": big.status_code,
            "accept_s": accept_s,
            "status": big_status,
            "done_s": round(time.monotonic() - started, 1),
        }

        key = {"Idempotency-Key": f"same-{uuid.uuid4().hex[:8]}"}
        files = _files(2)
        a = _submit(http, files, first | key)
        b = _submit(http, files, second | key)
        a_again = _submit(http, files, first | key)
        ids = [r.json().get("task_id") for r in (a, b, a_again) if r.status_code in (200, 202)]
        tasks += [i for i in dict.fromkeys(ids) if i]
        a_id = a.json().get("task_id") if a.status_code == 202 else None
        b_id = b.json().get("task_id") if b.status_code == 202 else None
        crossed = http.get(f"/api/v1/tasks/{a_id}", headers=second).status_code if a_id else None
        idempotency = {
            "answers": [a.status_code, b.status_code, a_again.status_code],
            "separate_tasks": bool(a_id and b_id and a_id != b_id),
            "replay_is_own": a_again.status_code == 200 and a_again.json()["task_id"] == a_id,
            "other_tenant_reads": crossed,
        }
    return {"batch": batch, "idempotency": idempotency}, tasks


def unexpected(result: dict[str, Any], keyed: bool) -> int:
    """Broken promises: a big batch refused or not succeeded, tenants sharing a task."""
    batch, keys = result["batch"], result["idempotency"]
    bad = int(batch["answer"] != 202 or batch["status"] != "succeeded")
    bad += int(not keys["separate_tasks"] or not keys["replay_is_own"])
    bad += int(keyed and keys["other_tenant_reads"] != 404)
    return bad


def report_lines(result: dict[str, Any], keyed: bool) -> list[str]:
    """The section bench.reliability writes into RELIABILITY.md."""
    batch, keys = result["batch"], result["idempotency"]
    return [
        "## Big batches and tenants (issue #15)",
        "",
        "| | figure |",
        "| --- | --- |",
        f"| batch of {batch['items']} files (TASKS_MAX_ITEMS) | answered {batch['answer']} in "
        f"{batch['accept_s']} s; {batch['status']} after {batch['done_s']} s |",
        f"| two tenants, one Idempotency-Key: A, B, A again | {keys['answers']}; separate "
        f"tasks: {keys['separate_tasks']}; A's retry replays A's: {keys['replay_is_own']} |",
        f"| B reading A's task | {keys['other_tenant_reads']} "
        f"({'API keys: must be 404' if keyed else 'open mode: ids are capabilities, 200'}) |",
        "",
    ]


def main() -> None:
    from bench.common import serve_cluster
    from serve_app.security import hash_key

    argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None).parse_args()
    keys = json.dumps({name: hash_key(key) for name, key in KEYS.items()})
    with serve_cluster(env={"SECURITY_API_KEYS": keys}) as bench:
        tenants = [{"X-API-Key": key} for key in KEYS.values()]
        result, _ = run(bench.base_url, tenants)
    print(json.dumps(result, indent=2))
    print("\n".join(report_lines(result, keyed=True)))
    if bad := unexpected(result, keyed=True):
        raise SystemExit(f"faults_tenants: {bad} broken promises")


if __name__ == "__main__":
    main()
