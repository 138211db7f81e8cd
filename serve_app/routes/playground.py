"""The Playground: a single static page (plain HTML, CSS and JS in serve_app/playground/) that
drives the public API from a browser. Served at / and /playground; its assets under
/playground/static/. None of it appears in the OpenAPI document."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serve_app.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "playground"
# The only files served, with their media types: nothing else in the folder is reachable.
ASSETS = {
    "playground.css": "text/css; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
}
# The page talks to its own origin only; images it shows are blob: URLs of fetched bytes.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@lru_cache(maxsize=8)
def _read(name: str) -> tuple[bytes, str]:
    """A file's bytes and a weak validator (size and mtime), read once per process."""
    path = STATIC_DIR / name
    stat = path.stat()
    return path.read_bytes(), f'W/"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def _send(request: Request, name: str, media_type: str) -> Response:
    data, etag = _read(name)
    headers = {"ETag": etag, "Cache-Control": "no-cache", **SECURITY_HEADERS}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=media_type, headers=headers)


@router.get("/")
@router.get("/playground")
async def page(request: Request) -> Response:
    """The Playground page."""
    return _send(request, "index.html", "text/html; charset=utf-8")


@router.get("/playground/static/{name}")
async def asset(request: Request, name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no such file: {name}")
    return _send(request, name, media_type)
