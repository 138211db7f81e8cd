"""Other Ray apps and driver scripts call the Preprocessor through a DeploymentHandle."""

from __future__ import annotations

import pytest
from ray import serve

from pipelines.errors import BadImage, InvalidParameter
from pipelines.ops.resize import ResizeStep
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec
from tests.conftest import decode, encode, photo


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
