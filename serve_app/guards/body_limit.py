"""Refuse oversized request bodies before they are buffered, in our JSON error shape.

(Starlette's own RequestBodyLimitMiddleware answers in text/plain, which would break the one
error shape every client parses; this is the same rule with our body.)

A declared Content-Length over the limit is answered 413 without handing a byte to the app. A
body without one (chunked) is counted as it streams in; past the limit the app's read stops and
the response it was about to send is replaced by the 413.

Before answering, the rest of the body is read and thrown away (at most `DRAIN_BYTES`, for at
most `DRAIN_SECONDS`): most clients send the whole body before they read, and a server that
closes on unread data makes the kernel reset the connection, which wipes the 413 from the
client's buffer ("server disconnected without a response"). Bigger bodies get the 413 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


class _BodyTooLarge(Exception):
    pass


async def _drain(receive: Receive) -> None:
    """Read and discard what the client is still sending, within the drain budget."""
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


async def drain_refused(scope: Scope, receive: Receive) -> None:
    """For an answer given before the app read the body (413, 401, 429): drain the body the
    request declares, unless it is bigger than the budget."""
    headers = dict(scope.get("headers", []))
    declared = headers.get(b"content-length", b"")
    if declared.isdigit():
        if 0 < int(declared) <= DRAIN_BYTES:
            await _drain(receive)
    elif b"transfer-encoding" in headers:
        await _drain(receive)


def _rejection(limit: int) -> bytes:
    message = f"the request body is over the limit of {limit} bytes"
    return json.dumps(
        {"error": {"code": "upload_too_large", "message": message, "field": "file"}}
    ).encode()


class BodyLimitMiddleware:
    """`max_body_bytes` everywhere but the paths in `path_limits`, which have their own.

    `max_body_bytes` may be a function, read per request, so a limit changed live
    (`user_config: {limits: ...}`) is the one the body is held to."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int | Callable[[], int],
        path_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = path_limits or {}

    def _limit(self, scope: Scope) -> int:
        limit = self.path_limits.get(scope.get("path", ""))
        if limit is not None:
            return limit
        return self.max_body_bytes() if callable(self.max_body_bytes) else self.max_body_bytes

    async def _reject(self, send: Send, limit: int) -> None:
        body = _rejection(limit)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await drain_refused(scope, receive)
            await self._reject(send, limit)
            return
        received = 0
        exceeded = started = False
        more_body = True

        async def counting_receive() -> Message:
            nonlocal received, exceeded, more_body
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more_body = message.get("more_body", False)
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not exceeded:  # after an aborted read the app's own answer is dropped
                started = True
                await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            if more_body:
                await _drain(receive)
            await self._reject(send, limit)
