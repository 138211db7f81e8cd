"""The URL API: a thumbor URL's path in, the image (or its meta JSON) out, with the headers a
CDN keeps. The URL is checked (signature, or unsafe/ when allowed), translated into the same
PipelineSpec /api/v1/process runs (pipelines/thumbor_url/), its source loaded
(serve_app/sources), and the pipeline run through ImageService.process_cached: one pipeline,
one result cache, one set of limits for both front doors.

Answers: `Cache-Control: public, max-age=URL_MAX_AGE_S` (a `max_age(n)` filter overrides;
errors are `no-store`), a strong ETag (the cache key: source digest + pipeline) with 304 on
If-None-Match, and, when the URL names no format and AUTO_WEBP / AUTO_AVIF are on, WebP or
AVIF to clients whose Accept takes it, with `Vary: Accept`. Errors keep the JSON error shape
with thumbor's statuses: 400 malformed (and a parameter the image cannot take), 403
signature or refused source, 404 unknown source, 413/415, 502/504 remote source.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipelines.describe import describe
from pipelines.errors import ServiceError
from pipelines.spec import PipelineSpec
from pipelines.thumbor_url import UrlPlan, split_signature, translate
from serve_app.errors import Forbidden, retry_after, unwrap
from serve_app.guards.signature import UrlSigner
from serve_app.observe.metrics import record_rejection
from serve_app.routes.common import run_spec
from serve_app.services.ai import AiService
from serve_app.services.focus import FocusFinder
from serve_app.services.images import ImageService
from serve_app.settings import Settings
from serve_app.sources import Sources
from serve_app.store.result_cache import cache_key

# What /api/v1's answers carry that a URL's does not need (a CDN would keep them).
_POST_ONLY_HEADERS = ("Content-Disposition", "X-Processing-Ms", "X-Source-Format")


@lru_cache(maxsize=2048)
def _translated(path: str) -> UrlPlan:
    """Translation is pure: a URL seen again (another client, another size of the same
    source) is not parsed again. Plans are never changed in place (copies are)."""
    return translate(path)


def cache_control(max_age: int) -> str:
    return f"public, max-age={max_age}" if max_age > 0 else "no-cache"


def error_answer(exc: ServiceError) -> JSONResponse:
    """Our JSON error shape with thumbor's statuses (a bad parameter is its 400, not our
    422), never kept by a cache."""
    status = 400 if exc.status == 422 else exc.status
    record_rejection(exc.code)
    headers = {"Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = str(retry_after(exc))
    body = {"error": {"code": exc.code, "message": exc.message, "field": exc.field}}
    return JSONResponse(body, status_code=status, headers=headers)


class UrlService:
    def __init__(
        self, images: ImageService, ai: AiService, sources: Sources, settings: Settings
    ) -> None:
        self.images = images
        self.sources = sources
        self.settings = settings.url
        self.signer = UrlSigner(settings.url.signing_keys)
        self.allow_unsafe = settings.url_allow_unsafe
        self.focus = FocusFinder(ai, images.limits)

    async def answer(self, request: Request) -> Response:
        try:
            return await self._answer(request)
        except ServiceError as exc:
            return error_answer(exc)
        except Exception as exc:
            inner = unwrap(exc)  # an error raised in another deployment arrives wrapped
            if isinstance(inner, ServiceError):
                return error_answer(inner)
            raise

    def _check(self, raw: str) -> None:
        """Raises unless the signature (or unsafe/, where allowed) passes."""
        head, rest = split_signature(raw)
        if head == "unsafe":
            if not self.allow_unsafe:
                raise Forbidden(
                    "unsafe URLs are not accepted here: sign the URL", code="bad_signature"
                )
        else:
            self.signer.check(unquote(head), [rest, unquote(rest)])

    async def _answer(self, request: Request) -> Response:
        path: str = request.scope["path"]
        raw_bytes: bytes | None = request.scope.get("raw_path")
        # The path as it arrived (what was signed), without any query string.
        raw = raw_bytes.decode("latin-1").split("?", 1)[0] if raw_bytes else path
        self._check(raw)
        plan = _translated(raw)
        spec, vary = self._negotiated(plan, request.headers.get("accept", ""))
        source = await self.sources.load(plan.image)
        spec, digest = await self.sources.with_assets(spec, source.sha256)
        if plan.meta:
            data = await self.images.data(source)
            if spec.needs_detection:  # meta shows the focal points smart would aim at
                spec, _ = await self.focus(data, spec)
            limits = self.images.limits
            meta = await asyncio.to_thread(describe, data, spec, limits, plan.image)
            return JSONResponse(meta, headers={"Cache-Control": "no-store"})
        key = cache_key(digest, spec, self.images.limits)
        max_age = plan.max_age if plan.max_age is not None else self.settings.max_age_s
        headers = {"Cache-Control": cache_control(max_age)}
        if vary:
            headers["Vary"] = "Accept"
        kept = True

        async def prepare(data: bytes, wanted: PipelineSpec) -> tuple[PipelineSpec, bool]:
            nonlocal kept
            prepared, kept = await self.focus(data, wanted)
            return prepared, kept

        # The same path as /api/v1/process: one result cache, one set of limits and checks.
        response = await run_spec(
            self.images,
            source,
            spec,
            store=False,
            if_none_match=request.headers.get("if-none-match"),
            key=key,
            headers=headers,
            prepare=prepare if spec.needs_detection else None,
        )
        if not kept:  # a detector was down: an answer not to keep (thumbor's temp max-age)
            response.headers["Cache-Control"] = cache_control(0)
        for name in _POST_ONLY_HEADERS:
            if name in response.headers:
                del response.headers[name]
        return response

    def _negotiated(self, plan: UrlPlan, accept: str) -> tuple[PipelineSpec, bool]:
        """The spec with the format the client takes, when the URL names none; and whether
        the answer varies by Accept."""
        if plan.format_given or not (self.settings.auto_webp or self.settings.auto_avif):
            return plan.spec, False
        if self.settings.auto_webp and "image/webp" in accept:
            return plan.spec.model_copy(update={"format": "webp"}), True
        if self.settings.auto_avif and "image/avif" in accept:
            return plan.spec.model_copy(update={"format": "avif"}), True
        return plan.spec, True
