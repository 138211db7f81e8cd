"""Where the ingress runs image pipelines: inline on a bounded pool that sheds past its queue,
except pipelines that would hold the GIL (a median filter), which take the hop."""

from __future__ import annotations

import asyncio

import pytest

from deployments.preprocessor import Preprocessor
from pipelines.errors import Overloaded
from pipelines.limits import Limits
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
