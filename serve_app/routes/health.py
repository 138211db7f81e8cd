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
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from ray import serve

from serve_app import context
from serve_app.errors import RETRY_AFTER_S
from serve_app.guards import breakers
from serve_app.services.offload import bulkhead

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 3.0
CHECK_TTL_S = 1.0
STATUS_TTL_S = 2.0
STATUS_SLOW_OK_S = 30.0  # how long a slow controller's last good answer stands


class Check:
    """One readiness check: run on the health pool, at most one at a time, its report kept
    for `ttl_s`. A report is `{"ok": bool, "latency_ms" | "error": ..., **detail}`.

    `slow_ok_s`: when the probe is merely slow (no answer within CHECK_TIMEOUT_S), its last
    good report, if younger than this, stands (marked with its age). Serve's controller is
    busy for seconds while it rolls out new code on 2 cores (measured: 3.2 s), and replicas
    serve without it; a probe that failed then would take the service out for being busy."""

    def __init__(
        self, probe: Callable[[], Any], ttl_s: float = CHECK_TTL_S, slow_ok_s: float = 0.0
    ) -> None:
        self.probe = probe
        self.ttl_s = ttl_s
        self.slow_ok_s = slow_ok_s
        self._report: dict[str, Any] | None = None
        self._at = 0.0
        self._good: dict[str, Any] | None = None
        self._good_at = 0.0
        self._running: asyncio.Future[dict[str, Any]] | None = None

    async def report(self) -> dict[str, Any]:
        if self._report is not None and time.monotonic() - self._at < self.ttl_s:
            return self._report
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._run())
        try:
            return await asyncio.wait_for(asyncio.shield(self._running), CHECK_TIMEOUT_S)
        except TimeoutError:
            age = time.monotonic() - self._good_at
            if self._good is not None and age < self.slow_ok_s:
                return {**self._good, "stale_s": round(age, 1)}
            return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S}s"}

    async def _run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            detail = await bulkhead("health").run(self.probe)
            report: dict[str, Any] = {
                "ok": True,
                "latency_ms": round((time.monotonic() - started) * 1000, 1),
            }
            if isinstance(detail, dict):
                report.update(detail)
            self._good, self._good_at = report, time.monotonic()
        except Exception as exc:  # noqa: BLE001 - a failed probe is reported, not raised
            report = {"ok": False, "error": str(exc) if isinstance(exc, NotReady) else repr(exc)}
        self._report, self._at = report, time.monotonic()
        return report


class NotReady(Exception):
    """A deployment with no replica able to serve."""


def serving(deployments: dict[str, Any]) -> dict[str, Any]:
    """Each deployment's status and RUNNING replicas, from serve.status()'s; raises NotReady
    naming those with none RUNNING. Autoscaling and rolling updates keep their replicas."""
    report: dict[str, Any] = {}
    idle = []
    for name, deployment in sorted(deployments.items()):
        states = {_name(state): int(n) for state, n in deployment.replica_states.items()}
        status = _name(deployment.status)
        report[name] = {"status": status, "running": states.get("RUNNING", 0)}
        if states.get("RUNNING", 0) < 1:
            idle.append(f"{name} ({status})")
    if idle:
        raise NotReady(f"no replica running: {', '.join(idle)}")
    return {"deployments": report}


def _name(state: Any) -> str:
    """A Serve status enum's name ("RUNNING"), whatever str() of a str-Enum gives."""
    return str(getattr(state, "value", state))


def _deployments() -> dict[str, Any]:
    app_name = serve.get_replica_context().app_name
    return serving(serve.status().applications[app_name].deployments)


_checks: dict[str, Check] = {}


def _check(name: str, probe: Callable[[], Any], ttl_s: float = CHECK_TTL_S, **kw: float) -> Check:
    """This replica's check `name`, made once (the probe it wraps never changes in a replica)."""
    if name not in _checks or _checks[name].probe != probe:  # bound methods: compared by ==
        _checks[name] = Check(probe, ttl_s, **kw)
    return _checks[name]


async def report(*, with_models: bool = False) -> dict[str, Any]:
    images = context.image_service()
    checks = {
        "deployments": _check(
            "deployments", _deployments, STATUS_TTL_S, slow_ok_s=STATUS_SLOW_OK_S
        ),
        "database": _check("database", images.db.ping),
        "storage": _check("storage", images.store.ping),
    }
    limiter = context.guard().limiter
    if limiter is not None and limiter.shared:
        checks["redis"] = _check("redis", limiter.ping)
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
