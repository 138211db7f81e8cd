"""The price of a model call and of a batch pipeline, checked like a pipeline's
(`pipeline.check_cost`): the same units, the same `Limits.max_work`, the same 422 `too_costly`.

A model call decodes its source at the model's working size (JPEG shrink-on-load: sizing.py)
and runs the model there; a batch pipeline runs its image stages (each decoded and encoded
once) and its AI steps on what the stage before left.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pipelines.cost import Estimate, Part, StepCost, refuse_over
from pipelines.decode import Header, decode_cost, open_image
from pipelines.detection import DetectParams
from pipelines.faces import FaceParams
from pipelines.limits import Limits
from pipelines.pipeline import estimate
from pipelines.sizing import ModelImage, fit_side, working
from pipelines.tasks import TaskPipeline


class ModelStep(Protocol):
    """An AI step's parameters (DetectParams, FaceParams, OcrParams, or the batch steps made
    of them): priced like a step, fed at its working side."""

    def cost(self, width: int, height: int) -> StepCost: ...

    def working_side(self) -> int: ...


def model_op(step: ModelStep) -> str:
    """The operation's name, as a batch pipeline and the metrics spell it."""
    if isinstance(step, DetectParams):
        return "detect_objects"
    if isinstance(step, FaceParams):
        return "detect_faces"
    return "ocr"


def estimate_model(
    step: ModelStep, width: int, height: int, source_format: str | None = None
) -> Estimate:
    """Decoding a width x height `source_format` image for `step`'s model (None: the pixels
    are already decoded) and running the model on it."""
    parts = []
    if source_format is not None:
        side = step.working_side()
        work, _, _ = decode_cost(source_format, width, height, lambda w, h: fit_side(w, h, side))
        parts.append(Part("decode", work, "file"))
    priced = step.cost(width, height)
    parts.append(Part(model_op(step), priced.work, priced.field))
    return Estimate(tuple(parts), width, height)


def check_model_cost(
    step: ModelStep,
    width: int,
    height: int,
    limits: Limits,
    source_format: str | None = None,
) -> Estimate:
    return refuse_over(estimate_model(step, width, height, source_format), limits.max_work)


def estimate_task(
    pipeline: TaskPipeline, width: int, height: int, source_format: str | None = None
) -> Estimate:
    """One batch item: each stage's image steps as a pipeline, then its AI steps on the
    stage's result (decoded again, as the runner hands them the encoded result)."""
    total = Estimate((), width, height)
    fmt = source_format
    for stage in pipeline.plan():
        if stage.image:
            spec = pipeline.image_spec(stage.image)
            priced = estimate(spec, width, height, fmt)
            total = total.plus(priced)
            width, height = priced.width, priced.height
            fmt = spec.output(fmt or "")[0].upper()
        for step in stage.ai:
            total = total.plus(estimate_model(step, width, height, fmt))
    return total


def check_task_cost(
    pipeline: TaskPipeline,
    width: int,
    height: int,
    limits: Limits,
    source_format: str | None = None,
) -> Estimate:
    """A batch item's price, or 422 `too_costly`: checked for every image when the batch is
    submitted, before anything is stored."""
    return refuse_over(estimate_task(pipeline, width, height, source_format), limits.max_work)


def decode_for_model(data: bytes, step: ModelStep, limits: Limits) -> ModelImage:
    """`data` decoded for `step`'s model: the call priced from the header (decode and model)
    and refused over the limit before any pixel decodes, then decoded straight to about the
    working size (JPEG shrink-on-load) and brought to it."""
    side = step.working_side()

    def admit(header: Header) -> Estimate:
        return check_model_cost(step, header.width, header.height, limits, header.format)

    decoded = open_image(data, limits, shrink_to=lambda w, h: fit_side(w, h, side), admit=admit)
    pixels = np.asarray(decoded.image.convert("RGB"))
    return working(ModelImage(pixels, decoded.width, decoded.height), side)
