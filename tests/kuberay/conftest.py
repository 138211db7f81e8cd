"""What the tests of kuberay/ share: the manifests as documents, and the names of the
environment variables the service reads (from serve_app/settings.py itself, never a copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERAY_DIR = REPO_ROOT / "kuberay"

# Read by botocore (through s3fs) for STORAGE_URL=s3://..., not by our Settings.
S3_CREDENTIAL_VARIABLES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"}
)
# Values that must only ever come from a Secret.
SECRET_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "URL_SIGNING_KEYS",
        "TASKS_CALLBACK_KEY",
    }
)


def setting_variables() -> frozenset[str]:
    """Every environment variable serve_app.settings.Settings reads (nested groups included)."""
    from serve_app.settings import Settings

    names: set[str] = set()

    def walk(cls: type[BaseSettings]) -> None:
        prefix = str(cls.model_config.get("env_prefix") or "")
        for name, field in cls.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
                walk(annotation)
                continue
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(c.upper() for c in alias.choices if isinstance(c, str))
            elif isinstance(alias, str):
                names.add(alias.upper())
            else:
                names.add(f"{prefix}{name}".upper())

    walk(Settings)
    return frozenset(names)


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def kubernetes_documents() -> dict[str, dict[str, Any]]:
    """ "file#index:Kind" -> document, for every Kubernetes object in kuberay/*.yaml."""
    documents = {}
    for path in sorted(KUBERAY_DIR.glob("*.yaml")):
        for index, doc in enumerate(load_documents(path)):
            if "apiVersion" in doc and "kind" in doc and doc["kind"] != "Kustomization":
                documents[f"{path.name}#{index}:{doc['kind']}"] = doc
    return documents


def one(kind: str, *, api_version: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in kubernetes_documents().values()
        if d["kind"] == kind and (api_version is None or d["apiVersion"] == api_version)
    ]
    assert len(found) == 1, f"expected one {kind} in kuberay/*.yaml, found {len(found)}"
    return found[0]


def ray_groups(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The head group and every worker group of a RayService."""
    cluster = service["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
