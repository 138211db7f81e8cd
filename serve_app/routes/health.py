"""Health: /health/live (the process answers), /health/ready (every deployment and every
dependency — database, storage, Redis when configured — answers; 503 if not), /health/ (the
report behind readiness, with model status and circuit breaker states). Also under /api/v1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from ray import serve

from serve_app import context
from serve_app.errors import RETRY_AFTER_S
from serve_app.guards import breakers

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 3.0


async def _timed(check: Callable[[], Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT_S)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S}s"}
    except Exception as exc:  # noqa: BLE001 - a failed probe is reported, not raised
        return {"ok": False, "error": type(exc).__name__}
    report: dict[str, Any] = {
        "ok": True,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }
    if isinstance(detail, dict):
        report.update(detail)
    return report


def _deployments() -> dict[str, Any]:
    app_name = serve.get_replica_context().app_name
    app = serve.status().applications[app_name]
    states = {name: str(d.status.value) for name, d in app.deployments.items()}
    if any(state != "HEALTHY" for state in states.values()):
        raise RuntimeError("a deployment is not healthy")
    return {"deployments": states}


async def report(*, with_models: bool = False) -> dict[str, Any]:
    images = context.image_service()
    probes: dict[str, Callable[[], Any]] = {
        "deployments": _deployments,
        "database": images.db.ping,
        "storage": images.store.ping,
    }
    limiter = context.guard().limiter
    if limiter is not None and limiter.shared:
        probes["redis"] = limiter.ping
    checks = await asyncio.gather(*(_timed(probe) for probe in probes.values()))
    result = dict(zip(probes, checks, strict=True))
    body: dict[str, Any] = {
        "status": "ok" if all(c["ok"] for c in checks) else "degraded",
        "checks": result,
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
