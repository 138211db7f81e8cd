"""Security limits, kept in one place (as imgproxy keeps its `security/`).

`check_upload_size` and `decode.open_image` are the only places that enforce them, and
`cost.refuse_over` (through `pipeline.check_cost` and the model engines) the work limit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from PIL import Image
from pydantic import BaseModel, Field, field_validator

from pipelines.errors import BadImage, TooLarge

# Input formats Pillow may even try to parse. Everything else is refused with 415 before any
# decoder runs, which keeps rarely-audited plugins away from hostile bytes.
# (Multi-picture JPEGs from cameras open through the JPEG plugin.)
DEFAULT_INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class Limits(BaseModel):
    """Per-request ceilings. Defaults fit a 2-core, few-GiB replica."""

    max_upload_bytes: int = Field(32 * 1024 * 1024, ge=1)
    max_pixels: int = Field(50_000_000, ge=1, description="width x height of the source or result")
    max_side: int = Field(16384, ge=1, description="longest side of a requested result")
    max_frames: int = Field(100, ge=1, description="frames in an animated source")
    allowed_formats: tuple[str, ...] = DEFAULT_INPUT_FORMATS
    pipeline_timeout_s: float = Field(
        30.0, gt=0, description="a request's image or model work past this answers 504 and stops"
    )
    max_work: float = Field(
        5000.0,
        gt=0,
        description="the most work (pipelines/cost.py units) one image may cost: decode, steps,"
        " models, encode; more is refused before decoding with 422 too_costly",
    )

    @field_validator("allowed_formats")
    @classmethod
    def _known_formats(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        Image.init()
        names = tuple(f.upper() for f in formats)
        unknown = [f for f in names if f not in Image.ID]
        if unknown:
            raise ValueError(f"unknown image formats: {unknown}")
        return names


def check_upload_size(size: int, limits: Limits) -> None:
    """Refuse empty and oversized payloads before anything parses them."""
    if size == 0:
        raise BadImage("the file is empty", code="empty_file", field="file")
    if size > limits.max_upload_bytes:
        raise TooLarge(
            f"the file has {size} bytes; the limit is {limits.max_upload_bytes}",
            code="upload_too_large",
            field="file",
        )


def check_pixels(width: int, height: int, limits: Limits, *, what: str = "the image") -> None:
    if width * height > limits.max_pixels:
        raise TooLarge(
            f"{what} is {width}x{height} = {width * height} pixels;"
            f" the limit is {limits.max_pixels}",
            code="too_many_pixels",
        )


def apply_live(current: Limits, base: Limits, overrides: Mapping[str, Any] | None) -> Limits:
    """Set `current`, in place, to `base` overridden by `overrides` (a deployment's
    `user_config: {limits: {...}}`), and return it.

    One object per replica is the source of truth: every part of the replica that applies a
    limit (the ingress's inline work, its AI and image services, the Preprocessor, the model
    deployments, the TaskRunner) holds this same object, so one reconfigure reaches them all.
    Overrides are relative to the settings the replica started with, not to the last change:
    a key removed from user_config goes back to its setting. Invalid values raise before
    anything changes."""
    fresh = Limits.model_validate({**base.model_dump(), **dict(overrides or {})})
    for name in Limits.model_fields:
        object.__setattr__(current, name, getattr(fresh, name))
    return current


def deadline_after(
    limits: Limits, timeout_s: float | None = None, sent_at: float | None = None
) -> float:
    """The `time.monotonic()` by which a request's work must end: the pipeline timeout, or
    less when the caller has less left (`timeout_s`, what remains of its own deadline).

    `sent_at`: the wall-clock time (`time.time()`) at which the caller counted `timeout_s`.
    The seconds since then (queued in Serve's router for a replica, or decoding in the
    deployment whose response fed this call) are gone from the caller's deadline too: without
    them the callee would work past it, and the caller answer 504 while the callee, had it
    known, would have shed the call with a 503. Hosts' clocks differ by little (NTP); a clock
    behind the caller's is taken as no time gone, never as time given back."""
    budget = limits.pipeline_timeout_s
    if timeout_s is not None:
        gone = max(0.0, time.time() - sent_at) if sent_at is not None else 0.0
        budget = min(budget, max(0.0, timeout_s - gone))
    return time.monotonic() + budget


def time_left(deadline: float) -> dict[str, float]:
    """The keyword arguments that hand what is left of `deadline` (a `time.monotonic()`) to a
    deployment's method: `timeout_s` and the `sent_at` it was counted at."""
    return {"timeout_s": deadline - time.monotonic(), "sent_at": time.time()}
