"""Name -> operation. Each op module registers its `apply` function with `@register("name")`.

Most operations see only the image and their step. Those that move pixels around or read
another picture register with `@register_contextual("name")` instead and also get the step's
`StepContext`: the regions of interest, which they keep in step with the pixels
(pipelines/regions.py), and the extra images the pipeline was given (a watermark).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from PIL import Image

from pipelines.limits import Limits
from pipelines.regions import Regions

Operation = Callable[[Image.Image, Any, Limits], Image.Image]
OPERATIONS: dict[str, Operation] = {}


@dataclass
class StepContext:
    """What travels beside the pixels: `regions` (updated by the steps that move pixels),
    `assets`, other images by the name a step gives them (already decoded elsewhere), and
    `box`, the size the last thumbnail step aimed at (thumbor's requested size once its
    geometry ran; None on a side left to the image), which a later fill pads to."""

    regions: Regions = ()
    assets: Mapping[str, Image.Image] = field(default_factory=dict)
    box: tuple[int | None, int | None] | None = None


ContextualOperation = Callable[[Image.Image, Any, Limits, StepContext], Image.Image]
CONTEXTUAL: dict[str, ContextualOperation] = {}

F = TypeVar("F", bound=Operation)
C = TypeVar("C", bound=ContextualOperation)


def register(name: str) -> Callable[[F], F]:
    def add(fn: F) -> F:
        if name in OPERATIONS:
            raise ValueError(f"operation {name!r} registered twice")
        OPERATIONS[name] = fn
        return fn

    return add


def register_contextual(name: str) -> Callable[[C], C]:
    """For operations that need the StepContext. They are in OPERATIONS too (run with an empty
    context), so every caller of a plain operation can still run them."""

    def add(fn: C) -> C:
        if name in OPERATIONS:
            raise ValueError(f"operation {name!r} registered twice")

        def plain(img: Image.Image, step: Any, limits: Limits) -> Image.Image:
            return fn(img, step, limits, StepContext())

        OPERATIONS[name] = plain
        CONTEXTUAL[name] = fn
        return fn

    return add


def also_contextual(name: str) -> Callable[[C], C]:
    """A context-aware variant of the plain operation `name` (same pixels, regions kept in
    step): the pipeline runs this one, direct callers of the plain one are unaffected."""

    def add(fn: C) -> C:
        if name not in OPERATIONS or name in CONTEXTUAL:
            raise ValueError(f"{name!r} must be a registered plain operation, once")
        CONTEXTUAL[name] = fn
        return fn

    return add
