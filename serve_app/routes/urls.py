"""GET (and HEAD) /{signature|unsafe}/...: the thumbor-compatible URL API, served at the root
as thumbor serves it (serve_app/services/urls.py does the work).

A plain Starlette route, first in the router, that claims only GET and HEAD requests whose
path looks like an image URL (first segment `unsafe` or a 28-character signature, never one
of the service's own prefixes): every other request goes on to the other routes untouched,
without paying for this one's match, and this one skips ~30 route matches (FastAPI's, ~0.7 ms
a request under load). Other methods on these paths get 404, not 405. No multipart parsing,
no form validation, no dependency solving.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from serve_app import context
from serve_app.guards.signature import looks_like_image_url

METHODS = ("GET", "HEAD")


async def image_by_url(request: Request) -> Response:
    return await context.url_service().answer(request)


class ImageUrlRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] != "http"
            or scope.get("method") not in METHODS
            or not looks_like_image_url(scope.get("path", ""))
        ):
            return Match.NONE, {}
        return Match.FULL, {"endpoint": self.endpoint, "path_params": {}}


route = ImageUrlRoute("/{signature}/{rest:path}", image_by_url, methods=list(METHODS))
