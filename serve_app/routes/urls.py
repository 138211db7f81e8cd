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

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from pipelines.spec import PipelineSpec
from pipelines.thumbor_url import url_for
from serve_app import context
from serve_app.guards.signature import looks_like_image_url
from serve_app.schemas import ERROR_RESPONSES

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


router = APIRouter(prefix="/api/v1", tags=["urls"])


class UrlRequest(PipelineSpec):
    """A pipeline and the image it should run on, to be said as a GET URL."""

    image: str = Field(
        min_length=1,
        max_length=2048,
        description="an upload's id, a key under SOURCE_URL, or an http(s) URL",
    )


class UrlAnswer(BaseModel):
    path: str = Field(description="what follows the signature segment: what gets signed")
    unsafe: str = Field(description="the URL as /unsafe/..., accepted while URL_ALLOW_UNSAFE")
    unsafe_allowed: bool = Field(description="whether this service accepts unsafe/ URLs")


@router.post("/url", response_model=UrlAnswer, responses=ERROR_RESPONSES)
async def url_of(request: UrlRequest) -> UrlAnswer:
    """The GET URL (thumbor's grammar) that runs this pipeline on `image`. Sign `path` with
    `python -m serve_app.urls sign`, `serve_app.urls.sign_url` or libthumbor. A pipeline the
    grammar cannot say (an `enhance` step, a crop by aspect, steps out of thumbor's order) is
    a 422 naming why."""
    spec = PipelineSpec.model_validate(request.model_dump(exclude={"image"}))
    path = url_for(spec, request.image)
    allowed = context.url_service().allow_unsafe
    return UrlAnswer(path=path, unsafe=f"/unsafe/{path}", unsafe_allowed=allowed)
