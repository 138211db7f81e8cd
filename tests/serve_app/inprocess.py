"""Deployments' own classes, called in this process through the `.method.remote()` shape of a
DeploymentHandle: the ingress's and the runner's logic against the real image code, without a
Ray cluster. Awaitable arguments are resolved first, as Serve resolves a DeploymentResponse
passed to another deployment. Calls are counted per method; `queued_s` delays each, as
Serve's router holds a call while every replica is at its max_ongoing_requests."""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from typing import Any


class _Method:
    def __init__(self, owner: InProcessHandle, name: str) -> None:
        self.owner = owner
        self.name = name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        self.owner.calls[self.name] += 1
        fn = getattr(self.owner.target, self.name)

        async def call() -> Any:
            await asyncio.sleep(self.owner.queued_s)
            resolved = [await a if inspect.isawaitable(a) else a for a in args]
            out = fn(*resolved, **kwargs)
            return await out if inspect.isawaitable(out) else out

        return call()


class InProcessHandle:
    def __init__(self, deployment: Any, *args: Any, **kwargs: Any) -> None:
        cls = getattr(deployment, "func_or_class", deployment)  # the class under @serve.deployment
        self.target = cls(*args, **kwargs)
        self.calls: Counter[str] = Counter()
        self.queued_s = 0.0

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(self, name)
