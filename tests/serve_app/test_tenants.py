"""Tenants are separate (#15 item 3), in process (the FastAPI app over ASGI, the real stores):
another API key's tasks, uploads and Idempotency-Keys are as if they did not exist; open mode
scopes idempotency keys by client address and checks no ownership."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from deployments.face_detector import FaceDetector
from deployments.preprocessor import Preprocessor
from pipelines.limits import Limits
from serve_app import context
from serve_app.guards import breakers
from serve_app.guards.guard import Guard
from serve_app.ingress import api
from serve_app.security import ApiKeys, hash_key
from serve_app.services.ai import AiService
from serve_app.services.image_work import LocalImageWork
from serve_app.services.images import ImageService
from serve_app.services.tasks import TaskService
from serve_app.settings import TaskSettings
from serve_app.store.task_store import TaskStore
from tests.conftest import encode, photo
from tests.serve_app.conftest import Backend
from tests.serve_app.inprocess import InProcessHandle

JPEG = encode(photo("chelsea").resize((64, 48)), "JPEG")
PIPELINE = {"steps": [{"op": "resize", "width": 16}]}
KEYS = {"a": "key-of-a", "b": "key-of-b"}
Clients = Callable[..., Any]


@pytest.fixture
def clients(backend: Backend) -> Clients:
    images = ImageService(LocalImageWork(Limits(), threads=2), backend.db, backend.store, Limits())
    pre, faces = InProcessHandle(Preprocessor), InProcessHandle(FaceDetector)
    ai = AiService(pre, None, None, faces, Limits())  # type: ignore[arg-type]
    tasks = TaskService(images, TaskStore(backend.db), None, TaskSettings())  # type: ignore[arg-type]
    context.set_services(images, ai, tasks)
    breakers.reset_all()

    @asynccontextmanager
    async def client(keys: bool, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
        hashed = {name: hash_key(key) for name, key in KEYS.items()} if keys else {}
        context.set_guard(Guard(ApiKeys(hashed), None))
        transport = httpx.ASGITransport(app=api, client=(address, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as http:
            yield http

    return client


def _as(name: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[name]}


async def _batch(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post(
        "/api/v1/batch",
        files=[("files", ("c.jpg", JPEG, "image/jpeg"))],
        data={"pipeline": json.dumps(PIPELINE)},
        headers=headers,
    )


async def test_the_same_idempotency_key_from_two_keys_makes_two_tasks(clients: Clients) -> None:
    async with clients(keys=True) as http:
        first = await _batch(http, {**_as("a"), "Idempotency-Key": "order-1"})
        other = await _batch(http, {**_as("b"), "Idempotency-Key": "order-1"})
        replay = await _batch(http, {**_as("a"), "Idempotency-Key": "order-1"})
    assert first.status_code == 202 and other.status_code == 202, other.text
    assert other.json()["task_id"] != first.json()["task_id"]
    assert replay.status_code == 200 and replay.json()["task_id"] == first.json()["task_id"]


async def test_another_keys_task_is_not_found(clients: Clients) -> None:
    async with clients(keys=True) as http:
        task_id = (await _batch(http, _as("a"))).json()["task_id"]
        read = await http.get(f"/api/v1/tasks/{task_id}", headers=_as("b"))
        cancel = await http.delete(f"/api/v1/tasks/{task_id}", headers=_as("b"))
        own = await http.get(f"/api/v1/tasks/{task_id}", headers=_as("a"))
    assert read.status_code == 404 and read.json()["error"]["code"] == "not_found"
    assert cancel.status_code == 404
    assert own.status_code == 200 and own.json()["status"] == "queued"  # B's cancel did nothing


async def test_another_keys_upload_is_not_found_anywhere(clients: Clients) -> None:
    async with clients(keys=True) as http:
        files = {"file": ("c.jpg", JPEG, "image/jpeg")}
        image_id = (await http.post("/api/v1/upload", files=files, headers=_as("a"))).json()["id"]
        process = {"image_id": image_id, "steps": PIPELINE["steps"]}
        batch = {"image_ids": [image_id], "pipeline": PIPELINE}
        as_b = [
            await http.get(f"/api/v1/images/{image_id}", headers=_as("b")),
            await http.get(f"/api/v1/images/{image_id}/meta", headers=_as("b")),
            await http.get("/api/v1/image-info", params={"image_id": image_id}, headers=_as("b")),
            await http.post("/api/v1/process", json=process, headers=_as("b")),
            await http.post("/api/v1/batch", json=batch, headers=_as("b")),
            await http.post(
                "/api/v1/resize", data={"image_id": image_id, "width": "8"}, headers=_as("b")
            ),
        ]
        as_a = [
            await http.get(f"/api/v1/images/{image_id}", headers=_as("a")),
            await http.post("/api/v1/process", json=process, headers=_as("a")),
            await http.post("/api/v1/batch", json=batch, headers=_as("a")),
        ]
    assert [answer.status_code for answer in as_b] == [404] * len(as_b), [a.text for a in as_b]
    assert [answer.status_code for answer in as_a] == [200, 200, 202]


async def test_a_stored_result_belongs_to_its_sources_owner(clients: Clients) -> None:
    async with clients(keys=True) as http:
        files = {"file": ("c.jpg", JPEG, "image/jpeg")}
        image_id = (await http.post("/api/v1/upload", files=files, headers=_as("a"))).json()["id"]
        body = {"image_id": image_id, "steps": PIPELINE["steps"], "store": True}
        stored = (await http.post("/api/v1/process", json=body, headers=_as("a"))).json()
        theirs = await http.get(f"/api/v1/images/{stored['id']}", headers=_as("b"))
        mine = await http.get(f"/api/v1/images/{stored['id']}", headers=_as("a"))
    assert theirs.status_code == 404 and mine.status_code == 200


async def test_open_mode_scopes_idempotency_keys_by_client_and_shares_ids(
    clients: Clients,
) -> None:
    key = {"Idempotency-Key": "same"}
    async with clients(keys=False, address="192.0.2.1") as one:
        first = await _batch(one, key)
        files = {"file": ("c.jpg", JPEG, "image/jpeg")}
        image_id = (await one.post("/api/v1/upload", files=files)).json()["id"]
    async with clients(keys=False, address="192.0.2.2") as two:
        other = await _batch(two, key)
        read = await two.get(f"/api/v1/tasks/{first.json()['task_id']}")
        image = await two.get(f"/api/v1/images/{image_id}")
    assert first.status_code == 202 and other.status_code == 202
    assert other.json()["task_id"] != first.json()["task_id"]
    # One tenant in open mode: ids are unguessable capabilities, usable by whoever holds them.
    assert read.status_code == 200 and image.status_code == 200
