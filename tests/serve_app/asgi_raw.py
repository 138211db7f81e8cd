"""Drive an ASGI app with raw messages, to see exactly how much of a body it reads."""

from __future__ import annotations

from starlette.types import ASGIApp, Message


async def call_raw(
    app: ASGIApp, headers: list[tuple[bytes, bytes]], chunks: list[bytes], path: str = "/"
) -> tuple[int, int]:
    """Run `app` on raw ASGI messages: (status sent, body messages it consumed)."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    consumed = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal consumed
        assert consumed < len(messages), "read past the end of the body: would hang on a socket"
        consumed += 1
        return messages[consumed - 1]

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    await app(scope, receive, send)
    return sent[0]["status"], consumed
