"""GET (and HEAD) /{signature|unsafe}/...: the thumbor-compatible URL API, served at the root
as thumbor serves it (serve_app/services/urls.py does the work).

A plain Starlette route, added after every other route so it never shadows one: only GET and
HEAD requests no other route matched reach it, other methods on unknown paths still get 404
(not 405), and it takes no multipart parsing, no form validation and no dependency solving.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from serve_app import context

METHODS = ("GET", "HEAD")


async def image_by_url(request: Request) -> Response:
    return await context.url_service().answer(request)


class ImageUrlRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("method") not in METHODS:
            return Match.NONE, {}
        return super().matches(scope)


route = ImageUrlRoute("/{path:path}", image_by_url, methods=list(METHODS), include_in_schema=False)
