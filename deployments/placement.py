"""Where one image job runs, decided by its price (issue #18): on a thread of this process when
it is cheap, in a killable child process (killable.py) when it is not. Either way it runs under
a deadline that answers 504 and stops the work.

Why the split, measured (bench/COST.md): a thumbnail is ~10 ms of work, and a round trip to a
child costs ~1-3 ms plus copying the image both ways; a median filter on a 27 MP photo is a
minute in one C call that no thread can interrupt. Work under `INLINE_MAX_WORK` (about half a
second on one core) stays on threads, where the deadline and a departed client are checked
between steps and nothing waits past its deadline in the queue; above it, the child is killed
at the deadline.

What runs in a child must import no Ray: the functions sent there live in pipelines/.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from deployments import metrics
from deployments.killable import WorkerPool
from pipelines.cost import Estimate
from pipelines.decode import Header, read_header
from pipelines.errors import DeadlineExceeded
from pipelines.limits import Limits
from pipelines.pipeline import ProcessedImage, check_cost, run_within
from pipelines.spec import PipelineSpec

T = TypeVar("T")

INLINE_MAX_WORK = 150.0


@dataclass(frozen=True)
class Admitted:
    """A request's header and price, read once and handed to whoever runs it."""

    header: Header
    estimate: Estimate


def admit_pipeline(
    data: bytes, spec: PipelineSpec, limits: Limits, *, record: bool = True
) -> Admitted:
    """`spec`'s price on `data`, from its header alone: 413/415/400 for what the limits refuse
    outright, 422 too_costly over LIMITS_MAX_WORK. `record`: export it as the admitted-cost
    metric (once per request, by whoever runs it)."""
    header = read_header(data, limits)
    estimate = check_cost(spec, header.width, header.height, limits, source_format=header.format)
    if record:
        metrics.observe_estimate(estimate)
    return Admitted(header, estimate)


def operation_name(spec: PipelineSpec) -> str:
    ops = [step.op for step in spec.steps]
    return ops[0] if len(ops) == 1 else ("pipeline" if ops else "encode")


async def in_thread(
    executor: Executor,
    fn: Callable[..., T],
    *args: Any,
    deadline: float,
    stoppable: bool = False,
) -> T:
    """`fn(*args)` on `executor` by `deadline`: 504 when it passes. A job still queued then
    never starts; a running one is told to stop (`stop=`, when `stoppable`) and gives up at its
    next step. A cancelled caller (client gone) stops it the same way."""
    stop = threading.Event()

    def guarded() -> T:
        if stop.is_set() or time.monotonic() > deadline:
            raise DeadlineExceeded("the work ran out of time before it could start")
        return fn(*args, stop=stop) if stoppable else fn(*args)

    job = asyncio.get_running_loop().run_in_executor(executor, guarded)
    try:
        return await asyncio.wait_for(job, max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise DeadlineExceeded("the work ran out of time and was stopped") from None
    finally:
        stop.set()


async def run_placed(
    fn: Callable[..., T],
    *args: Any,
    work: float,
    deadline: float,
    executor: Executor,
    pool: WorkerPool,
) -> T:
    """`fn(*args)` where its price says: a thread when cheap, a killable child when not."""
    if work <= INLINE_MAX_WORK:
        return await in_thread(executor, fn, *args, deadline=deadline)
    return await pool.run(fn, *args, deadline=deadline, work=work)


async def process_placed(
    data: bytes,
    spec: PipelineSpec,
    limits: Limits,
    *,
    deadline: float,
    executor: Executor,
    pool: WorkerPool,
) -> ProcessedImage:
    """Admit (price and check), then run one pipeline where its price says, timed."""
    estimate = admit_pipeline(data, spec, limits).estimate
    started = time.monotonic()
    if estimate.total <= INLINE_MAX_WORK:
        result = await in_thread(
            executor,
            run_within,
            data,
            spec,
            limits,
            deadline - time.monotonic(),
            deadline=deadline,
            stoppable=True,
        )
    else:
        result = await pool.run(
            run_within,
            data,
            spec,
            limits,
            max(0.0, deadline - time.monotonic()),
            deadline=deadline,
            work=estimate.total,
        )
    metrics.observe(operation_name(spec), time.monotonic() - started)
    return result
