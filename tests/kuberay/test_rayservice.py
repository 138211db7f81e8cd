"""The deployment artefacts agree with the code and with each other, checked offline:

- every ray.io document in kuberay/*.yaml validates against the KubeRay CRDs (strictly: an
  unknown field is an error, as in KubeRay's own CI);
- the RayService's serveConfigV2 is what kuberay/sync_serve_config.py generates from
  serve_config.yaml, Ray Serve accepts it, and it configures deployments the app really has;
- the Dockerfile and the manifest use the Ray, Python, image name and system packages the
  project declares.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from packaging.specifiers import SpecifierSet
from ray.serve import Application
from ray.serve._private.build_app import build_app
from ray.serve.schema import ServeDeploySchema

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERAY_DIR = REPO_ROOT / "kuberay"
SERVE_CONFIG = REPO_ROOT / "serve_config.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
MAKEFILE = REPO_ROOT / "Makefile"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
IMPORT_PATH = "serve_app.app:app"


def _load_generator() -> ModuleType:
    """kuberay/ is a folder of artefacts, not a package: load the script by path."""
    path = KUBERAY_DIR / "sync_serve_config.py"
    spec = importlib.util.spec_from_file_location("kuberay_sync_serve_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


def _ray_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(KUBERAY_DIR.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("ray.io/"):
                yield f"{path.name}#{index}:{doc['kind']}", doc


RAY_DOCUMENTS = dict(_ray_documents())


def _rayservice() -> dict[str, Any]:
    services = [d for d in RAY_DOCUMENTS.values() if d["kind"] == "RayService"]
    assert len(services) == 1, "expected one RayService in kuberay/*.yaml"
    return services[0]


def _embedded_serve_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_rayservice()["spec"]["serveConfigV2"])
    return config


def _containers(service: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


# --- (a) the manifests against the CRDs ------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields forbidden wherever it lists the known ones (the API
    server would silently prune them; a typo there is a setting that never takes effect)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


@pytest.fixture(scope="module")
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema, from the KubeRay CRDs."""
    default = REPO_ROOT.parent / "shared" / "kuberay-crds"
    crd_dir = Path(os.environ.get("KUBERAY_CRD_DIR", str(default)))
    if not crd_dir.is_dir():
        message = f"KubeRay CRDs not found at {crd_dir} (set KUBERAY_CRD_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    assert schemas, f"no CustomResourceDefinitions in {crd_dir}"
    return schemas


def _schema_errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in errors]


def test_kuberay_folder_has_a_rayservice() -> None:
    assert _rayservice()["apiVersion"] == "ray.io/v1"


@pytest.mark.parametrize("name", sorted(RAY_DOCUMENTS))
def test_manifest_matches_crd(name: str, crd_schemas: dict[tuple[str, str], Any]) -> None:
    doc = RAY_DOCUMENTS[name]
    key = (doc["apiVersion"], doc["kind"])
    assert key in crd_schemas, f"{name}: no CRD for {key}; known: {sorted(crd_schemas)}"
    assert _schema_errors(crd_schemas[key], doc) == []
    # KubeRay's own rule for the name (it becomes a prefix of Service and pod names).
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


def test_crd_validation_catches_a_misspelt_field(crd_schemas: dict[tuple[str, str], Any]) -> None:
    doc = copy.deepcopy(_rayservice())
    cluster = doc["spec"]["rayClusterConfig"]
    cluster["enableInTreeAutoscalling"] = cluster.pop("enableInTreeAutoscaling")
    cluster["workerGroupSpecs"][0]["maxReplicas"] = "four"
    errors = _schema_errors(crd_schemas[(doc["apiVersion"], doc["kind"])], doc)
    assert any("enableInTreeAutoscalling" in e for e in errors), errors
    assert any("maxReplicas" in e for e in errors), errors


# --- (b) serveConfigV2 is generated from serve_config.yaml -----------------------------------


def test_serve_config_v2_is_generated_from_serve_config() -> None:
    expected = generator.render_serve_config_v2(SERVE_CONFIG.read_text())
    assert _rayservice()["spec"]["serveConfigV2"] == expected, (
        "kuberay/rayservice.yaml is out of date: run `python kuberay/sync_serve_config.py`"
    )
    current, regenerated = generator.sync()
    assert current == regenerated


def test_generator_changes_only_what_kuberay_needs() -> None:
    local = yaml.safe_load(SERVE_CONFIG.read_text())
    pod = _embedded_serve_config()
    assert pod["http_options"]["host"] == "0.0.0.0"
    assert "target_capacity" not in pod
    local.pop("target_capacity", None)
    local["http_options"] = {**(local.get("http_options") or {}), "host": "0.0.0.0"}
    assert pod == local


def test_generator_rewrites_a_stale_block(tmp_path: Path) -> None:
    manifest = tmp_path / "rayservice.yaml"
    current = (KUBERAY_DIR / "rayservice.yaml").read_text()
    header = generator.HEADER.rstrip("\n")
    stale = current.replace(header, header + "\n    stale_field: 1", 1)
    assert stale != current
    manifest.write_text(stale)
    assert generator.main(["--check", "--manifest", str(manifest)]) == 1
    assert manifest.read_text() == stale
    assert generator.main(["--manifest", str(manifest)]) == 0
    assert manifest.read_text() == current
    assert generator.main(["--check", "--manifest", str(manifest)]) == 0


# --- (c) the embedded config is valid for Ray Serve and matches the code ---------------------


def _app_deployment_names(import_path: str, app_name: str) -> set[str]:
    module_name, _, attr = import_path.partition(":")
    app = getattr(importlib.import_module(module_name), attr)
    assert isinstance(app, Application), f"{import_path} is not a bound Serve Application"
    # Serve's own builder: walks the bound graph the way a deploy does (no cluster needed).
    return {d.name for d in build_app(app, name=app_name).deployments}


def test_embedded_serve_config_is_valid_and_matches_the_code() -> None:
    schema = ServeDeploySchema.model_validate(_embedded_serve_config())
    assert schema.applications
    for app in schema.applications:
        assert app.import_path == IMPORT_PATH
        in_code = _app_deployment_names(app.import_path, app.name)
        configured = {d.name for d in app.deployments}
        assert configured <= in_code, (
            f"{app.name}: not deployments of the app: {configured - in_code}"
        )


def test_serve_port_matches_the_pods() -> None:
    port = ServeDeploySchema.model_validate(_embedded_serve_config()).http_options.port
    for container in _containers(_rayservice()):
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert ports.get("serve", 8000) == port, container["name"]


# --- the image: Dockerfile and manifest agree with the project -------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        current += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
            current = ""
    return instructions


def _base_image() -> str:
    args: dict[str, str] = {}
    for keyword, rest in _dockerfile_instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip().strip("\"'")
        elif keyword == "FROM":
            image = next(t for t in rest.split() if not t.startswith("--"))
            return re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], image)
    raise AssertionError("no FROM in the Dockerfile")


def test_dockerfile_uses_the_installed_ray_and_a_supported_python() -> None:
    match = re.fullmatch(
        r"rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<major>3)(?P<minor>\d+)(-[\w.]+)?",
        _base_image(),
    )
    assert match, f"not an official Ray image tag: {_base_image()}"
    assert match["ray"] == ray.__version__
    pins = [d for d in PYPROJECT["project"]["dependencies"] if re.match(r"ray\[", d)]
    assert pins == [f"ray[serve]=={ray.__version__}"]
    python = f"{match['major']}.{match['minor']}"
    assert python in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_dockerfile_installs_the_system_packages_and_packages() -> None:
    makefile = re.search(r"^SYSTEM_PACKAGES\s*:?=(.*)$", MAKEFILE.read_text(), re.MULTILINE)
    assert makefile
    instructions = _dockerfile_instructions()
    apt = " ".join(a for k, a in instructions if k == "RUN" and "apt-get install" in a)
    assert set(makefile.group(1).split()) <= set(apt.split())
    copied = " ".join(a for k, a in instructions if k == "COPY").split()
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*.") in copied, f"the Dockerfile does not COPY {pattern}"
    assert "serve_config.yaml" in copied


def test_dockerfile_runs_the_fast_ingress_that_make_run_starts() -> None:
    """The image (hence every KubeRay pod) sets the same Serve switches as `make run`; only the
    HAProxy ports, which `make run` picks per cluster, are left to their defaults."""
    from serve_app.cli.local import SERVE_ENV, Ports, fast_ingress_env

    env: dict[str, str] = {}
    for keyword, rest in _dockerfile_instructions():
        if keyword == "ENV":
            env |= dict(re.findall(r"(\w+)=(\S+)", rest))
    wanted = {
        k: v for k, v in fast_ingress_env(Ports()).items() if not k.endswith(("_PORT", "_NBTHREAD"))
    } | SERVE_ENV
    assert wanted and wanted.items() <= env.items()


def test_manifest_uses_the_project_image_and_ray() -> None:
    service = _rayservice()
    assert service["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__
    image = f"{PYPROJECT['project']['name']}:{PYPROJECT['project']['version']}"
    # Containers that ask for a GPU run the CUDA build of the same Dockerfile (tag suffix -gpu).
    for container in _containers(service):
        gpu = "nvidia.com/gpu" in container.get("resources", {}).get("limits", {})
        assert container["image"] == (f"{image}-gpu" if gpu else image), container["name"]
