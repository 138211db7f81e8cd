"""What a step costs, declared next to its operation and known before any pixel is decoded.

Every step model has `cost(width, height) -> StepCost`: the work it does on an image of that
size and the size it leaves behind, so a whole pipeline can be priced from the source's header
dimensions alone (issue #18: refuse what is too costly before decoding, and place the work by
its price).

The unit of work: one megapixel through one cheap per-pixel pass (a copy or a point operation)
is 1.0. An operation's figure is that times how much more each of its pixels costs (a kernel's
area, a radius, a model's fixed price at the size it runs at), measured, not guessed: the
coefficients sit beside each operation, and `python -m bench.cost_calibration` measures them all
again (bench/COST.md says how, and what one work unit takes in seconds on the machine it ran on).

One place decides: `check_cost` prices a pipeline (decode, steps, encode) and refuses it with
422 `too_costly` over `Limits.max_work`. `pipeline.run_pipeline` calls it between reading the
header and decoding, and the model engines call it on their working size, so every route, batch
item, handle call and the URL API meet the same check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pipelines.errors import InvalidParameter


@dataclass(frozen=True)
class StepCost:
    """`work` in work units; `width` x `height` is the image the step leaves behind.

    `field` names the parameter that drives the work (a median's `size`, a blur's `radius`),
    so a refusal can say what to change; None when it is just the image's size."""

    work: float
    width: int
    height: int
    field: str | None = None


class Costed(Protocol):
    """What every pipeline step is, as far as pricing goes. (`op` read-only, so that step
    models whose `op` is a Literal fit.)"""

    @property
    def op(self) -> str: ...

    def cost(self, width: int, height: int) -> StepCost: ...


# Seconds one work unit takes on one core of the machine the figures were measured on (a 2-core
# x86 VM: bench/COST.md). Used to place and admit work (deployments/killable.py), not to limit
# it: LIMITS_MAX_WORK is in work units, so a faster machine admits the same requests.
SECONDS_PER_WORK_UNIT = 0.0035


def megapixels(width: int, height: int) -> float:
    return width * height / 1_000_000


# --- encoding, per megapixel of the result (bench/cost_calibration.py, "encode") -------------
# The formats the URL API adds take the fallback until they get a measured figure here.
ENCODE_WORK_PER_MP: dict[str, float] = {
    "jpeg": 2.0,
    "png": 170.0,  # zlib on a photo: the dearest encoder by far
    "webp": 40.0,
    "bmp": 1.0,
    "tiff": 1.0,
}
ENCODE_FALLBACK_PER_MP = 180.0


def encode_cost(fmt: str, width: int, height: int) -> StepCost:
    per_mp = ENCODE_WORK_PER_MP.get(fmt, ENCODE_FALLBACK_PER_MP)
    return StepCost(per_mp * megapixels(width, height), width, height, "format")


@dataclass(frozen=True)
class Part:
    """One priced piece of a request: `what` is decode, encode or a step's op."""

    what: str
    work: float
    field: str | None = None
    index: int | None = None  # the step's position in the pipeline


@dataclass(frozen=True)
class Estimate:
    """A request's price, part by part, and the size of what it leaves behind."""

    parts: tuple[Part, ...] = field(default_factory=tuple)
    width: int = 0
    height: int = 0

    @property
    def total(self) -> float:
        return sum(part.work for part in self.parts)

    def costliest(self) -> Part:
        return max(self.parts, key=lambda part: part.work)

    def by_operation(self) -> dict[str, float]:
        """Work per operation name (two steps of one op add up): what the metric exports."""
        out: dict[str, float] = {}
        for part in self.parts:
            out[part.what] = out.get(part.what, 0.0) + part.work
        return out

    def plus(self, other: Estimate) -> Estimate:
        return Estimate(self.parts + other.parts, other.width, other.height)


class TooCostly(InvalidParameter):
    """The request would cost more work than `Limits.max_work` allows: refused before any
    decoding. 422, because the same request never succeeds; a smaller image or a cheaper
    parameter (the one `field` names) does."""

    code = "too_costly"


def price_steps(
    steps: Sequence[Costed],
    width: int,
    height: int,
    *,
    first_index: int = 0,
) -> Estimate:
    """The steps' work on a width x height image, each priced at the size the one before
    leaves."""
    parts: list[Part] = []
    for offset, step in enumerate(steps):
        cost = step.cost(width, height)
        parts.append(Part(step.op, cost.work, cost.field, first_index + offset))
        width, height = cost.width, cost.height
    return Estimate(tuple(parts), width, height)


def refuse_over(estimate: Estimate, max_work: float) -> Estimate:
    """`estimate`, or TooCostly naming its costliest part when its total is over `max_work`."""
    total = estimate.total
    if total <= max_work:
        return estimate
    worst = estimate.costliest()
    where = worst.what if worst.index is None else f"step {worst.index} ({worst.what})"
    raise TooCostly(
        f"this request would cost about {total:,.0f} work units, most of it in {where}"
        f" ({worst.work:,.0f}); the limit is {max_work:,.0f} (LIMITS_MAX_WORK). Use a smaller"
        " image, or a cheaper value of the named field",
        field=worst.field or "file",
    )
