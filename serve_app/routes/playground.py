"""The Playground: a single static page (plain HTML, CSS and JS in serve_app/playground/static/)
that drives the public API from a browser. Served at / and /playground; its assets under
/playground/static/. None of it appears in the OpenAPI document.

Files are served by Starlette's StaticFiles (ETag and Last-Modified, 304s, HEAD), from a folder
that holds nothing else; this module adds the media types and the security headers."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles

from serve_app.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "playground" / "static"
# What is served, with its media type (not left to the machine's mime.types).
MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
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
    "Cache-Control": "no-cache",  # revalidate: a 304 costs a stat, and an upgrade shows at once
}
_files = StaticFiles(directory=STATIC_DIR)


async def _send(request: Request, name: str) -> Response:
    media_type = MEDIA_TYPES.get(name)
    if media_type is None:
        raise NotFound(f"no such file: {name}")
    response = await _files.get_response(name, request.scope)
    if response.status_code == 200:
        response.headers["Content-Type"] = media_type
    response.headers.update(SECURITY_HEADERS)
    return response


@router.get("/")
@router.get("/playground")
async def page(request: Request) -> Response:
    """The Playground page."""
    return await _send(request, "index.html")


@router.get("/playground/static/{name}")
async def asset(request: Request, name: str) -> Response:
    return await _send(request, name)
