"""YoloDetector in process: a request that arrives alone goes straight to the model, not through
the batcher and its wait; one that arrives while another is in flight is batched. (That the
batcher then shares model calls is tested through Serve: tests/integration/test_ai_batching.py.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from deployments.yolo_detector import YoloDetector
from tests.conftest import FALL_MODEL, photo


async def test_alone_goes_straight_to_the_model_company_is_batched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detector = YoloDetector.func_or_class(weights=FALL_MODEL)  # type: ignore[attr-defined]
    queued: list[np.ndarray] = []

    # serve.batch needs a replica to run in; stand in for it with one model call per item.
    async def batcher(image: np.ndarray, params: Any) -> Any:
        queued.append(image)
        (result,) = await detector._infer([image], [params])
        return result

    monkeypatch.setattr(detector, "_batched", batcher)
    image = np.asarray(photo("astronaut"))

    alone = await detector.detect(image, {})
    assert alone.width == 512 and queued == []

    together = await asyncio.gather(*(detector.detect(image, {}) for _ in range(4)))
    assert [r.width for r in together] == [512] * 4
    assert len(queued) == 3  # the first found nobody in flight; the other three had company
    assert detector._in_flight == 0


async def test_requests_arriving_during_a_batch_wait_for_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detector = YoloDetector.func_or_class(weights=FALL_MODEL)  # type: ignore[attr-defined]
    image = np.asarray(photo("astronaut"))
    first = asyncio.create_task(detector.detect(image, {}))
    entered: list[bool] = []  # for each later request: was the first one done when it joined?

    async def batcher(image: np.ndarray, params: Any) -> Any:
        entered.append(first.done())
        (result,) = await detector._infer([image], [params])
        return result

    monkeypatch.setattr(detector, "_batched", batcher)
    await asyncio.sleep(0)  # the first request is on the model now
    assert not detector._model_free.is_set()
    others = [asyncio.create_task(detector.detect(image, {})) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert entered == []  # held back while the model is busy, not queued in small batches
    await first
    assert [r.width for r in await asyncio.gather(*others)] == [512] * 3
    assert entered == [True] * 3 and detector._model_free.is_set()
