"""Run a pipeline: read the header, price the work, decode once, apply each step in order,
encode once.

`check_cost` is the one place a pipeline's price is decided (issue #18); `run_pipeline` calls
it between the header and the decode, so nothing that runs a pipeline can skip it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from PIL import Image

from pipelines import regions as rg
from pipelines.cost import Estimate, Part, encode_cost, price_steps, refuse_over
from pipelines.decode import (
    DecodedImage,
    Header,
    ShrinkHint,
    decode,
    decode_cost,
    open_image,
    read_frames,
    read_header,
)
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

# When work must stop: a monotonic deadline, and an event set when the request was given up.
Until = tuple[float, threading.Event | None]


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


def _shrink_hint(spec: PipelineSpec) -> ShrinkHint | None:
    # Shrink-on-load only when a resizing step comes first: later steps then see only its output.
    first = spec.steps[0] if spec.steps else None
    hint: ShrinkHint | None = getattr(first, "decode_hint", None)
    return hint


def _pinned(steps: list[Step], width: int, height: int) -> list[Step]:
    """The steps with a leading resizing step's result size fixed from the true source size."""
    first = steps[0] if steps else None
    if first is not None and hasattr(first, "pinned"):
        steps[0] = first.pinned(width, height)
    return steps


def estimate(
    spec: PipelineSpec,
    width: int,
    height: int,
    source_format: str | None = None,
    frames: int = 1,
) -> Estimate:
    """The work `spec` costs on an upright width x height `source_format` image: the decode
    (at the size shrink-on-load gives), each step at the size the one before leaves, the
    encode of the result. An unknown format is priced as the dearest decoder. A pipeline that
    keeps an animation's `frames` does all of it once per frame."""
    work, dec_w, dec_h = decode_cost(source_format, width, height, _shrink_hint(spec))
    priced = price_steps(_pinned(list(spec.steps), width, height), dec_w, dec_h)
    fmt = spec.output(source_format or "")[0]  # an unknown source encodes as PNG
    encoded = encode_cost(fmt, priced.width, priced.height)
    parts = (
        Part("decode", work, "file"),
        *priced.parts,
        Part("encode", encoded.work, "format"),
    )
    if frames > 1 and spec.frames == "all" and fmt in ANIMATED:
        parts = tuple(replace(part, work=part.work * frames) for part in parts)
    return Estimate(parts, priced.width, priced.height)


def check_cost(
    spec: PipelineSpec,
    width: int,
    height: int,
    limits: Limits,
    *,
    source_format: str | None = None,
    frames: int = 1,
) -> Estimate:
    """`spec`'s estimate on a width x height source, or 422 `too_costly` over
    `limits.max_work`, naming the field of its costliest part. Every front door (the POST
    routes, batch items, handle calls, the URL API) meets it inside `run_pipeline`; call it
    directly to refuse even earlier."""
    priced = estimate(spec, width, height, source_format, frames)
    return refuse_over(priced, limits.max_work)


def run_pipeline(
    data: bytes,
    spec: PipelineSpec,
    limits: Limits,
    *,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    header: Header | None = None,
) -> ProcessedImage:
    """`deadline` is a `time.monotonic()` value, checked between steps, as is `stop` (set when
    the request was answered or its client left). `header`: `data`'s, when the caller has
    already read it (it is checked and priced again all the same)."""
    started = time.monotonic()
    if deadline is None:
        deadline = started + limits.pipeline_timeout_s
    if header is None:
        header = read_header(data, limits)
    check_cost(
        spec, header.width, header.height, limits, source_format=header.format, frames=header.frames
    )
    decoded = decode(header, shrink_to=_shrink_hint(spec))
    img = decoded.image
    # Copies: steps may memo per run.
    steps = _pinned([step.model_copy() for step in spec.steps], decoded.width, decoded.height)
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
            data, decoded, spec, steps, limits, (deadline, stop), assets, fmt, quality, started
        )
    img = apply_steps(img, steps, limits, StepContext(regions, assets), (deadline, stop))
    _check_time(deadline, stop, "before encoding")
    return finish(img, decoded, fmt, quality, started, max_bytes=spec.max_bytes())


def apply_steps(
    img: Image.Image,
    steps: Sequence[Step],
    limits: Limits,
    ctx: StepContext,
    until: Until,
) -> Image.Image:
    deadline, stop = until
    for index, step in enumerate(steps):
        _check_time(deadline, stop, f"before step {index}")
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
    until: Until,
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
        out.append(apply_steps(frame, steps, limits, ctx, until))
    _check_time(*until, "before encoding")
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


def run_within(
    data: bytes,
    spec: PipelineSpec,
    limits: Limits,
    timeout_s: float,
    stop: threading.Event | None = None,
    header: Header | None = None,
) -> ProcessedImage:
    """`run_pipeline` with `timeout_s` from now: what a worker thread or child runs (a
    monotonic deadline means nothing across machines; seconds left does)."""
    deadline = time.monotonic() + timeout_s
    return run_pipeline(data, spec, limits, deadline=deadline, stop=stop, header=header)


def _check_time(deadline: float, stop: threading.Event | None, where: str) -> None:
    if stop is not None and stop.is_set():
        raise DeadlineExceeded(f"the request was given up {where}", code="cancelled")
    if time.monotonic() > deadline:
        raise DeadlineExceeded(f"the pipeline ran out of time {where}")


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
