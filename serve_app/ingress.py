"""The ingress deployment: a FastAPI app under @serve.ingress that fans requests out to the
other deployments through handles."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app import context
from serve_app.errors import Unavailable, install_error_handlers
from serve_app.guards.body_limit import BodyLimitMiddleware
from serve_app.guards.guard import Guard, GuardMiddleware
from serve_app.guards.rate_limit import RateLimiter
from serve_app.observe import tracing
from serve_app.routes import ai, health, images, metrics, operations, playground, tasks, urls
from serve_app.schemas import ProcessRequest
from serve_app.security import ApiKeys
from serve_app.services.build import build_services, reconfigure_limits
from serve_app.services.tasks import TaskService
from serve_app.services.urls import UrlService
from serve_app.settings import get_settings
from serve_app.sources import Sources
from serve_app.store.task_store import TaskStore

# Room for multipart boundaries and the other form fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024

api = FastAPI(
    title="Image Processing Service",
    version="0.1.0",
    description="Image operations and image AI over HTTP, on Ray Serve.",
)
install_error_handlers(api)
api.include_router(operations.router)
api.include_router(images.router)
api.include_router(ai.router)
api.include_router(tasks.router)
api.include_router(health.router)
api.include_router(health.router, prefix="/api/v1")
api.include_router(playground.router)
api.include_router(metrics.router)
api.include_router(urls.router)
# First: the URL API (/{signature|unsafe}/...) claims only paths no other route can have.
api.router.routes.insert(0, urls.route)


def _upload_body_limit() -> int:
    """The live `max_upload_bytes` (one source of truth with the pipelines), plus the form."""
    try:
        limit = context.image_service().limits.max_upload_bytes
    except Unavailable:  # still starting: the setting it will start with
        limit = get_settings().limits.max_upload_bytes
    return limit + MULTIPART_OVERHEAD


api.add_middleware(
    BodyLimitMiddleware,
    max_body_bytes=_upload_body_limit,
    # A batch carries many images; each is still held to the per-image limit when stored.
    path_limits={"/api/v1/batch": get_settings().tasks.max_body_bytes},
)
# Added last, so outermost: keys and rate limits are checked before a body byte is read.
api.add_middleware(GuardMiddleware)
# Around everything, refusals included: the request's span (when tracing is on).
api.add_middleware(tracing.RequestSpans)


def _openapi() -> dict[str, Any]:
    """FastAPI's document plus the models that /process reads by hand (JSON or multipart)."""
    if api.openapi_schema is None:
        schema = get_openapi(
            title=api.title, version=api.version, description=api.description, routes=api.routes
        )
        extra = ProcessRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(extra.pop("$defs", {}))
        components["ProcessRequest"] = extra
        api.openapi_schema = schema
    return api.openapi_schema


api.openapi = _openapi  # type: ignore[method-assign]


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
@serve.ingress(api)
class Ingress:
    def __init__(
        self,
        preprocessor: DeploymentHandle[Any],
        detector: DeploymentHandle[Any],
        ocr: DeploymentHandle[Any],
        faces: DeploymentHandle[Any],
        runner: DeploymentHandle[Any],
    ) -> None:
        settings = get_settings()
        images, ai = build_services(
            settings, preprocessor, detector, ocr, faces, inline=settings.processing.inline
        )
        self._images = images
        context.set_services(
            images,
            ai,
            TaskService(images, TaskStore(images.db), runner, settings.tasks, settings.source),
        )
        sources = Sources(settings.source, settings.source_url, images)
        images.assets = sources.with_assets  # watermarks, for every API
        context.set_url_service(UrlService(images, ai, sources, settings))
        tracing.configure(settings.tracing)
        limiter = RateLimiter(settings.rate_limit) if settings.rate_limits_on else None
        security = settings.security
        keys = ApiKeys(security.api_keys)
        context.set_guard(Guard(keys, limiter, security.forwarded_trusted_hops))

    def reconfigure(self, config: dict[str, Any]) -> None:
        """`user_config: {limits: {...}}`: the limits every inline pipeline, AI call and batch
        submission of this replica applies, changed live (the same block as the Preprocessor's,
        the model deployments' and the TaskRunner's)."""
        reconfigure_limits(self._images, get_settings(), config)

    def check_health(self) -> None:
        """Fails only for what a restart fixes: services not built. A database or storage
        outage must not restart the ingress (image operations need neither); /health/ready
        reports those and their routes answer 503 meanwhile."""
        context.image_service()
        context.ai_service()
        context.task_service()
        context.url_service()
        context.guard()
