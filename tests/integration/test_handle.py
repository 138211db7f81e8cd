"""Other Ray apps and driver scripts call the deployments through DeploymentHandles."""

from __future__ import annotations

import numpy as np
import pytest
from ray import serve

from pipelines.errors import BadImage, InvalidParameter
from pipelines.ops.resize import ResizeStep
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec
from tests.conftest import decode, encode, normalised, photo, text_image


def test_preprocessor_handle_with_a_dict_pipeline(driver: None, astronaut_jpeg: bytes) -> None:
    handle = serve.get_deployment_handle("Preprocessor", app_name="image-service")
    pipeline = {"steps": [{"op": "resize", "width": 100}], "format": "png"}
    result = handle.process.remote(astronaut_jpeg, pipeline).result(timeout_s=60)
    assert isinstance(result, ProcessedImage)
    assert (result.format, result.width, result.height) == ("png", 100, 100)
    assert decode(result.data).size == (100, 100)


def test_preprocessor_handle_with_a_spec_and_info(driver: None) -> None:
    handle = serve.get_deployment_handle("Preprocessor", app_name="image-service")
    source = encode(photo("coffee"), "PNG")
    spec = PipelineSpec(steps=[ResizeStep(width=60, height=60, mode="fill")], format="webp")
    result = handle.process.remote(source, spec).result(timeout_s=60)
    assert (result.media_type, result.width, result.height) == ("image/webp", 60, 60)
    info = handle.info.remote(source).result(timeout_s=60)
    assert (info["width"], info["height"], info["format"]) == (600, 400, "png")


def test_handle_errors_keep_their_type_and_status(driver: None, astronaut_jpeg: bytes) -> None:
    handle = serve.get_deployment_handle("Preprocessor", app_name="image-service")
    with pytest.raises(BadImage) as bad:
        handle.process.remote(bytes(range(256)) * 4, {"steps": []}).result(timeout_s=60)
    assert bad.value.status == 400
    with pytest.raises(InvalidParameter) as invalid:
        handle.process.remote(astronaut_jpeg, {"steps": [{"op": "resize"}]}).result(timeout_s=60)
    assert invalid.value.status == 422


def test_app_handle_reaches_the_ingress(driver: None) -> None:
    app = serve.get_app_handle("image-service")
    assert app.deployment_id.name == "Ingress"


def test_model_deployments_through_handles(driver: None) -> None:
    """Another Ray app can use the AI deployments directly, with plain arrays and dicts."""
    faces = serve.get_deployment_handle("FaceDetector", app_name="image-service")
    found = faces.detect.remote(np.asarray(photo("astronaut")), {"engine": "haar"})
    assert len(found.result(timeout_s=60).faces) == 1
    ocr = serve.get_deployment_handle("OcrReader", app_name="image-service")
    read = ocr.read.remote(np.asarray(text_image("handles work")), {"engine": "tesseract"})
    assert normalised(read.result(timeout_s=60).text) == "handles work"
    with pytest.raises(InvalidParameter):
        ocr.read.remote(np.asarray(text_image("x")), {"engine": "nope"}).result(timeout_s=60)
