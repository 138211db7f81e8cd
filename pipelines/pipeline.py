"""Run a pipeline: decode once, apply each step in order, encode once."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image

from pipelines import regions as rg
from pipelines.decode import DecodedImage, open_image, read_frames
from pipelines.encode import (
    ANIMATED,
    DEFAULT_QUALITY,
    LOSSY,
    MEDIA_TYPES,
    FormatName,
    encode,
    encode_frames,
)
from pipelines.errors import DeadlineExceeded
from pipelines.limits import Limits
from pipelines.ops import CONTEXTUAL, OPERATIONS, StepContext
from pipelines.spec import PipelineSpec, Step


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
    # Shrink-on-load only when a resizing step comes first: later steps then see only its output.
    first = spec.steps[0] if spec.steps else None
    hint = getattr(first, "decode_hint", None)
    decoded = open_image(data, limits, shrink_to=hint)
    img = decoded.image
    steps: list[Step] = [step.model_copy() for step in spec.steps]  # steps may memo per run
    if first is not None and hasattr(first, "pinned"):
        steps[0] = first.pinned(decoded.width, decoded.height)
    # Regions come in the source's upright pixels; the decoded image may be smaller.
    regions = rg.scale(tuple(spec.regions), img.width / decoded.width, img.height / decoded.height)
    assets = {
        name: open_image(spec.assets[name], limits).image
        for name in spec.asset_names()
        if name in spec.assets
    }
    fmt, quality = spec.output(decoded.format)
    if spec.frames == "all" and decoded.frames > 1 and fmt in ANIMATED:
        return _animated(
            data, decoded, spec, steps, limits, deadline, assets, fmt, quality, started
        )
    img = apply_steps(img, steps, limits, StepContext(regions, assets), deadline)
    if time.monotonic() > deadline:
        raise DeadlineExceeded("the pipeline ran out of time before encoding")
    return finish(img, decoded, fmt, quality, started, max_bytes=spec.max_bytes())


def apply_steps(
    img: Image.Image,
    steps: Sequence[Step],
    limits: Limits,
    ctx: StepContext,
    deadline: float,
) -> Image.Image:
    for index, step in enumerate(steps):
        if time.monotonic() > deadline:
            raise DeadlineExceeded(f"the pipeline ran out of time before step {index}")
        contextual = CONTEXTUAL.get(step.op)
        if contextual is not None:
            img = contextual(img, step, limits, ctx)
            continue
        before = img.size
        img = OPERATIONS[step.op](img, step, limits)
        if ctx.regions and img.size != before:  # a plain op that resized the whole picture
            ctx.regions = rg.scale(ctx.regions, img.width / before[0], img.height / before[1])
    return img


def _animated(
    data: bytes,
    decoded: DecodedImage,
    spec: PipelineSpec,
    steps: Sequence[Step],
    limits: Limits,
    deadline: float,
    assets: Mapping[str, Image.Image],
    fmt: FormatName,
    quality: int | None,
    started: float,
) -> ProcessedImage:
    """Every frame through the same steps (the first one's choices, such as a smart crop's
    window, hold for all: the steps memo them), encoded as one animation."""
    animation = read_frames(data, limits)
    scale = (animation.frames[0].width / decoded.width, animation.frames[0].height / decoded.height)
    out = []
    for frame in animation.frames:
        ctx = StepContext(rg.scale(tuple(spec.regions), *scale), assets)
        out.append(apply_steps(frame, steps, limits, ctx, deadline))
    if time.monotonic() > deadline:
        raise DeadlineExceeded("the pipeline ran out of time before encoding")
    encoded = encode_frames(out, animation.durations, animation.loop, fmt, quality)
    return _result(encoded, out[0], decoded, fmt, started)


def fit_bytes(img: Image.Image, fmt: FormatName, quality: int | None, max_bytes: int) -> bytes:
    """Encode, lowering a lossy format's quality a quarter at a time (thumbor's max_bytes)
    until it fits; below quality 10 the smallest attempt is the answer."""
    data = encode(img, fmt, quality)
    if fmt not in LOSSY or len(data) <= max_bytes:
        return data
    q = quality or DEFAULT_QUALITY[fmt]
    while len(data) > max_bytes:
        q = int(q * 0.75)
        if q < 10:
            break
        data = encode(img, fmt, q)
    return data


def finish(
    img: Image.Image,
    decoded: DecodedImage,
    fmt: FormatName,
    quality: int | None,
    started: float,
    *,
    max_bytes: int | None = None,
) -> ProcessedImage:
    """Encode `img` (made from `decoded`) once, with what a client needs to know about it."""
    if max_bytes is not None:
        data = fit_bytes(img, fmt, quality, max_bytes)
    else:
        data = encode(img, fmt, quality)
    return _result(data, img, decoded, fmt, started)


def _result(
    data: bytes, img: Image.Image, decoded: DecodedImage, fmt: FormatName, started: float
) -> ProcessedImage:
    return ProcessedImage(
        data=data,
        format=fmt,
        media_type=MEDIA_TYPES[fmt],
        width=img.width,
        height=img.height,
        source_format=decoded.format.lower(),
        source_width=decoded.width,
        source_height=decoded.height,
        elapsed_ms=(time.monotonic() - started) * 1000.0,
    )
