"""Batch tasks through HTTP on the real cluster: a 20-image batch with progress, downloadable
results, AI steps, idempotent retries, cancellation, bad requests, and a TaskRunner replica
killed mid-batch (its task is taken over, not lost). `make test` runs this file on SQLite +
local files and again on PostgreSQL + S3 (moto)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
import ray

from tests.conftest import ASTRONAUT_FACE, best_iou, decode, encode, normalised, photo, text_image
from tests.integration.conftest import CALLBACK_KEY, Service

THREE_STEPS = {
    "steps": [
        {"op": "resize", "width": 160, "height": 160, "mode": "fill"},
        {"op": "filter", "name": "sharpen"},
        {"op": "convert", "format": "webp", "quality": 80},
    ]
}
TERMINAL = {"succeeded", "failed", "partially_failed", "cancelled"}


def _files(count: int, size: int = 480) -> list[tuple[str, tuple[str, bytes, str]]]:
    names = ["coffee", "chelsea", "astronaut", "camera"]
    return [
        (
            "files",
            (
                f"{i}.jpg",
                encode(photo(names[i % 4]).resize((size + i, size)), "JPEG", quality=90),
                "image/jpeg",
            ),
        )
        for i in range(count)
    ]


def _submit(
    client: httpx.Client, files: list[Any], pipeline: dict[str, Any], **kwargs: Any
) -> httpx.Response:
    return client.post(
        "/api/v1/batch", files=files, data={"pipeline": json.dumps(pipeline)}, **kwargs
    )


def _wait(
    client: httpx.Client, task_id: str, timeout: float = 180
) -> tuple[dict[str, Any], list[int]]:
    """Poll until the task ends; the task and every `done` count seen on the way."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(f"/api/v1/tasks/{task_id}").raise_for_status().json()
        seen.append(task["progress"]["done"])
        if task["status"] in TERMINAL:
            return task, seen
        assert time.monotonic() < deadline, f"task stuck: {task['status']} {task['progress']}"
        time.sleep(0.1)


def test_a_batch_of_20_images_through_3_steps(client: httpx.Client) -> None:
    accepted = _submit(client, _files(20), THREE_STEPS)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["status"] in ("queued", "running")
    assert body["progress"]["total"] == 20
    assert accepted.headers["location"] == body["url"] == f"/api/v1/tasks/{body['task_id']}"
    task, seen = _wait(client, body["task_id"])
    assert task["status"] == "succeeded", task
    assert task["progress"] == {"done": 20, "succeeded": 20, "failed": 0, "total": 20}
    assert seen == sorted(seen) and seen[0] < 20, f"progress never moved: {seen}"
    assert task["started_at"] and task["finished_at"] >= task["started_at"]
    for item in task["items"]:
        assert item["status"] == "succeeded" and item["error"] is None
        result = client.get(item["result_url"])
        assert result.status_code == 200 and result.headers["content-type"] == "image/webp"
        assert decode(result.content).size == (160, 160)


def test_the_events_of_a_batch_through_serve(client: httpx.Client) -> None:
    """SSE through Serve's proxy: every item as it ends, then the end, then the stream closes."""
    task_id = _submit(client, _files(6), THREE_STEPS).json()["task_id"]
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/api/v1/tasks/{task_id}/events", timeout=120) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event, json.loads(line.removeprefix("data: "))))
    assert [name for name, _ in events] == ["item"] * 6 + ["end"]
    assert sorted(data["index"] for _, data in events[:-1]) == list(range(6))
    assert [data["progress"]["done"] for _, data in events[:-1]] == list(range(1, 7))
    assert events[-1][1]["status"] == "succeeded"


def test_ai_steps_read_the_image_the_steps_before_left(client: httpx.Client) -> None:
    face = client.post(
        "/api/v1/upload", files={"file": ("a.jpg", encode(photo("astronaut")), "image/jpeg")}
    ).json()["id"]
    words = encode(text_image("Batch OCR works"), "PNG")
    pipeline = {"steps": [{"op": "detect_faces"}, {"op": "ocr"}]}
    accepted = client.post(
        "/api/v1/batch",
        files=[("files", ("t.png", words, "image/png"))],
        data={"pipeline": json.dumps(pipeline), "image_ids": face},
    )
    assert accepted.status_code == 202, accepted.text
    task, _ = _wait(client, accepted.json()["task_id"])
    assert task["status"] == "succeeded", task
    by_source = {item["source_image_id"]: item for item in task["items"]}
    astronaut = by_source[face]
    assert astronaut["result_url"] is None  # no image step: nothing new to store
    faces, ocr = astronaut["results"]
    assert (faces["op"], ocr["op"]) == ("detect_faces", "ocr")
    assert best_iou(ASTRONAUT_FACE, faces["faces"]) > 0.5
    (text_item,) = (item for item in task["items"] if item["source_image_id"] != face)
    assert normalised(text_item["results"][1]["text"]) == "batch ocr works"


def test_a_batch_at_max_items_is_accepted_on_an_idle_service(client: httpx.Client) -> None:
    """TASKS_MAX_ITEMS (100) files at once: each upload used to take a slot of the ingress's
    image queue at once, and past threads + queue (~34) the batch was refused with 503."""
    accepted = _submit(client, _files(100, size=64), {"steps": [{"op": "resize", "width": 32}]})
    assert accepted.status_code == 202, accepted.text
    task, _ = _wait(client, accepted.json()["task_id"])
    assert task["status"] == "succeeded" and task["progress"]["succeeded"] == 100


def test_idempotency_key_returns_the_same_task(client: httpx.Client) -> None:
    files = _files(2)
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = _submit(client, files, THREE_STEPS, headers=key)
    again = _submit(client, files, THREE_STEPS, headers=key)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["task_id"] == first.json()["task_id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = _submit(client, files, {"steps": [{"op": "filter", "name": "blur"}]}, headers=key)
    assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"
    _wait(client, first.json()["task_id"])


def test_cancel_stops_a_running_batch(client: httpx.Client) -> None:
    slow = {"steps": [{"op": "filter", "name": "median", "size": 9}]}
    accepted = _submit(client, _files(12, size=900), slow)
    task_id = accepted.json()["task_id"]
    cancelled = client.delete(f"/api/v1/tasks/{task_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    task, _ = _wait(client, task_id, timeout=60)
    # Unfinished items end cancelled at once; the runner stops its work in flight.
    deadline = time.monotonic() + 30
    while any(i["status"] in ("queued", "running") for i in task["items"]):
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "cancelled"
    assert sum(i["status"] == "cancelled" for i in task["items"]) >= 6
    again = client.delete(f"/api/v1/tasks/{task_id}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


# A field the route ignores keeps the body multipart when a case sends no image.
NO_IMAGES = [("note", ("note.txt", b"", "text/plain"))]


@pytest.mark.parametrize(
    ("images", "data", "status", "field"),
    [
        (0, {"pipeline": json.dumps(THREE_STEPS)}, 422, "files"),
        (1, {"pipeline": "{not json"}, 422, "pipeline"),
        (1, {"pipeline": json.dumps({"steps": [{"op": "resize", "width": -1}]})}, 422, "width"),
        (1, {"pipeline": json.dumps({"steps": [{"op": "detect_objects", "confidence": 2}]})},
         422, "confidence"),
        (1, {"pipeline": json.dumps({"steps": []})}, 422, "steps"),
        (0, {"pipeline": json.dumps(THREE_STEPS), "image_ids": "nosuchimage"}, 404, "image_id"),
        (1, {}, 422, "pipeline"),
    ],
)  # fmt: skip
def test_bad_batches_are_refused_before_any_work(
    client: httpx.Client, service: Service, images: int, data: dict[str, str], status: int,
    field: str,
) -> None:  # fmt: skip
    before = (service.rows("tasks"), service.rows("images"))
    answer = client.post("/api/v1/batch", files=_files(images) or NO_IMAGES, data=data)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["field"] == field
    assert (service.rows("tasks"), service.rows("images")) == before


def test_a_batch_in_json_and_a_wrong_content_type(client: httpx.Client) -> None:
    image_id = client.post(
        "/api/v1/upload", files={"file": ("c.png", encode(photo("chelsea"), "PNG"), "image/png")}
    ).json()["id"]
    accepted = client.post(
        "/api/v1/batch", json={"image_ids": [image_id, image_id], "pipeline": THREE_STEPS}
    )
    assert accepted.status_code == 202, accepted.text
    task, _ = _wait(client, accepted.json()["task_id"])
    assert task["status"] == "succeeded"
    refused = client.post("/api/v1/batch", content=b"x", headers={"content-type": "text/plain"})
    assert refused.status_code == 415


def test_killing_the_runner_mid_batch_loses_nothing(
    client: httpx.Client, service: Service, driver: None
) -> None:
    """The replica running the task is killed; the other replica takes the task over once
    its lease (TASKS_LEASE_S=4 here) runs out, and redoes only the unfinished items."""
    pipeline = {"steps": [{"op": "filter", "name": "median", "size": 9}, *THREE_STEPS["steps"]]}
    accepted = _submit(client, _files(30, size=1100), pipeline)
    task_id = accepted.json()["task_id"]
    deadline = time.monotonic() + 60
    while True:
        task = client.get(f"/api/v1/tasks/{task_id}").json()
        if task["status"] == "running" and task["progress"]["done"] >= 2:
            break
        assert task["status"] not in TERMINAL, "the batch ended before the kill"
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    ((runner,),) = service.sql("SELECT runner FROM tasks WHERE id = :id", id=task_id)
    replica = ray.get_actor(f"SERVE_REPLICA::image-service#TaskRunner#{runner}", namespace="serve")
    ray.kill(replica, no_restart=True)
    killed_at = time.monotonic()
    at_kill = client.get(f"/api/v1/tasks/{task_id}").json()
    print(f"killed runner {runner} at {at_kill['status']} {at_kill['progress']}")
    assert at_kill["status"] == "running", "the batch ended before the kill"
    task, _ = _wait(client, task_id, timeout=240)
    assert task["status"] == "succeeded", task
    assert task["attempts"] >= 2, "the task was not taken over"
    assert task["progress"] == {"done": 30, "succeeded": 30, "failed": 0, "total": 30}
    for item in task["items"]:
        assert client.get(item["result_url"]).status_code == 200
    ((new_runner,),) = service.sql("SELECT runner FROM tasks WHERE id = :id", id=task_id)
    assert new_runner != runner
    print(f"task taken over and finished {time.monotonic() - killed_at:.1f}s after the kill")


def test_each_item_gets_its_own_ai_results(client: httpx.Client) -> None:
    """Items run concurrently: each one's AI output is what the model finds on that item's own
    image (the same call made directly on its stored result)."""
    names = ["coffee", "chelsea", "astronaut", "camera"]
    files = [("files", (f"{n}.jpg", encode(photo(n), "JPEG"), "image/jpeg")) for n in names]
    pipeline = {"steps": [{"op": "resize", "width": 400}, {"op": "detect_faces"}]}
    task, _ = _wait(client, _submit(client, files, pipeline).json()["task_id"])
    assert task["status"] == "succeeded", [i["error"] for i in task["items"]]
    for item in task["items"]:
        result = client.get(item["result_url"]).content
        direct = client.post(
            "/api/v1/detect-faces", files={"file": ("r.jpg", result, "image/jpeg")}
        ).json()
        assert item["results"][0]["faces"] == direct["faces"], item["index"]
    astronaut = task["items"][2]["results"][0]["faces"]
    x1, y1, x2, y2 = (c * 400 / 512 for c in ASTRONAUT_FACE)
    assert best_iou((x1, y1, x2, y2), astronaut) > 0.5


def test_a_batch_with_a_callback_url_posts_once_signed(client: httpx.Client) -> None:
    """Webhooks (issue #17): exactly one POST of the ended task's JSON, its X-Signature the
    HMAC-SHA256 of the body under TASKS_CALLBACK_KEY; a private literal is refused at once."""
    posts: list[tuple[dict[str, str], bytes]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook?task=1"
        refused = client.post(
            "/api/v1/batch",
            json={"image_ids": ["x"], "pipeline": THREE_STEPS, "callback_url": "http://10.1.2.3/"},
        )
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "callback_url"
        accepted = client.post(
            "/api/v1/batch",
            files=_files(2),
            data={"pipeline": json.dumps(THREE_STEPS), "callback_url": url},
        )
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        assert accepted.json()["callback"] == {
            "url": url, "state": None, "attempts": 0, "error": None,
        }  # fmt: skip
        task, _ = _wait(client, task_id)
        assert task["status"] == "succeeded", task
        deadline = time.monotonic() + 30
        while not posts:
            assert time.monotonic() < deadline, client.get(f"/api/v1/tasks/{task_id}").json()
            time.sleep(0.1)
        time.sleep(3)  # several sweeps later: still the one POST
    finally:
        server.shutdown()
        server.server_close()
    assert len(posts) == 1, posts
    headers, body = posts[0]
    expected = "sha256=" + hmac.new(CALLBACK_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Signature"], expected)
    sent = json.loads(body)
    assert (sent["task_id"], sent["status"]) == (task_id, "succeeded")
    assert sent["items"] == client.get(f"/api/v1/tasks/{task_id}").json()["items"]
    final = client.get(f"/api/v1/tasks/{task_id}").json()["callback"]
    assert (final["state"], final["attempts"], final["error"]) == ("delivered", 1, None)
