"""Where the ingress runs image pipelines: inline on a bounded pool that sheds past its queue,
except pipelines that would hold the GIL (a median filter), which take the hop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from deployments.killable import NodeSlots
from deployments.preprocessor import Preprocessor
from pipelines.cost import SECONDS_PER_WORK_UNIT
from pipelines.errors import Overloaded
from pipelines.limits import Limits, deadline_after, time_left
from pipelines.pipeline import estimate
from pipelines.spec import PipelineSpec
from serve_app.services.image_work import InlineFirst, LocalImageWork, RemoteImageWork
from tests.conftest import encode, photo
from tests.serve_app.inprocess import InProcessHandle

JPEG = encode(photo("astronaut"), "JPEG")
RESIZE = PipelineSpec.model_validate({"steps": [{"op": "resize", "width": 64}]})
MEDIAN = PipelineSpec.model_validate({"steps": [{"op": "filter", "name": "median", "size": 5}]})
SLOW = PipelineSpec.model_validate(
    {
        "steps": [
            {"op": "resize", "width": 2400, "upscale": True},
            {"op": "filter", "name": "gaussian", "radius": 30},
        ]
    }
)


async def test_past_its_queue_the_pool_sheds_at_once() -> None:
    work = LocalImageWork(Limits(), threads=1, max_queued=1)
    outcomes = await asyncio.gather(
        *(work.process(JPEG, SLOW) for _ in range(4)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, Overloaded)]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    assert (len(done), len(refused)) == (2, 2), outcomes
    assert refused[0].status == 503 and refused[0].code == "overloaded"
    assert work.pending == 0
    assert (await work.process(JPEG, RESIZE)).width == 64  # room again once they finished


@pytest.mark.parametrize(
    ("spec", "remote_calls", "where"), [(RESIZE, 0, "inline"), (MEDIAN, 1, "Preprocessor")]
)
async def test_only_gil_holding_pipelines_take_the_hop(
    spec: PipelineSpec, remote_calls: int, where: str
) -> None:
    handle = InProcessHandle(Preprocessor)
    work = InlineFirst(LocalImageWork(Limits(), threads=1), RemoteImageWork(handle, Limits()))  # type: ignore[arg-type]
    assert work.doer(spec).where == where  # what the trace span is named after
    result = await work.process(JPEG, spec)
    assert result.format == "jpeg"
    assert handle.calls["process"] == remote_calls
    assert (await work.info(JPEG))["width"] == 512
    assert handle.calls["info"] == 0


def test_time_gone_before_the_call_arrived_is_charged() -> None:
    limits = Limits(pipeline_timeout_s=30)
    now = time.monotonic()
    assert deadline_after(limits, 10.0, sent_at=time.time() - 4.0) - now == pytest.approx(
        6, abs=0.5
    )
    assert deadline_after(limits, 10.0, sent_at=time.time() - 60.0) - now < 0.5  # all gone
    # A callee's clock behind the caller's gives no time back.
    assert deadline_after(limits, 10.0, sent_at=time.time() + 5.0) - now == pytest.approx(
        10, abs=0.5
    )
    left = time_left(now + 7.0)
    assert left["timeout_s"] == pytest.approx(7, abs=0.5)
    assert left["sent_at"] == pytest.approx(time.time(), abs=0.5)


async def test_a_call_queued_for_a_replica_is_shed_by_the_callers_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by `make reliability` (2 x 504 among 2408 expensive requests): the time a call
    waited in Serve's router was not charged to the Preprocessor, so it waited for a core
    past the ingress's deadline, and the ingress answered 504 where the Preprocessor, knowing
    the deadline, sheds with 503 and Retry-After. Fails without `sent_at` (504)."""
    median = PipelineSpec.model_validate({"steps": [{"op": "filter", "name": "median", "size": 9}]})
    seconds = estimate(median, 512, 512, "JPEG").total * SECONDS_PER_WORK_UNIT
    assert seconds > 0.5  # takes a core slot; the numbers below need it over 0.5 s
    monkeypatch.setenv("IMAGE_WORK_SLOTS", "1")
    monkeypatch.setenv("IMAGE_WORK_SLOTS_DIR", str(tmp_path))
    limits = Limits(pipeline_timeout_s=seconds + 2.0)
    handle = InProcessHandle(Preprocessor, limits=limits.model_dump(), workers=1)
    # Queued until there is less time left than the work needs, and still more than the
    # Preprocessor would wait for a core if it counted from the call's arrival.
    handle.queued_s = seconds + 1.5
    held = NodeSlots().take()  # the machine's one core slot, busy with another request
    assert held is not None
    try:
        work = RemoteImageWork(handle, limits)  # type: ignore[arg-type]
        with pytest.raises(Overloaded) as refused:
            await work.process(JPEG, median)
        assert refused.value.status == 503 and refused.value.retry_after
    finally:
        NodeSlots.give_back(held)
        handle.target.pool.close()
