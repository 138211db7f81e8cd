"""What a step costs, declared next to its operation and known before any pixel is decoded.

Every step model has `cost(width, height) -> StepCost`: the work it does on an image of that
size and the size it leaves behind, so a whole pipeline can be priced from the source's header
dimensions alone (issue #18: refuse what is too costly before decoding, and place the work by
its price).

The unit of work: one megapixel through one cheap per-pixel pass (a copy or a point operation)
is 1.0. An operation's figure is that times how much more each of its pixels costs (a kernel's
area, a radius, a model's fixed price at the size it runs at), measured, not guessed: the
coefficients sit beside each operation with the measurement that set them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StepCost:
    """`work` in work units; `width` x `height` is the image the step leaves behind."""

    work: float
    width: int
    height: int


class Costed(Protocol):
    """What every pipeline step is, as far as pricing goes."""

    op: str

    def cost(self, width: int, height: int) -> StepCost: ...


def megapixels(width: int, height: int) -> float:
    return width * height / 1_000_000
