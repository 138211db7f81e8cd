"""GET /metrics: Prometheus text for this node — Serve's built-in `ray_serve_*` series and
ours (`ray_image_*`), as Ray's metrics agent exports them on the node's metrics port.

Every replica reports to the agent of its own node; on one machine that is everything. In a
cluster, Prometheus scrapes each node's agent directly (kuberay/ PodMonitor); this endpoint is
the one-URL view for a single node and for tools that only know the service's address.
"""

from __future__ import annotations

import asyncio
import urllib.request
from functools import cache

import ray
from fastapi import APIRouter
from fastapi.responses import Response

from serve_app.errors import Unavailable

router = APIRouter(tags=["health"])
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@cache
def _agent_url() -> str:
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node.get("NodeID") == node_id:
            return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    raise LookupError("this replica's node is not in the cluster's node table")


def _scrape() -> bytes:
    with urllib.request.urlopen(_agent_url(), timeout=5) as answer:
        body: bytes = answer.read()
        return body


@router.get(
    "/metrics", response_class=Response, responses={200: {"content": {PROMETHEUS_TEXT: {}}}}
)
async def metrics() -> Response:
    """Prometheus text format (scrape it; `promtool check metrics` passes on it)."""
    try:
        body = await asyncio.to_thread(_scrape)
    except (OSError, LookupError) as exc:
        raise Unavailable(
            f"the node's metrics agent did not answer: {type(exc).__name__}"
        ) from None
    return Response(body, media_type=PROMETHEUS_TEXT)
