"""The FastAPI app over ASGI on the real stores (a Backend), with in-process deployments and
no task runner: tests drive the task store themselves. `clients(keys=...)` opens a client,
with the two API keys of KEYS or in open mode from `address`."""

from __future__ import annotations

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


def by(name: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[name]}


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
