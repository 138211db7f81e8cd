"""The body limit answers 413 in the JSON error shape, declared length or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serve_app.body_limit import BodyLimitMiddleware

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
