"""The pipeline of a batch task: image operations and AI steps in one list.

Image steps change the image; an AI step (detect_objects, ocr, detect_faces) reads the image as
the steps before it left it and adds a result, changing nothing. `plan()` cuts the list into
stages so each run of image steps is decoded and encoded once, as /process does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.detection import DetectParams
from pipelines.encode import OutputFormat
from pipelines.faces import FaceParams
from pipelines.ocr import OcrParams
from pipelines.spec import MAX_STEPS, ImageStep, PipelineSpec, Step


class DetectObjectsStep(DetectParams):
    model_config = ConfigDict(extra="forbid")
    op: Literal["detect_objects"] = "detect_objects"


class OcrStep(OcrParams):
    model_config = ConfigDict(extra="forbid")
    op: Literal["ocr"] = "ocr"


class DetectFacesStep(FaceParams):
    model_config = ConfigDict(extra="forbid")
    op: Literal["detect_faces"] = "detect_faces"


AiStep = DetectObjectsStep | OcrStep | DetectFacesStep
# Every image operation of a pipeline (pipelines/spec.py's ImageStep), plus the AI steps.
TaskStep = Annotated[ImageStep | AiStep, Field(discriminator="op")]


@dataclass
class Stage:
    """Image steps to run (possibly none), then AI steps on their output."""

    image: list[Step] = field(default_factory=list)
    ai: list[AiStep] = field(default_factory=list)


class TaskPipeline(BaseModel):
    """What every image of a batch goes through. `format`/`quality` encode the result image."""

    model_config = ConfigDict(extra="forbid")

    steps: list[TaskStep] = Field(min_length=1, max_length=MAX_STEPS)
    format: OutputFormat | None = None
    quality: int | None = Field(None, ge=1, le=100)

    def plan(self) -> list[Stage]:
        stages: list[Stage] = [Stage()]
        for step in self.steps:
            if isinstance(step, AiStep):
                stages[-1].ai.append(step)
            else:
                if stages[-1].ai:  # image work after an AI step starts a new stage
                    stages.append(Stage())
                stages[-1].image.append(step)
        return stages

    def image_spec(self, steps: list[Step]) -> PipelineSpec:
        return PipelineSpec(steps=steps, format=self.format, quality=self.quality)
