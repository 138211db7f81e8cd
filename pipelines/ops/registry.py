"""Name -> operation. Each op module registers its `apply` function with `@register("name")`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from PIL import Image

from pipelines.limits import Limits

Operation = Callable[[Image.Image, Any, Limits], Image.Image]
OPERATIONS: dict[str, Operation] = {}

F = TypeVar("F", bound=Operation)


def register(name: str) -> Callable[[F], F]:
    def add(fn: F) -> F:
        if name in OPERATIONS:
            raise ValueError(f"operation {name!r} registered twice")
        OPERATIONS[name] = fn
        return fn

    return add
