"""The ingress's front door, in process (the FastAPI app over ASGI, the deployments' own
classes behind it): API keys, rate limits in memory and in a shared Redis, Redis outages, and
the production mode's refusal to run open."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from deployments.face_detector import FaceDetector
from deployments.preprocessor import Preprocessor
from pipelines.limits import Limits
from serve_app import context
from serve_app.guards import breakers
from serve_app.guards.guard import Guard
from serve_app.guards.rate_limit import RateLimiter
from serve_app.guards.tenant import client_address
from serve_app.ingress import api
from serve_app.security import ApiKeys, hash_key
from serve_app.services.ai import AiService
from serve_app.services.image_work import LocalImageWork
from serve_app.services.images import ImageService
from serve_app.services.tasks import TaskService
from serve_app.settings import RateLimitSettings, Settings, TaskSettings
from serve_app.store.db import Database
from serve_app.store.storage import BlobStore
from serve_app.store.task_store import TaskStore
from tests.conftest import OwnServer, encode, photo
from tests.serve_app.asgi_raw import call_raw
from tests.serve_app.inprocess import InProcessHandle

JPEG = encode(photo("chelsea"), "JPEG")
Client = Callable[..., httpx.AsyncClient]


@pytest.fixture
def serve_in_process(tmp_path: Path) -> Callable[[Guard], httpx.AsyncClient]:
    """The app with this process's services and the given guard; a client for it."""
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.migrate()
    store = BlobStore(f"file://{tmp_path}/blobs")
    pre, faces = InProcessHandle(Preprocessor), InProcessHandle(FaceDetector)
    images = ImageService(LocalImageWork(Limits(), threads=2), db, store, Limits())
    ai = AiService(pre, None, None, faces, Limits())  # type: ignore[arg-type]
    context.set_services(images, ai, TaskService(images, TaskStore(db), None, TaskSettings()))  # type: ignore[arg-type]
    breakers.reset_all()

    def client(guard: Guard) -> httpx.AsyncClient:
        context.set_guard(guard)
        transport = httpx.ASGITransport(app=api)
        return httpx.AsyncClient(transport=transport, base_url="http://in-process")

    return client


async def _resize(http: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await http.post(
        "/api/v1/resize",
        files={"file": ("c.jpg", JPEG, "image/jpeg")},
        data={"width": "32"},
        headers=headers,
    )


async def test_open_access_when_no_keys_are_set(serve_in_process: Client) -> None:
    async with serve_in_process(Guard(ApiKeys({}), None)) as http:
        answer = await _resize(http)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"


async def test_keys_401_403_and_open_paths(serve_in_process: Client) -> None:
    guard = Guard(ApiKeys({"ci": hash_key("s3cret-key")}), None)
    async with serve_in_process(guard) as http:
        missing = await _resize(http)
        wrong = await _resize(http, **{"X-API-Key": "guess"})
        right = await _resize(http, **{"X-API-Key": "s3cret-key"})
        live = await http.get("/health/live")
        page = await http.get("/")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert missing.json()["error"]["field"] == "X-API-Key"
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
    assert right.status_code == 200
    assert live.status_code == 200 and page.status_code == 200


async def test_refusal_drains_the_upload_first(serve_in_process: Client) -> None:
    """A 401 on an upload the client is still sending must not be lost to a connection reset."""
    chunks = [b"x" * 1000] * 8
    # The client goes unused (the app is driven with raw ASGI messages); entering it installs
    # the guard, and leaving it closes it.
    async with serve_in_process(Guard(ApiKeys({"ci": hash_key("s3cret-key")}), None)):
        for headers in ([(b"content-length", b"8000")], [(b"transfer-encoding", b"chunked")]):
            assert await call_raw(api, headers, chunks, "/api/v1/resize") == (401, len(chunks))


async def test_rate_limit_in_process_gives_429_with_headers(serve_in_process: Client) -> None:
    limiter = RateLimiter(RateLimitSettings(per_minute=100, burst=3))
    async with serve_in_process(Guard(ApiKeys({}), limiter)) as http:
        answers = [await _resize(http) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[0].headers["x-ratelimit-limit"] == "100"
    assert int(answers[2].headers["x-ratelimit-remaining"]) == 97
    refused = answers[3]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert "x-ratelimit-reset" in refused.headers


async def test_two_replicas_share_one_budget_in_redis(serve_in_process: Client) -> None:
    """Two limiters (as two ingress replicas would hold) on the machine's Redis: the budget is
    one, whichever replica a request lands on."""
    settings = RateLimitSettings(per_minute=6, burst=100, redis_url="redis://127.0.0.1:6379/0")
    replicas = [RateLimiter(settings), RateLimiter(settings)]
    who = f"key:test-{uuid.uuid4().hex}"
    decisions = [await replicas[i % 2].check(who) for i in range(10)]
    assert [d.allowed for d in decisions] == [True] * 6 + [False] * 4
    # And through the app, with keys: each key has its own budget.
    name = f"k{uuid.uuid4().hex[:8]}"
    guard = Guard(ApiKeys({name: hash_key("key-" + name)}), replicas[0])
    async with serve_in_process(guard) as http:
        codes = [
            (await _resize(http, **{"X-API-Key": "key-" + name})).status_code for _ in range(7)
        ]
    assert codes == [200] * 6 + [429]


async def _burst(http: httpx.AsyncClient, forged: bool) -> list[int]:
    """400 cheap guarded requests (an unknown task: 404 when admitted), each with a new
    forged X-Forwarded-For when `forged`."""
    codes = []
    for i in range(400):
        headers = {"X-Forwarded-For": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"}
        answer = await http.get("/api/v1/tasks/nope", headers=headers if forged else {})
        codes.append(answer.status_code)
    return codes


async def test_a_forged_forwarded_for_is_limited_like_no_header(serve_in_process: Client) -> None:
    """Each request naming a new address in X-Forwarded-For gets no new budget: no proxy in
    front appends to the header (FORWARDED_TRUSTED_HOPS=0, Serve's HAProxy), so it is ignored."""
    for forged in (False, True):
        limiter = RateLimiter(RateLimitSettings(per_minute=100, burst=1000))
        async with serve_in_process(Guard(ApiKeys({}), limiter)) as http:
            codes = await _burst(http, forged)
        assert codes.count(404) == 100 and codes.count(429) == 300, forged


def test_client_address_takes_what_the_outermost_trusted_proxy_saw() -> None:
    def scope(*forwarded: str) -> dict[str, object]:
        headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
        return {"client": ("10.0.0.9", 5000), "headers": headers}

    forged_then_proxies = scope("6.6.6.6, 203.0.113.7", "10.0.0.5")
    assert client_address(forged_then_proxies, 0) == "10.0.0.9"  # the TCP peer
    assert client_address(forged_then_proxies, 1) == "10.0.0.5"
    assert client_address(forged_then_proxies, 2) == "203.0.113.7"
    assert client_address(scope("6.6.6.6"), 2) == "10.0.0.9"  # fewer entries than hops
    assert client_address(scope(), 1) == "10.0.0.9"


async def test_redis_down_fails_open_fast_and_recovers(
    serve_in_process: Client, own_redis: OwnServer
) -> None:
    settings = RateLimitSettings(per_minute=3, burst=100, redis_url=own_redis.url)
    breakers.reset_all()
    limiter = RateLimiter(settings)
    async with serve_in_process(Guard(ApiKeys({}), limiter)) as http:
        assert [(await _resize(http)).status_code for _ in range(4)] == [200, 200, 200, 429]
        own_redis.stop()
        started = time.monotonic()
        down = [await _resize(http) for _ in range(8)]
        assert all(a.status_code == 200 for a in down)  # fail open: served, not limited
        assert time.monotonic() - started < 8  # no request waits on the dead store for long
        assert breakers.states()["redis"] == "open"
        own_redis.start()
        breakers.reset_all()  # as after its reset timeout: the next call is the trial
        codes = [(await _resize(http)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # a fresh Redis: the limit counts again


async def test_redis_down_fails_closed_when_configured(own_redis: OwnServer) -> None:
    breakers.reset_all()
    limiter = RateLimiter(RateLimitSettings(redis_url=own_redis.url, fail_open=False))
    assert (await limiter.check("someone")).allowed
    own_redis.stop()
    from serve_app.errors import Unavailable

    for _ in range(6):  # failures until the breaker opens, then immediate refusals
        with pytest.raises(Unavailable):
            await limiter.check("someone")
    started = time.monotonic()
    with pytest.raises(Unavailable) as refused:
        await limiter.check("someone")
    assert time.monotonic() - started < 0.1 and refused.value.retry_after


def test_production_mode_refuses_to_start_open(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("APP_MODE", "production")
    monkeypatch.delenv("SECURITY_API_KEYS", raising=False)
    with pytest.raises(ValidationError, match="refusing to start"):
        Settings()
    monkeypatch.setenv("SECURITY_API_KEYS", f'{{"ops": "{hash_key("k")}"}}')
    assert Settings().mode == "production"
    monkeypatch.setenv("SECURITY_API_KEYS", '{"ops": "plain-text-key"}')
    with pytest.raises(ValidationError, match="the hash, not the key"):
        Settings()


async def test_tracing_spans_for_the_ingress_and_each_deployment_call(
    serve_in_process: Client,
) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from serve_app.observe import tracing
    from serve_app.settings import TracingSettings

    exporter = InMemorySpanExporter()
    tracing.configure(TracingSettings(enabled=True), exporter)
    try:
        async with serve_in_process(Guard(ApiKeys({}), None)) as http:
            assert (await _resize(http)).status_code == 200
            faces = await http.post(
                "/api/v1/detect-faces",
                files={"file": ("a.jpg", encode(photo("astronaut")), "image/jpeg")},
            )
            assert faces.status_code == 200
    finally:
        tracing.configure(TracingSettings(enabled=False))
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request, call = spans["POST /api/v1/resize"], spans["inline.process"]  # run in the ingress
    assert call.parent is not None and call.parent.span_id == request.context.span_id
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200
    assert request.attributes["http.route"] == "/api/v1/resize"  # the template, not the path
    assert request.kind == SpanKind.SERVER  # opentelemetry-instrumentation-asgi's server span
    assert not [name for name in spans if name.endswith((" send", " receive"))]
    face_call = spans["FaceDetector.detect"]
    assert face_call.parent is not None
    assert face_call.parent.span_id == spans["POST /api/v1/detect-faces"].context.span_id
    await asyncio.sleep(0)
