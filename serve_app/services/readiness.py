"""Readiness checks, cached: each runs on the "health" pool at most once at a time and its
answer is kept for a moment (routes/health.py says why). The same report of Serve's
deployments serves /health/ready and the handle calls that wait on a deployment
(image_work.within: a call to a deployment with no replica running is answered 503)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ray import serve

from serve_app.services.offload import bulkhead

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
        except NotReady as exc:  # the report all the same, with what is missing
            report = {"ok": False, "error": str(exc), **exc.detail}
        except Exception as exc:  # noqa: BLE001 - a failed probe is reported, not raised
            report = {"ok": False, "error": repr(exc)}
        self._report, self._at = report, time.monotonic()
        return report


class NotReady(Exception):
    """A deployment with no replica able to serve; `detail`: the report all the same."""

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


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
        raise NotReady(f"no replica running: {', '.join(idle)}", {"deployments": report})
    return {"deployments": report}


def _name(state: Any) -> str:
    """A Serve status enum's name ("RUNNING"), whatever str() of a str-Enum gives."""
    return str(getattr(state, "value", state))


def deployments() -> dict[str, Any]:
    app_name = serve.get_replica_context().app_name
    return serving(serve.status().applications[app_name].deployments)


_checks: dict[str, Check] = {}


def check(name: str, probe: Callable[[], Any], ttl_s: float = CHECK_TTL_S, **kw: float) -> Check:
    """This replica's check `name`, made once (the probe it wraps never changes in a replica)."""
    if name not in _checks or _checks[name].probe != probe:  # bound methods: compared by ==
        _checks[name] = Check(probe, ttl_s, **kw)
    return _checks[name]


def deployments_check() -> Check:
    """The one cached report of Serve's deployments, for readiness and for handle calls."""
    return check("deployments", deployments, STATUS_TTL_S, slow_ok_s=STATUS_SLOW_OK_S)


async def without_replicas(deployment: str) -> str | None:
    """The deployment's status when Serve says it has no replica RUNNING (a replica died and
    its replacement is starting, say), else None: also when nobody knows (outside Serve, a
    slow controller), since then a call should just wait as it always has."""
    report = await deployments_check().report()
    known = report.get("deployments", {}).get(deployment)
    if known is None or known["running"] > 0:
        return None
    return str(known["status"])
