"""Regions of interest that travel with the image through a pipeline.

A pipeline may name boxes in the source's upright pixels (`PipelineSpec.regions`): an explicit
focal box (thumbor's `focal(AxB:CxD)`), or faces and objects a detector found before the
pipeline ran (the URL API's `smart`). Steps that place a window (the thumbnail's crop) aim at
them; steps that move pixels (crop, trim, resize, flip, rotate, padding) move them too, so a
later step sees each box where its pixels now are. Boxes that leave the picture are dropped.

Every geometric change here is one affine map of coordinates (scale, then shift, or a mirror
or a quarter turn), applied to both corners of each box.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_REGIONS = 64


class Region(BaseModel):
    """A box (x1, y1) - (x2, y2) in pixels, what it is, and how much it counts when several
    are aimed at (None: its area, as thumbor weighs a focal box)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x1: float = Field(ge=-1_000_000, le=1_000_000)
    y1: float = Field(ge=-1_000_000, le=1_000_000)
    x2: float = Field(ge=-1_000_000, le=1_000_000)
    y2: float = Field(ge=-1_000_000, le=1_000_000)
    label: str = Field("focal", max_length=64, description="focal, face, or an object's class")
    weight: float | None = Field(None, ge=0, le=1e12)
    kind: str | None = Field(
        None,
        max_length=64,
        description="which detection found it (pipelines/focus.py's keys: faces, objects, "
        "text, with an engine or model after a colon); None for a focal box",
    )
    aim: bool = Field(True, description="whether window-placing steps aim at it")

    @model_validator(mode="after")
    def _ordered(self) -> Region:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError("a region needs x2 > x1 and y2 > y1")
        return self

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)

    @property
    def importance(self) -> float:
        return self.area if self.weight is None else self.weight

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0


Regions = tuple[Region, ...]


def centre_of_mass(regions: Sequence[Region]) -> tuple[float, float] | None:
    """Where the weighted centres of the regions aimed at balance (thumbor's focal-point
    centre of mass); None when there are none or they weigh nothing. Detections found only
    for a step (a redaction's faces) are not aimed at."""
    regions = [r for r in regions if r.aim]
    total = sum(r.importance for r in regions)
    if not regions or total <= 0:
        return None
    x = sum(r.centre[0] * r.importance for r in regions) / total
    y = sum(r.centre[1] * r.importance for r in regions) / total
    return x, y


def _rebuilt(region: Region, x1: float, y1: float, x2: float, y2: float) -> Region | None:
    left, right = sorted((x1, x2))
    top, bottom = sorted((y1, y2))
    if right - left <= 0 or bottom - top <= 0:
        return None
    return region.model_copy(update={"x1": left, "y1": top, "x2": right, "y2": bottom})


def crop(regions: Regions, box: tuple[float, float, float, float]) -> Regions:
    """After cutting `box` (left, top, right, bottom) out of the image: boxes shifted into the
    window and clipped to it; those outside it are gone."""
    left, top, right, bottom = box
    out = []
    for r in regions:
        x1, y1 = max(r.x1, left) - left, max(r.y1, top) - top
        x2, y2 = min(r.x2, right) - left, min(r.y2, bottom) - top
        if x2 > x1 and y2 > y1:  # anything left inside the window
            out.append(r.model_copy(update={"x1": x1, "y1": y1, "x2": x2, "y2": y2}))
    return tuple(out)


def scale(regions: Regions, sx: float, sy: float) -> Regions:
    out = []
    for r in regions:
        moved = _rebuilt(r, r.x1 * sx, r.y1 * sy, r.x2 * sx, r.y2 * sy)
        if moved is not None:
            out.append(moved)
    return tuple(out)


def window(
    regions: Regions, box: tuple[float, float, float, float], size: tuple[int, int]
) -> Regions:
    """After cutting `box` out and resampling it to `size` (a crop-and-resize in one go)."""
    left, top, right, bottom = box
    cut = crop(regions, box)
    return scale(cut, size[0] / max(right - left, 1e-9), size[1] / max(bottom - top, 1e-9))


def shift(regions: Regions, dx: float, dy: float) -> Regions:
    """After the picture moved by (dx, dy) on a larger canvas."""
    return tuple(
        r.model_copy(update={"x1": r.x1 + dx, "y1": r.y1 + dy, "x2": r.x2 + dx, "y2": r.y2 + dy})
        for r in regions
    )


def flip(regions: Regions, size: tuple[int, int], horizontal: bool, vertical: bool) -> Regions:
    width, height = size
    out = []
    for r in regions:
        x1, x2 = (width - r.x2, width - r.x1) if horizontal else (r.x1, r.x2)
        y1, y2 = (height - r.y2, height - r.y1) if vertical else (r.y1, r.y2)
        out.append(r.model_copy(update={"x1": x1, "y1": y1, "x2": x2, "y2": y2}))
    return tuple(out)


def rotate(regions: Regions, size: tuple[int, int], degrees: int) -> Regions:
    """After a counter-clockwise quarter turn (`degrees` in 90, 180, 270) of a `size` image."""
    width, height = size
    out = []
    for r in regions:
        corners = [(r.x1, r.y1), (r.x2, r.y2)]
        if degrees == 90:
            corners = [(y, width - x) for x, y in corners]
        elif degrees == 180:
            corners = [(width - x, height - y) for x, y in corners]
        elif degrees == 270:
            corners = [(height - y, x) for x, y in corners]
        (ax, ay), (bx, by) = corners
        moved = _rebuilt(r, ax, ay, bx, by)
        if moved is not None:
            out.append(moved)
    return tuple(out)


def of_kind(regions: Sequence[Region], kind: str) -> list[Region]:
    """The regions one detection (a pipelines/focus.py key) found."""
    return [r for r in regions if r.kind == kind]
