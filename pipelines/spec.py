"""The pipeline is data: a validated list of steps, run in order (imgproxy's mainPipeline).

A step's parameters are declared next to its operation (pipelines/ops/<family>.py) and parsed
here, before anything runs. Adding an operation: a step model and an `apply` in a new module,
plus one entry in `Step` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from pipelines.encode import FormatName, OutputFormat, default_format
from pipelines.errors import InvalidParameter
from pipelines.ops.canvas import BackgroundStep, FillStep, RoundCornerStep
from pipelines.ops.color import (
    BrightnessStep,
    ContrastStep,
    EqualizeStep,
    GrayscaleStep,
    RgbStep,
    SaturationStep,
)
from pipelines.ops.convert import ConvertStep
from pipelines.ops.crop import CropStep
from pipelines.ops.detections import DrawDetectionsStep, RedactStep
from pipelines.ops.enhance import EnhanceStep
from pipelines.ops.filters import FilterStep
from pipelines.ops.max_bytes import MaxBytesStep
from pipelines.ops.orientation import FlipStep, RotateStep
from pipelines.ops.resize import ResizeStep
from pipelines.ops.scale import ScaleStep
from pipelines.ops.thumbnail import ThumbnailStep
from pipelines.ops.trim import TrimStep
from pipelines.ops.unsharp import UnsharpStep
from pipelines.ops.watermark import WatermarkStep
from pipelines.regions import MAX_REGIONS, Region

# Every image operation a pipeline (and a batch, pipelines/tasks.py) may name.
ImageStep = (
    ResizeStep
    | CropStep
    | FilterStep
    | EnhanceStep
    | ConvertStep
    | ThumbnailStep
    | TrimStep
    | RotateStep
    | FlipStep
    | ScaleStep
    | BrightnessStep
    | ContrastStep
    | SaturationStep
    | RgbStep
    | GrayscaleStep
    | EqualizeStep
    | UnsharpStep
    | FillStep
    | BackgroundStep
    | RoundCornerStep
    | WatermarkStep
    | MaxBytesStep
    | RedactStep
    | DrawDetectionsStep
)
Step = Annotated[ImageStep, Field(discriminator="op")]
# Kinds of regions of interest the service can find before a pipeline runs (see `detect`).
DetectKind = Literal["faces", "objects"]

MAX_STEPS = 20


class PipelineSpec(BaseModel):
    """Steps plus the output encoding. `format`/`quality` here win over any convert step."""

    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(default_factory=list, max_length=MAX_STEPS)
    format: OutputFormat | None = None
    quality: int | None = Field(None, ge=1, le=100)
    regions: list[Region] = Field(
        default_factory=list,
        max_length=MAX_REGIONS,
        description="regions of interest in the source's upright pixels: steps that place a "
        "window aim at them, steps that move pixels move them",
    )
    detect: list[DetectKind] = Field(
        default_factory=list,
        max_length=2,
        description="what the service looks for before the pipeline runs, in this order; the "
        "first kind found becomes regions (the URL API's smart: faces, then objects)",
    )
    frames: Literal["first", "all"] = Field(
        "first", description="an animated source: its first frame, or every frame (GIF, WebP)"
    )
    # Other images steps name (a watermark), as bytes, attached by whoever fetched them; not
    # part of the canonical text (the service keys the cache on their digests).
    _assets: dict[str, bytes] = PrivateAttr(default_factory=dict)

    @property
    def assets(self) -> Mapping[str, bytes]:
        return self._assets

    def with_assets(self, assets: Mapping[str, bytes]) -> PipelineSpec:
        spec = self.model_copy()
        spec._assets = dict(assets)
        return spec

    def asset_names(self) -> list[str]:
        """The other images this pipeline's steps need, in order, once each."""
        names = [step.image for step in self.steps if isinstance(step, WatermarkStep)]
        return list(dict.fromkeys(names))

    def findings(self) -> dict[str, bool]:
        """The detections (pipelines/focus.py keys) the steps need, in order, each once, and
        whether a step cannot do without it (a redaction must not run blind; a detection
        gravity falls back to smart)."""
        needed: dict[str, bool] = {}
        for step in self.steps:
            for key, required in getattr(step, "findings", list)():
                needed[key] = needed.get(key, False) or required
        return needed

    @property
    def needs_detection(self) -> bool:
        """Whether the service must run a detector before this pipeline (the URL's smart, a
        detection gravity, a redaction)."""
        return bool(self.detect) or bool(self.findings())

    def max_bytes(self) -> int | None:
        sizes = [step.bytes for step in self.steps if isinstance(step, MaxBytesStep)]
        return sizes[-1] if sizes else None

    def output(self, source_format: str) -> tuple[FormatName, int | None]:
        fmt: FormatName | None = self.format
        quality = self.quality
        for step in reversed(self.steps):
            if isinstance(step, ConvertStep):
                fmt = fmt or step.format
                quality = quality if quality is not None else step.quality
                break
        return fmt or default_format(source_format), quality

    def canonical_json(self) -> str:
        """Stable text of the spec (defaults filled in): a cache key ingredient."""
        return self.model_dump_json()


def first_error_field(exc: ValidationError) -> str | None:
    """The innermost named field of pydantic's first error ("steps.0.resize.width" -> "width")."""
    for error in exc.errors():
        names = [str(part) for part in error["loc"] if isinstance(part, str)]
        if names:
            return names[-1]
    return None


def invalid_parameter(exc: ValidationError) -> InvalidParameter:
    """pydantic's first error as our 422, with where it happened and the field's name."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in first["loc"])
    return InvalidParameter(
        f"{where}: {message}" if where else message, field=first_error_field(exc)
    )


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], raw: M | dict[str, Any] | None) -> M:
    """`raw` as a `model`, or InvalidParameter (422) naming the field: the one way input that
    FastAPI did not validate (a handle's parameters, a JSON body or form field read by hand) is
    checked. None means the model's defaults."""
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        raise invalid_parameter(exc) from None


def parse_pipeline(raw: PipelineSpec | dict[str, Any] | None) -> PipelineSpec:
    """A pipeline coming from another Ray app or a JSON body: `validated` as a PipelineSpec.
    None is no pipeline (an empty one is `{}`)."""
    if raw is None:
        raise InvalidParameter("a pipeline is required", field="pipeline")
    return validated(PipelineSpec, raw)
