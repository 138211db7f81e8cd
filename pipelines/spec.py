"""The pipeline is data: a validated list of steps, run in order (imgproxy's mainPipeline).

A step's parameters are declared next to its operation (pipelines/ops/<family>.py) and parsed
here, before anything runs. Adding an operation: a step model and an `apply` in a new module,
plus one entry in `Step` below.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.encode import FormatName, OutputFormat, default_format
from pipelines.errors import InvalidParameter
from pipelines.ops.convert import ConvertStep
from pipelines.ops.crop import CropStep
from pipelines.ops.enhance import EnhanceStep
from pipelines.ops.filters import FilterStep
from pipelines.ops.resize import ResizeStep

Step = Annotated[
    ResizeStep | CropStep | FilterStep | EnhanceStep | ConvertStep,
    Field(discriminator="op"),
]

MAX_STEPS = 20


class PipelineSpec(BaseModel):
    """Steps plus the output encoding. `format`/`quality` here win over any convert step."""

    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(default_factory=list, max_length=MAX_STEPS)
    format: OutputFormat | None = None
    quality: int | None = Field(None, ge=1, le=100)

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
