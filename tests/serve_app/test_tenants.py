"""Tenants are separate (#15 item 3), in process (the FastAPI app over ASGI, the real stores):
another API key's tasks, uploads and Idempotency-Keys are as if they did not exist; open mode
scopes idempotency keys by client address and checks no ownership."""

from __future__ import annotations

import json

import httpx

from tests.serve_app.api_clients import JPEG, PIPELINE, Clients, by, clients

__all__ = ["clients"]  # the fixture


async def _batch(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post(
        "/api/v1/batch",
        files=[("files", ("c.jpg", JPEG, "image/jpeg"))],
        data={"pipeline": json.dumps(PIPELINE)},
        headers=headers,
    )


async def test_the_same_idempotency_key_from_two_keys_makes_two_tasks(clients: Clients) -> None:
    async with clients(keys=True) as http:
        first = await _batch(http, {**by("a"), "Idempotency-Key": "order-1"})
        other = await _batch(http, {**by("b"), "Idempotency-Key": "order-1"})
        replay = await _batch(http, {**by("a"), "Idempotency-Key": "order-1"})
    assert first.status_code == 202 and other.status_code == 202, other.text
    assert other.json()["task_id"] != first.json()["task_id"]
    assert replay.status_code == 200 and replay.json()["task_id"] == first.json()["task_id"]


async def test_another_keys_task_is_not_found(clients: Clients) -> None:
    async with clients(keys=True) as http:
        task_id = (await _batch(http, by("a"))).json()["task_id"]
        read = await http.get(f"/api/v1/tasks/{task_id}", headers=by("b"))
        cancel = await http.delete(f"/api/v1/tasks/{task_id}", headers=by("b"))
        own = await http.get(f"/api/v1/tasks/{task_id}", headers=by("a"))
    assert read.status_code == 404 and read.json()["error"]["code"] == "not_found"
    assert cancel.status_code == 404
    assert own.status_code == 200 and own.json()["status"] == "queued"  # B's cancel did nothing


async def test_another_keys_upload_is_not_found_anywhere(clients: Clients) -> None:
    async with clients(keys=True) as http:
        files = {"file": ("c.jpg", JPEG, "image/jpeg")}
        image_id = (await http.post("/api/v1/upload", files=files, headers=by("a"))).json()["id"]
        process = {"image_id": image_id, "steps": PIPELINE["steps"]}
        batch = {"image_ids": [image_id], "pipeline": PIPELINE}
        as_b = [
            await http.get(f"/api/v1/images/{image_id}", headers=by("b")),
            await http.get(f"/api/v1/images/{image_id}/meta", headers=by("b")),
            await http.get("/api/v1/image-info", params={"image_id": image_id}, headers=by("b")),
            await http.post("/api/v1/process", json=process, headers=by("b")),
            await http.post("/api/v1/batch", json=batch, headers=by("b")),
            await http.post(
                "/api/v1/resize", data={"image_id": image_id, "width": "8"}, headers=by("b")
            ),
        ]
        as_a = [
            await http.get(f"/api/v1/images/{image_id}", headers=by("a")),
            await http.post("/api/v1/process", json=process, headers=by("a")),
            await http.post("/api/v1/batch", json=batch, headers=by("a")),
        ]
    assert [answer.status_code for answer in as_b] == [404] * len(as_b), [a.text for a in as_b]
    assert [answer.status_code for answer in as_a] == [200, 200, 202]


async def test_a_stored_result_belongs_to_its_sources_owner(clients: Clients) -> None:
    async with clients(keys=True) as http:
        files = {"file": ("c.jpg", JPEG, "image/jpeg")}
        image_id = (await http.post("/api/v1/upload", files=files, headers=by("a"))).json()["id"]
        body = {"image_id": image_id, "steps": PIPELINE["steps"], "store": True}
        stored = (await http.post("/api/v1/process", json=body, headers=by("a"))).json()
        theirs = await http.get(f"/api/v1/images/{stored['id']}", headers=by("b"))
        mine = await http.get(f"/api/v1/images/{stored['id']}", headers=by("a"))
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
