"""FaceDetector: OpenCV's Haar cascade, or MTCNN (a CNN) when asked.

user_config: default_engine (haar | mtcnn), threads, workers, limits (deployments/engine_host.py).

The engines run in a child process that a deadline or a departed client kills (engine_host.py);
the default one loads at start, the other on its first request: a Haar replica never imports
torch. Images are looked at no larger than `pipelines.sizing.FACES_MAX_SIDE`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from ray import serve

from deployments import metrics
from deployments.engine_host import EngineHost
from pipelines.faces import FaceEngineName, FaceParams
from pipelines.results import FacesResult
from pipelines.sizing import ModelImage


@serve.deployment(name="FaceDetector", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=8)
class FaceDetector(EngineHost[FaceParams, FacesResult]):
    family = "faces"
    params_model = FaceParams
    titles: ClassVar[dict[str, str]] = {"haar": "Haar cascade", "mtcnn": "MTCNN"}

    def __init__(
        self,
        default_engine: FaceEngineName = "haar",
        limits: dict[str, Any] | None = None,
        threads: int = 1,
        workers: int = 1,
    ) -> None:
        super().__init__(default_engine, limits, threads, workers)

    async def detect(
        self,
        image: np.ndarray | ModelImage,
        params: FaceParams | dict[str, Any] | None = None,
        timeout_s: float | None = None,
        sent_at: float | None = None,
    ) -> FacesResult:
        """Faces in one upright RGB image; boxes in its pixels (a ModelImage's source's)."""
        result: FacesResult = await self._call(image, params, timeout_s, sent_at)
        if result.faces:  # Ray's counters refuse an increment of 0
            metrics.faces_detected().inc(len(result.faces), tags={"engine": result.engine})
        return result
