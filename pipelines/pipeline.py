"""Run a pipeline: decode once, apply each step in order, encode once."""

from __future__ import annotations

import time
from dataclasses import dataclass

from PIL import Image

from pipelines.decode import DecodedImage, open_image
from pipelines.encode import MEDIA_TYPES, FormatName, encode
from pipelines.errors import DeadlineExceeded
from pipelines.limits import Limits
from pipelines.ops import OPERATIONS
from pipelines.ops.resize import ResizeStep
from pipelines.spec import PipelineSpec


@dataclass(frozen=True)
class ProcessedImage:
    """An encoded result and what a client needs to know about it."""

    data: bytes
    format: str
    media_type: str
    width: int
    height: int
    source_format: str
    source_width: int
    source_height: int
    elapsed_ms: float


def run_pipeline(
    data: bytes, spec: PipelineSpec, limits: Limits, *, deadline: float | None = None
) -> ProcessedImage:
    """`deadline` is a `time.monotonic()` value; checked between steps."""
    started = time.monotonic()
    if deadline is None:
        deadline = started + limits.pipeline_timeout_s
    # Shrink-on-load only when a resize comes first: later steps then see only its output.
    first = spec.steps[0] if spec.steps else None
    hint = first.decode_hint if isinstance(first, ResizeStep) else None
    decoded = open_image(data, limits, shrink_to=hint)
    img = decoded.image
    steps = list(spec.steps)
    if isinstance(first, ResizeStep):
        steps[0] = first.pinned(decoded.width, decoded.height)
    for index, step in enumerate(steps):
        if time.monotonic() > deadline:
            raise DeadlineExceeded(f"the pipeline ran out of time before step {index}")
        img = OPERATIONS[step.op](img, step, limits)
    if time.monotonic() > deadline:
        raise DeadlineExceeded("the pipeline ran out of time before encoding")
    fmt, quality = spec.output(decoded.format)
    return finish(img, decoded, fmt, quality, started)


def finish(
    img: Image.Image,
    decoded: DecodedImage,
    fmt: FormatName,
    quality: int | None,
    started: float,
) -> ProcessedImage:
    """Encode `img` (made from `decoded`) once, with what a client needs to know about it."""
    return ProcessedImage(
        data=encode(img, fmt, quality),
        format=fmt,
        media_type=MEDIA_TYPES[fmt],
        width=img.width,
        height=img.height,
        source_format=decoded.format.lower(),
        source_width=decoded.width,
        source_height=decoded.height,
        elapsed_ms=(time.monotonic() - started) * 1000.0,
    )
