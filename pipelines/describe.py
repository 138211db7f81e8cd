"""What a pipeline would do to an image, without encoding it (thumbor's `meta/` URLs): the
source's facts, each step with the size it leaves, the result's size and format, and the
regions of interest in source pixels."""

from __future__ import annotations

import time
from typing import Any

from pipelines import regions as rg
from pipelines.decode import decode, open_image, read_header
from pipelines.limits import Limits
from pipelines.ops import StepContext
from pipelines.pipeline import apply_steps, check_cost
from pipelines.spec import PipelineSpec


def describe(data: bytes, spec: PipelineSpec, limits: Limits, source_name: str) -> dict[str, Any]:
    until = (time.monotonic() + limits.pipeline_timeout_s, None)
    header = read_header(data, limits)
    # Described steps run for real (on the full-size image): priced like the pipeline itself.
    check_cost(spec, header.width, header.height, limits, source_format=header.format)
    decoded = decode(header)
    img = decoded.image
    assets = {
        name: open_image(spec.assets[name], limits).image
        for name in spec.asset_names()
        if name in spec.assets
    }
    ctx = StepContext(tuple(spec.regions), assets)
    operations: list[dict[str, Any]] = []
    for step in spec.steps:
        img = apply_steps(img, [step.model_copy()], limits, ctx, until)
        params = step.model_dump(exclude_defaults=True, exclude={"op"})
        operations.append({"type": step.op, **params, "width": img.width, "height": img.height})
    fmt, quality = spec.output(decoded.format)
    focal = [
        {**r.model_dump(exclude_none=True), "x": r.centre[0], "y": r.centre[1]}
        for r in rg.crop(tuple(spec.regions), (0, 0, decoded.width, decoded.height))
        if r.aim  # what a redaction alone needed is no focal point
    ]
    return {
        "thumbor": {
            "source": {
                "url": source_name,
                "width": decoded.width,
                "height": decoded.height,
                "frameCount": decoded.frames,
                "format": decoded.format.lower(),
            },
            "operations": operations,
            "target": {"width": img.width, "height": img.height, "format": fmt, "quality": quality},
            "focal_points": focal,
        }
    }
