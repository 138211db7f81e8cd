"""The ingress's front door, as plain ASGI middleware: API keys, rate limits, the request id,
and per-route request metrics, before any route runs.

- Keys: with SECURITY_API_KEYS set, a request without `X-API-Key` is 401 and one with an
  unknown key 403. Open paths (health, metrics, the Playground page, the API docs) need none.
- Limits: per key name, or per client address when access is open; 429 with Retry-After and
  X-RateLimit-* (those headers ride on every limited response). The client address is the TCP
  peer, or with FORWARDED_TRUSTED_HOPS the address the outermost trusted proxy saw: a client's
  own X-Forwarded-For never becomes its address (guards.tenant.client_address).
- Tenant: who the request acts for (guards.tenant), bound for the routes and services.
- X-Request-ID: Serve's proxy keeps an incoming one (else makes one), puts it in the request
  context that every deployment's log lines carry, and returns it; answers made here (401,
  429) carry it too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.errors import ServiceError
from serve_app import context
from serve_app.errors import Forbidden, RateLimited, Unauthorized, retry_after
from serve_app.guards.body_limit import drain_refused
from serve_app.guards.rate_limit import RateLimiter
from serve_app.guards.signature import looks_like_image_url
from serve_app.guards.tenant import Tenant, bind, client_address, owner_name, unbind
from serve_app.observe import tracing
from serve_app.observe.metrics import record_rejection, record_request
from serve_app.security import ApiKeys

OPEN_PREFIXES = ("/health", "/api/v1/health", "/metrics", "/playground", "/docs", "/redoc")
OPEN_PATHS = frozenset({"/", "/openapi.json"})


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


@dataclass
class Guard:
    keys: ApiKeys
    limiter: RateLimiter | None
    # Proxies in front of the replicas that append to X-Forwarded-For (FORWARDED_TRUSTED_HOPS).
    trusted_hops: int = 0


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def request_id() -> str | None:
    """Serve's id for the request being handled (the client's X-Request-ID when it sent one)."""
    try:
        from ray.serve.context import _get_serve_request_context

        rid: str = _get_serve_request_context().request_id
        return rid or None
    except Exception:  # noqa: BLE001 - outside Serve (unit tests) there is none
        return None


class GuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        error: ServiceError,
        headers: dict[str, str],
    ) -> None:
        record_rejection(error.code)
        await drain_refused(scope, receive)  # else a client still uploading may never see this
        body = json.dumps({"error": error.to_dict()}).encode()
        if error.status == 503:
            headers = {**headers, "Retry-After": str(retry_after(error))}
        if rid := _header(scope, b"x-request-id"):
            headers = {**headers, "X-Request-ID": rid}
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": error.status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _admit(self, scope: Scope, guard: Guard) -> tuple[dict[str, str], Tenant]:
        """Headers to add to the answer and the tenant; raises the refusal."""
        key_name = None
        # A signed GET URL carries its own authorisation (checked by the URL route, as is
        # whether unsafe/ URLs are allowed): no API key, but the rate limit still applies.
        if guard.keys.required and not _image_url(scope):
            presented = _header(scope, b"x-api-key")
            if not presented:
                raise Unauthorized(
                    "an API key is required: send it in X-API-Key", field="X-API-Key"
                )
            key_name = guard.keys.identify(presented)
            if key_name is None:
                raise Forbidden("this API key is not valid", field="X-API-Key")
        if key_name is not None:
            identity = f"key:{key_name}"
            tenant = Tenant(owner_name(key_name), identity)
        else:
            identity = f"ip:{client_address(scope, guard.trusted_hops)}"
            tenant = Tenant(None, identity)
        if guard.limiter is None:
            return {}, tenant
        decision = await guard.limiter.check(identity)
        if not decision.allowed:
            raise _Limited(decision.headers())
        return decision.headers(), tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500
        extra: dict[str, str] = {}
        bound = None
        try:
            if not is_open(scope.get("path", "")):
                try:
                    extra, tenant = await self._admit(scope, context.guard())
                    bound = bind(tenant)
                except _Limited as limited:
                    status = 429
                    await self._refuse(
                        scope, receive, send, RateLimited("too many requests"), limited.headers
                    )
                    return
                except ServiceError as refused:
                    status = refused.status
                    await self._refuse(scope, receive, send, refused, {})
                    return
            raw_extra = [(k.lower().encode(), v.encode()) for k, v in extra.items()]

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    if raw_extra:
                        message = {**message, "headers": [*message.get("headers", []), *raw_extra]}
                    # The request's span (tracing.RequestSpans) ends with the response's body:
                    # named now, when the route is known.
                    method, route = scope.get("method", ""), _route_template(scope)
                    tracing.name_request_span(method, route, request_id())
                await send(message)

            await self.app(scope, receive, send_with_headers)
        finally:
            if bound is not None:
                unbind(bound)
            route = _route_template(scope)
            record_request(route, scope.get("method", ""), status, time.monotonic() - started)


def _image_url(scope: Scope) -> bool:
    return scope.get("method") in ("GET", "HEAD") and looks_like_image_url(scope.get("path", ""))


class _Limited(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("rate limited")
        self.headers = headers


def _route_template(scope: Scope) -> str:
    """The matched route's template (/api/v1/tasks/{task_id}), never the raw path: raw paths
    would give every id its own time series."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
