"""GET /api/v1/tasks/{id}/events (#17), in process on the real stores: the test plays the
runner through the task store (claim, item writes, finish) while a client follows the stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message

from serve_app import context
from serve_app.ingress import api
from serve_app.services import task_events
from serve_app.store.task_store import Lease, TaskStore
from tests.serve_app.api_clients import JPEG, PIPELINE, Clients, by, clients

__all__ = ["clients"]  # the fixture
ITEMS = 3


def parse(body: str) -> list[dict[str, Any]]:
    """The events of an SSE body: [{"event", "id", "data"}], comments and retry left out."""
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append(
                {
                    "event": fields["event"],
                    "id": fields.get("id"),
                    "data": json.loads(fields["data"]),
                }
            )
    return events


async def _batch(http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> str:
    files = [("files", (f"{i}.jpg", JPEG, "image/jpeg")) for i in range(ITEMS)]
    answer = await http.post(
        "/api/v1/batch", files=files, data={"pipeline": json.dumps(PIPELINE)}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["task_id"]
    return task_id


def _store() -> TaskStore:
    return context.task_service().store


def _claim(task_id: str) -> Lease:
    task = _store().claim(task_id, "test-runner", 30.0)
    assert task is not None
    return Lease.of(task)


async def _run_items(task_id: str, pause_s: float) -> None:
    """The runner's part: each item ends after a pause (one fails), then the task."""
    store = _store()
    lease = _claim(task_id)
    for index in range(ITEMS):
        await asyncio.sleep(pause_s)
        if index == 1:
            assert store.item_failed(task_id, index, lease, "bad_image", "damaged")
        else:
            assert store.item_succeeded(task_id, index, lease, None, [{"n": index}])
    store.finish(task_id, lease)


@pytest.fixture
def fast(clients: Clients) -> Clients:
    settings = context.task_service().settings
    settings.events_poll_s, settings.events_heartbeat_s = 0.05, 1.0
    return clients


async def test_every_item_comes_before_the_end(fast: Clients) -> None:
    async with fast(keys=True) as http:
        task_id = await _batch(http, by("a"))
        runner = asyncio.create_task(_run_items(task_id, pause_s=0.2))
        answer = await http.get(f"/api/v1/tasks/{task_id}/events", headers=by("a"))
        await runner
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = parse(answer.text)
    assert [e["event"] for e in events] == ["item"] * ITEMS + ["end"]
    items = [e["data"] for e in events[:-1]]
    assert [item["index"] for item in items] == [0, 1, 2]  # in the order they ended
    assert [item["status"] for item in items] == ["succeeded", "failed", "succeeded"]
    assert items[1]["error"]["code"] == "bad_image" and items[2]["results"] == [{"n": 2}]
    assert [item["progress"]["done"] for item in items] == [1, 2, 3]
    assert events[-1]["data"]["status"] == "partially_failed"
    assert context.task_events().open == 0


async def test_a_resumed_stream_sends_what_ended_after_the_last_id(
    fast: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast(keys=False) as http:
        task_id = await _batch(http)
        await _run_items(task_id, pause_s=0.05)
        whole = parse((await http.get(f"/api/v1/tasks/{task_id}/events")).text)
        first_id = whole[0]["id"]
        with_margin = parse(
            (
                await http.get(
                    f"/api/v1/tasks/{task_id}/events", headers={"Last-Event-ID": first_id}
                )
            ).text
        )
        monkeypatch.setattr(task_events, "RESUME_MARGIN_S", 0.0)
        strict = parse(
            (
                await http.get(
                    f"/api/v1/tasks/{task_id}/events", headers={"Last-Event-ID": first_id}
                )
            ).text
        )
    assert [e["data"]["index"] for e in strict if e["event"] == "item"] == [1, 2]
    # Within the margin the items after it come again, but the resumed one never does.
    resumed = [e["data"]["index"] for e in with_margin if e["event"] == "item"]
    assert resumed == [1, 2] and with_margin[-1]["event"] == "end"


async def test_another_tenants_task_has_no_events(fast: Clients) -> None:
    async with fast(keys=True) as http:
        task_id = await _batch(http, by("a"))
        theirs = await http.get(f"/api/v1/tasks/{task_id}/events", headers=by("b"))
        missing = await http.get("/api/v1/tasks/nope/events", headers=by("a"))
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    assert missing.status_code == 404


async def test_streams_past_the_limit_are_refused(fast: Clients) -> None:
    context.task_service().settings.events_max_streams = 1
    async with fast(keys=False) as http:
        task_id = await _batch(http)
        following = asyncio.create_task(http.get(f"/api/v1/tasks/{task_id}/events"))
        for _ in range(100):
            if context.task_events().open:
                break
            await asyncio.sleep(0.02)
        refused = await http.get(f"/api/v1/tasks/{task_id}/events")
        await http.delete(f"/api/v1/tasks/{task_id}")  # the task ends: so does the stream
        ended = await asyncio.wait_for(following, 5)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded"
    assert parse(ended.text)[-1]["data"]["status"] == "cancelled"


async def test_a_stream_closes_before_the_request_timeout(fast: Clients) -> None:
    context.task_service().settings.events_max_s = 1.6
    async with fast(keys=False) as http:
        task_id = await _batch(http)
        answer = await asyncio.wait_for(http.get(f"/api/v1/tasks/{task_id}/events"), 5)
    assert answer.status_code == 200 and parse(answer.text) == []  # no end: the client resumes
    assert "retry: " in answer.text and ": keep-alive" in answer.text


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_a_dropped_client_ends_its_stream(fast: Clients, spec_version: str) -> None:
    """Starlette learns of a disconnect by receive() (ASGI < 2.4) or by send() failing
    (2.4): either way the stream's generator ends at once and no stream stays open."""
    async with fast(keys=False) as http:
        task_id = await _batch(http)
    started = asyncio.Event()
    gone = asyncio.Event()

    async def receive() -> Message:
        if spec_version == "2.3":
            await started.wait()
            return {"type": "http.disconnect"}
        await gone.wait()  # 2.4: nothing to read until the server sees the socket closed
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            if started.is_set() and spec_version == "2.4":
                gone.set()
                raise OSError("the client closed the connection")
            started.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/api/v1/tasks/{task_id}/events",
        "raw_path": f"/api/v1/tasks/{task_id}/events".encode(),
        "query_string": b"",
        "headers": [(b"host", b"in-process")],
        "client": ("127.0.0.1", 5000),
        "server": ("in-process", 80),
    }
    # 2.4: Starlette raises ClientDisconnect to the server, which drops the connection.
    with contextlib.suppress(ClientDisconnect):
        await asyncio.wait_for(api(scope, receive, send), 5)
    assert started.is_set()
    assert context.task_events().open == 0


def test_the_events_route_is_in_the_api_schema() -> None:
    api.openapi_schema = None  # built afresh, from the routes as they are
    route = api.openapi()["paths"]["/api/v1/tasks/{task_id}/events"]["get"]
    assert "text/event-stream" in route["responses"]["200"]["content"]
