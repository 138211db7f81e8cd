"""What the image routes share, one way each: If-None-Match (RFC 9110), the multipart
`pipeline` field, and `store` parsed as FastAPI parses it elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pipelines.limits import Limits
from serve_app import context
from serve_app.guards import breakers
from serve_app.guards.guard import Guard
from serve_app.ingress import api
from serve_app.routes.common import etag_matches
from serve_app.security import ApiKeys
from serve_app.services.ai import AiService
from serve_app.services.image_work import LocalImageWork
from serve_app.services.images import ImageService
from serve_app.services.tasks import TaskService
from serve_app.settings import CacheSettings, TaskSettings
from serve_app.store.db import Database
from serve_app.store.result_cache import MemoryTier, ResultCache
from serve_app.store.storage import BlobStore
from serve_app.store.task_store import TaskStore
from tests.conftest import encode, photo

TAG = '"0123abcd"'


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ("*", True),
        (" * ", True),
        (TAG, True),
        (f"W/{TAG}", True),  # weak comparison: W/ ignored
        (f'"other", W/{TAG}', True),
        (f'"other",{TAG}', True),
        (f", ,{TAG}", True),  # empty list elements are allowed
        ('"a,b", "other"', False),  # a comma inside a tag is part of it
        (f'"a,b", {TAG}', True),
        ('"0123abcd', False),
        ("0123abcd", False),  # not quoted: malformed, matches nothing
        (f'"x" junk, {TAG}', False),
        ('"0123abcdef"', False),  # never a substring match
    ],
)
def test_if_none_match_follows_rfc_9110(header: str | None, matches: bool) -> None:
    assert etag_matches(header, TAG) is matches
    assert etag_matches(header, f"W/{TAG}") is matches


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.migrate()
    store = BlobStore(f"file://{tmp_path}/blobs")
    cache = ResultCache(db, store, CacheSettings())
    images = ImageService(LocalImageWork(Limits(), threads=2), db, store, Limits(), cache)
    ai = AiService(None, None, None, None, Limits())  # type: ignore[arg-type]
    context.set_services(images, ai, TaskService(images, TaskStore(db), None, TaskSettings()))  # type: ignore[arg-type]
    context.set_guard(Guard(ApiKeys({}), None))
    breakers.reset_all()
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
        yield client
    await asyncio.gather(*images._saving)


async def test_a_stored_images_etag_revalidates_weak_and_in_lists(
    http: httpx.AsyncClient,
) -> None:
    files = {"file": ("c.jpg", encode(photo("coffee"), "JPEG"), "image/jpeg")}
    image_id = (await http.post("/api/v1/upload", files=files)).json()["id"]
    etag = (await http.get(f"/api/v1/images/{image_id}")).headers["etag"]
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        answer = await http.get(f"/api/v1/images/{image_id}", headers={"If-None-Match": header})
        assert answer.status_code == 304, header
    other = await http.get(f"/api/v1/images/{image_id}", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200


async def test_process_multipart_store_is_parsed_as_a_form_bool(http: httpx.AsyncClient) -> None:
    files = {"file": ("c.jpg", encode(photo("chelsea"), "JPEG"), "image/jpeg")}
    pipeline = '{"steps": [{"op": "resize", "width": 40}]}'
    for value, status in (("true", 201), ("on", 201), ("0", 200), ("maybe", 422)):
        answer = await http.post(
            "/api/v1/process", files=files, data={"pipeline": pipeline, "store": value}
        )
        assert answer.status_code == status, (value, answer.text)
    assert answer.json()["error"]["field"] == "store"
    # The pipeline field as a file part reads the same; bad JSON and bad steps are 422s.
    as_file = {**files, "pipeline": ("p.json", pipeline.encode(), "application/json")}
    assert (await http.post("/api/v1/process", files=as_file)).status_code == 200
    for bad, field in (("[1, 2", "pipeline"), ("[]", None), ('{"steps": [{"op": "x"}]}', "steps")):
        answer = await http.post("/api/v1/process", files=files, data={"pipeline": bad})
        assert answer.status_code == 422 and answer.json()["error"]["field"] == field, bad


async def test_a_cached_pipeline_result_says_what_it_cost(http: httpx.AsyncClient) -> None:
    """X-Processing-Ms of a result found in the shared store is the lookup's real time, not the
    0.0 the stored row carries (the playground showed "0.0 ms processing")."""
    files = {"file": ("c.jpg", encode(photo("coffee"), "JPEG"), "image/jpeg")}
    data = {"pipeline": '{"steps": [{"op": "resize", "width": 50}]}'}
    first = await http.post("/api/v1/process", files=files, data=data)
    assert first.headers["x-cache"] == "miss" and float(first.headers["x-processing-ms"]) > 0
    service = context.image_service()
    await asyncio.gather(*service._saving)
    assert service.cache is not None
    service.cache.memory = MemoryTier(0, 0)  # as another replica: only the store has it
    again = await http.post("/api/v1/process", files=files, data=data)
    assert again.headers["x-cache"] == "hit"
    assert float(again.headers["x-processing-ms"]) > 0.0
    stored = await http.post("/api/v1/process", files=files, data={**data, "store": "true"})
    assert stored.status_code == 201 and stored.headers["x-cache"] == "hit"
    assert float(stored.headers["x-processing-ms"]) > 0.0
