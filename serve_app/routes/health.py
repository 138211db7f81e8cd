"""Health: /health/live (the process answers), /health/ready (every deployment can serve and
every dependency — database, storage, Redis when configured — answers; 503 if not), /health/
(the report behind readiness, with model status and circuit breaker states). Also under /api/v1.

Ready means able to serve, not idle: a deployment that is UPSCALING, DOWNSCALING or rolling out
new code (UPDATING) with replicas RUNNING serves, and a readiness probe that failed then would
take the service out of its load balancer exactly when it is busy (issue #15, item 7). A
deployment is counted ready while it has at least one RUNNING replica.

Probes are cheap and answer on time, whatever the load: each check runs at most once at a time
(a probe that arrives while one is running shares its answer, so a hung dependency holds one
thread, not one per probe), its answer is kept for a moment (Serve's status, an actor call to
the controller, for STATUS_TTL_S; the dependencies for CHECK_TTL_S), and the checks run on the
"health" pool, never behind the database, storage or image work's threads. A controller that
is only slow (busy rolling out) leaves its last good answer standing for STATUS_SLOW_OK_S; one
that answers that a deployment has no replica running is believed at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serve_app import context
from serve_app.errors import RETRY_AFTER_S
from serve_app.guards import breakers
from serve_app.services.readiness import CHECK_TIMEOUT_S, check, deployments_check

router = APIRouter(tags=["health"])


async def report(*, with_models: bool = False) -> dict[str, Any]:
    images = context.image_service()
    checks = {
        "deployments": deployments_check(),
        "database": check("database", images.db.ping),
        "storage": check("storage", images.store.ping),
    }
    limiter = context.guard().limiter
    if limiter is not None and limiter.shared:
        checks["redis"] = check("redis", limiter.ping)
    reports = await asyncio.gather(*(check.report() for check in checks.values()))
    body: dict[str, Any] = {
        "status": "ok" if all(r["ok"] for r in reports) else "degraded",
        "checks": dict(zip(checks, reports, strict=True)),
        "breakers": breakers.states(),
    }
    if with_models:
        # Reported, not gating readiness: image operations work without any model.
        try:
            body["models"] = await asyncio.wait_for(context.ai_service().status(), CHECK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a failed probe is reported, not raised
            body["models"] = {"error": type(exc).__name__}
    return body


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready() -> JSONResponse:
    body = await report()
    if body["status"] == "ok":
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


@router.get("/health/")
async def health() -> dict[str, Any]:
    return await report(with_models=True)
