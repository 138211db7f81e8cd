"""One JSON error shape for every failure: {"error": {"code", "message", "field"}}.

Typed errors (pipelines.errors.ServiceError and subclasses) carry their status; everything
unexpected becomes a logged 500 whose body says nothing internal.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.errors import ServiceError
from serve_app.observe.metrics import record_rejection

log = logging.getLogger("ray.serve")


class BadRequest(ServiceError):
    status = 400
    code = "bad_request"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Unavailable(ServiceError):
    """A dependency (a deployment, the database, storage) cannot answer now; try again later."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "bad_request"}
RETRY_AFTER_S = 5


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


def retry_after(exc: ServiceError) -> int:
    wait = getattr(exc, "retry_after", None)
    return max(1, math.ceil(wait)) if wait else RETRY_AFTER_S


def _service_error(exc: ServiceError) -> JSONResponse:
    headers = {"Retry-After": str(retry_after(exc))} if exc.status == 503 else None
    record_rejection(exc.code)
    return error_response(exc.status, exc.code, exc.message, exc.field, headers)


def unwrap(exc: BaseException) -> BaseException:
    """Errors raised in another deployment arrive wrapped in RayTaskError: take the cause."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, RayTaskError) and isinstance(cause, BaseException):
        return unwrap(cause)
    return exc


async def _on_service_error(request: Request, exc: Exception) -> JSONResponse:
    inner = unwrap(exc)
    assert isinstance(inner, ServiceError)
    return _service_error(inner)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    names = [str(p) for p in first.get("loc", ()) if isinstance(p, str) and p not in ("body",)]
    field = names[-1] if names else None
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return error_response(
        422, "invalid_parameter", f"{field}: {message}" if field else message, field
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency unavailable on %s: %r", request.url.path, exc)
    return _service_error(Unavailable("a backend is unavailable; try again shortly"))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    inner = unwrap(exc)
    if isinstance(inner, ServiceError):
        return _service_error(inner)
    log.exception("unhandled error on %s", request.url.path, exc_info=inner)
    return error_response(500, "internal_error", "the server failed to handle this request")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    # Under Serve, Serve replaces the handler for its own two; tracing.call_span turns them into
    # our 503s where deployments are called. RayActorError (a replica died) stays ours.
    for unavailable in (BackPressureError, DeploymentUnavailableError, RayActorError):
        app.add_exception_handler(unavailable, _on_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)
