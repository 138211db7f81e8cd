"""Run a pipeline: read the header, price the work, decode once, apply each step in order,
encode once.

`check_cost` is the one place a pipeline's price is decided (issue #18); `run_pipeline` calls
it between the header and the decode, so nothing that runs a pipeline can skip it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from PIL import Image

from pipelines.cost import Estimate, Part, encode_cost, price_steps, refuse_over
from pipelines.decode import (
    DecodedImage,
    Header,
    ShrinkHint,
    decode,
    decode_cost,
    read_header,
)
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


def _shrink_hint(spec: PipelineSpec) -> ShrinkHint | None:
    # Shrink-on-load only when a resize comes first: later steps then see only its output.
    first = spec.steps[0] if spec.steps else None
    return first.decode_hint if isinstance(first, ResizeStep) else None


def estimate(
    spec: PipelineSpec, width: int, height: int, source_format: str | None = None
) -> Estimate:
    """The work `spec` costs on an upright width x height `source_format` image: the decode
    (at the size shrink-on-load gives), each step at the size the one before leaves, the
    encode of the result. An unknown format is priced as the dearest decoder."""
    work, dec_w, dec_h = decode_cost(source_format, width, height, _shrink_hint(spec))
    steps = list(spec.steps)
    if steps and isinstance(steps[0], ResizeStep):
        steps[0] = steps[0].pinned(width, height)
    priced = price_steps(steps, dec_w, dec_h)
    fmt = spec.output(source_format or "")[0]  # an unknown source encodes as PNG
    encoded = encode_cost(fmt, priced.width, priced.height)
    parts = (
        Part("decode", work, "file"),
        *priced.parts,
        Part("encode", encoded.work, "format"),
    )
    return Estimate(parts, priced.width, priced.height)


def check_cost(
    spec: PipelineSpec,
    width: int,
    height: int,
    limits: Limits,
    *,
    source_format: str | None = None,
) -> Estimate:
    """`spec`'s estimate on a width x height source, or 422 `too_costly` over
    `limits.max_work`, naming the field of its costliest part. Every front door (the POST
    routes, batch items, handle calls, the URL API) meets it inside `run_pipeline`; call it
    directly to refuse even earlier."""
    return refuse_over(estimate(spec, width, height, source_format), limits.max_work)


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
    check_cost(spec, header.width, header.height, limits, source_format=header.format)
    decoded = decode(header, shrink_to=_shrink_hint(spec))
    img = decoded.image
    steps = list(spec.steps)
    first = steps[0] if steps else None
    if isinstance(first, ResizeStep):
        steps[0] = first.pinned(decoded.width, decoded.height)
    for index, step in enumerate(steps):
        _check_time(deadline, stop, f"before step {index}")
        img = OPERATIONS[step.op](img, step, limits)
    _check_time(deadline, stop, "before encoding")
    fmt, quality = spec.output(decoded.format)
    return finish(img, decoded, fmt, quality, started)


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
