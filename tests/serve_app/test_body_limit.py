"""The body limit answers 413 in the JSON error shape, declared length or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serve_app.guards.body_limit import BodyLimitMiddleware
from tests.serve_app.asgi_raw import call_raw

LIMIT = 1000
reads: list[int] = []


async def echo_length(request: Request) -> JSONResponse:
    body = await request.body()
    reads.append(len(body))
    return JSONResponse({"received": len(body)})


app = BodyLimitMiddleware(Starlette(routes=[Route("/", echo_length, methods=["POST"])]), LIMIT)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    reads.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def check_413(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"


async def test_under_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/", content=b"x" * LIMIT)
    assert response.json() == {"received": LIMIT}


async def test_declared_length_over_the_limit_is_refused_unread(client: httpx.AsyncClient) -> None:
    check_413(await client.post("/", content=b"x" * (LIMIT + 1)))
    assert reads == []  # the app never saw the request


async def test_streamed_body_is_cut_off(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 300

    check_413(await client.post("/", content=chunks()))
    assert reads == []


# --- the drain: what the client still sends is read and dropped, so it can read the 413 ---------


async def test_declared_body_is_drained_before_the_413() -> None:
    chunks = [b"x" * 400] * 5
    status, consumed = await call_raw(app, [(b"content-length", b"2000")], chunks)
    assert (status, consumed) == (413, len(chunks))
    assert reads == []


async def test_streamed_body_is_drained_to_its_end() -> None:
    chunks = [b"x" * 300] * 10
    assert await call_raw(app, [], chunks) == (413, len(chunks))


async def test_body_ending_on_the_limit_is_not_read_past() -> None:
    assert await call_raw(app, [], [b"x" * 600, b"x" * 600]) == (413, 2)


async def test_declared_body_beyond_the_drain_budget_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("serve_app.guards.body_limit.DRAIN_BYTES", 5000)
    status, consumed = await call_raw(app, [(b"content-length", b"6000")], [b"x" * 1000] * 6)
    assert (status, consumed) == (413, 0)


async def test_drain_budget_stops_an_endless_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("serve_app.guards.body_limit.DRAIN_BYTES", 3000)
    status, consumed = await call_raw(app, [], [b"x" * 500] * 50)
    assert status == 413
    assert consumed < 20  # 1000 to pass the limit, then about 3000 drained


async def test_a_limit_given_as_a_function_is_read_per_request() -> None:
    limit = [LIMIT]
    live = BodyLimitMiddleware(
        Starlette(routes=[Route("/", echo_length, methods=["POST"])]), lambda: limit[0]
    )
    transport = httpx.ASGITransport(app=live)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.post("/", content=b"x" * LIMIT)).status_code == 200
        limit[0] = LIMIT // 2
        check_413(await http.post("/", content=b"x" * LIMIT))
