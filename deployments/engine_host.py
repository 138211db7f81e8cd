"""What the FaceDetector and the OcrReader share (issue #15: they were near twins): engines
chosen by name per request, a default from `user_config`, every call priced and checked against
the live limits, and run where it can be stopped (issue #18).

The engines live in a child process (deployments/killable.py), never in the replica: a call past
its deadline, or whose client went away, has its child killed and replaced, so a long C call
(MTCNN, EasyOCR) never computes for a request nobody waits for. The default engine loads in the
child as it starts (and at the replica's start, so a missing model is known at once); the
others load on their first request. The replica itself imports neither torch nor the engines.

user_config: default_engine, threads (torch CPU threads in the child), workers (children, each
running one call at a time; default 1), limits (see pipelines/limits.py: the same block as every
other deployment's).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from deployments import metrics
from deployments.health import check_memory
from deployments.killable import WorkerPool
from pipelines import engines
from pipelines.admission import check_model_cost, model_op
from pipelines.errors import ModelUnavailable
from pipelines.faces import FaceParams
from pipelines.limits import Limits, apply_live, deadline_after
from pipelines.ocr import OcrParams
from pipelines.results import FacesResult, OcrResult
from pipelines.sizing import ModelImage, working
from pipelines.spec import validated

log = logging.getLogger("ray.serve")
P = TypeVar("P", FaceParams, OcrParams)
R = TypeVar("R", FacesResult, OcrResult)

# A failed load is tried again after this long, not on every request (a missing file fails
# every time; a passing cause such as memory pressure may clear).
LOAD_RETRY_S = 60.0
# A first load (torch and a model: seconds, more on a busy machine) is not a request's work:
# it gets its own time, not the request's deadline.
LOAD_TIMEOUT_S = 300.0


@dataclass
class EngineState:
    title: str
    lazy: bool
    loaded: bool = False
    error: str | None = None
    load_seconds: float | None = None
    failed_at: float = 0.0

    def check(self) -> None:
        if self.error is not None and time.monotonic() - self.failed_at < LOAD_RETRY_S:
            raise ModelUnavailable(f"{self.title} is unavailable: {self.error}")

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.error is None,
            "loaded": self.loaded,
            "lazy": self.lazy,
            "loading": False,
            "error": self.error,
            "load_seconds": self.load_seconds,
        }


class EngineHost(Generic[P, R]):
    family: ClassVar[engines.Family]
    params_model: ClassVar[type[FaceParams] | type[OcrParams]]
    titles: ClassVar[dict[str, str]]

    def __init__(
        self,
        default_engine: str,
        limits: dict[str, Any] | None = None,
        threads: int = 1,
        workers: int = 1,
    ) -> None:
        self.default_engine = default_engine
        self.threads = threads
        self.base_limits = Limits.model_validate(limits or {})
        self.limits = self.base_limits.model_copy()
        self.state = {
            name: EngineState(title, lazy=name != default_engine)
            for name, title in self.titles.items()
        }
        self.pool = self._pool(workers)
        self._load_default()

    def _pool(self, workers: int) -> WorkerPool:
        init = (engines.load, (self.family, self.default_engine, self.threads))
        return WorkerPool(workers, preload=("pipelines.engines",), init=init)

    def _load_default(self) -> None:
        state = self.state[self.default_engine]
        try:
            seconds = self.pool.call_now(
                engines.load, self.family, self.default_engine, self.threads
            )
        except ModelUnavailable as exc:
            state.error, state.failed_at = exc.message, time.monotonic()
            log.error("%s could not be loaded: %s", state.title, exc.message)
            return
        state.loaded, state.error = True, None
        state.load_seconds = round(seconds or 0.0, 2)

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_live(self.limits, self.base_limits, config.get("limits"))
        if "threads" in config:
            self.threads = int(config["threads"])  # passed with every call
        default = config.get("default_engine")
        if default and default != self.default_engine:
            self.default_engine = str(self.params_model(engine=default).engine)
            # Children started from now on load it first; it stays "lazy" in the status (it
            # was not loaded at start).
            self.pool.init = (engines.load, (self.family, self.default_engine, self.threads))
        workers = int(config.get("workers", self.pool.size))
        if workers != self.pool.size:
            old, self.pool = self.pool, self._pool(workers)
            old.close()

    async def _call(
        self,
        image: np.ndarray | ModelImage,
        params: P | dict[str, Any] | None,
        timeout_s: float | None,
        sent_at: float | None,
    ) -> R:
        checked: P = validated(self.params_model, params)  # type: ignore[assignment]
        name = checked.engine or self.default_engine
        checked = checked.model_copy(update={"engine": name})
        state = self.state[name]
        state.check()
        source = ModelImage.of(image)
        estimate = check_model_cost(checked, source.source_width, source.source_height, self.limits)
        metrics.observe_estimate(estimate)
        # Send the child no more pixels than the engine will look at.
        source = working(source, checked.working_side())
        if not state.loaded:
            await self._load(name, state)
        deadline = deadline_after(self.limits, timeout_s, sent_at)
        work, detail = estimate.total, False
        if isinstance(checked, OcrParams):  # the optional detail pass, if it fits the limit
            extra = checked.detail_cost(source.source_width, source.source_height)
            detail = extra > 0 and work + extra <= self.limits.max_work
            work += extra if detail else 0.0
        started, kills = time.monotonic(), self.pool.kills
        try:
            result, loaded = await self.pool.run(
                engines.run,
                self.family,
                name,
                self.threads,
                source,
                checked,
                detail,
                deadline=deadline,
                work=work,
            )
        except ModelUnavailable as exc:
            state.error, state.failed_at, state.loaded = exc.message, time.monotonic(), False
            raise
        finally:
            if self.pool.kills != kills:  # a fresh child holds only the default engine
                for other, other_state in self.state.items():
                    other_state.loaded = other_state.loaded and other == self.default_engine
        state.error = None
        state.loaded = True
        if loaded is not None:
            state.load_seconds = round(loaded, 2)
        metrics.observe(model_op(checked), time.monotonic() - started)
        out: R = result  # type: ignore[assignment]  # the family's engines return R
        return out

    async def _load(self, name: str, state: EngineState) -> None:
        try:
            seconds = await self.pool.run(
                engines.load,
                self.family,
                name,
                self.threads,
                deadline=time.monotonic() + LOAD_TIMEOUT_S,
            )
        except ModelUnavailable as exc:
            state.error, state.failed_at = exc.message, time.monotonic()
            log.error("%s could not be loaded: %s", state.title, exc.message)
            raise
        state.loaded, state.error = True, None
        if seconds is not None:
            state.load_seconds = round(seconds, 2)

    def check_health(self) -> None:
        check_memory()

    def status(self) -> dict[str, Any]:
        return {
            "default_engine": self.default_engine,
            "engines": {name: state.status() for name, state in self.state.items()},
            "workers": self.pool.size,
            "killed": self.pool.kills,
        }

    def __del__(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
