"""check_health() for replicas that hold a model: what a restart would fix.

A model that could not load is not one of those (it stays a 503 with its reason, see
engine_slot.py); a replica whose memory has grown past its bound is: Serve replaces it.
"""

from __future__ import annotations

import os

import psutil

# REPLICA_MAX_RSS_MB: a replica above this resident size reports unhealthy (0 turns it off).
DEFAULT_MAX_RSS_MB = 4096


def max_rss_bytes() -> int:
    return int(os.environ.get("REPLICA_MAX_RSS_MB", DEFAULT_MAX_RSS_MB)) * 1024 * 1024


def check_memory(limit: int | None = None) -> None:
    """The replica's resident size, its children's included (the model deployments' engines
    run in child processes: deployments/killable.py)."""
    bound = max_rss_bytes() if limit is None else limit
    if bound <= 0:
        return
    me = psutil.Process()
    rss = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            rss += child.memory_info().rss
        except psutil.Error:
            continue
    if rss > bound:
        raise RuntimeError(f"resident memory {rss >> 20} MiB is over the {bound >> 20} MiB bound")
