"""kuberay/compose.yaml (the local full stack) agrees with the code, the Dockerfile and its
Prometheus and Grafana configuration. Docker does not run here: this reads the files.

- the service is built from the repository's Dockerfile and publishes the Serve port of
  serve_config.yaml; every published port is bound to 127.0.0.1;
- its environment holds only settings the code reads (plus the S3 credentials botocore reads),
  parses with the service's Settings, and points at the stack's PostgreSQL and MinIO with the
  credentials those are started with;
- Prometheus scrapes the service on the metrics port the Dockerfile gives Ray; Grafana gets
  that Prometheus as its data source and every dashboard of kuberay/grafana/.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.kuberay.conftest import (
    KUBERAY_DIR,
    REPO_ROOT,
    S3_CREDENTIAL_VARIABLES,
    setting_variables,
)

COMPOSE = yaml.safe_load((KUBERAY_DIR / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP = "image-service"
EXPECTED_SERVICES = {APP, "postgres", "redis", "minio", "prometheus", "grafana"}
PROMETHEUS_PORT = 9090  # Prometheus's own listen port (no --web.listen-address below)


def interpolate(value: str) -> str:
    """Compose's ${NAME:-default} / ${NAME-default} with nothing set: the defaults."""
    value = re.sub(r"\$\{(\w+):?-([^}]*)\}", r"\2", value)
    assert "${" not in value, f"variable without a default: {value}"
    return value.replace("$$", "$")


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), "write environment as a mapping"
    return {key: interpolate(str(value)) for key, value in env.items()}


def published(service: str) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port)."""
    ports = {}
    for entry in SERVICES[service].get("ports", []):
        parts = str(entry).split(":")
        assert len(parts) == 3, f"{service}: publish as HOST_IP:HOST_PORT:CONTAINER_PORT"
        ports[int(parts[2])] = (parts[0], int(parts[1]))
    return ports


def exposed(service: str) -> set[int]:
    return {int(p) for p in SERVICES[service].get("expose", [])} | set(published(service))


def volume_source(service: str, target: str) -> Path:
    for volume in SERVICES[service].get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == target:
            assert source.startswith("."), f"{target} is not a bind mount of the repository"
            return (KUBERAY_DIR / source).resolve()
    raise AssertionError(f"{service} mounts nothing at {target}")


def dockerfile_cmd() -> list[str]:
    text = (REPO_ROOT / "Dockerfile").read_text()
    match = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the Dockerfile has no exec-form CMD"
    command: list[str] = yaml.safe_load(match.group(1))
    return command


def metrics_export_port() -> int:
    """The port the image's `ray start` exports metrics on (the compose file keeps the CMD)."""
    assert "command" not in SERVICES[APP] and "entrypoint" not in SERVICES[APP]
    flags = [w for w in shlex.split(" ".join(dockerfile_cmd())) if "--metrics-export-port" in w]
    assert len(flags) == 1, "the Dockerfile's `ray start` must fix --metrics-export-port"
    return int(flags[0].split("=", 1)[1])


def serve_port() -> int:
    config = yaml.safe_load((REPO_ROOT / "serve_config.yaml").read_text())
    port: int = config["http_options"]["port"]
    return port


def test_the_stack_has_every_service() -> None:
    assert set(SERVICES) >= EXPECTED_SERVICES


def test_service_is_built_from_the_repository_dockerfile() -> None:
    build = SERVICES[APP]["build"]
    context = (KUBERAY_DIR / build["context"]).resolve()
    assert context == REPO_ROOT
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    name = re.search(r'^name = "(.+)"$', pyproject, re.MULTILINE)
    version = re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE)
    assert name and version
    assert SERVICES[APP]["image"] == f"{name[1]}:{version[1]}"


def test_published_ports_are_local_and_do_not_collide() -> None:
    hosts = []
    for service in SERVICES:
        for address, host_port in published(service).values():
            assert address == "127.0.0.1", f"{service} is published beyond this machine"
            hosts.append(host_port)
    assert len(hosts) == len(set(hosts))
    assert 6379 not in hosts, "6379 is the machine's own Redis"


def test_service_publishes_the_serve_port_and_exposes_metrics() -> None:
    ports = published(APP)
    assert ports[serve_port()] == ("127.0.0.1", serve_port())
    assert metrics_export_port() in exposed(APP)
    assert 8265 in ports  # the Ray dashboard, on localhost only (checked above)


def test_service_environment_is_settings_the_code_reads() -> None:
    env = environment(APP)
    allowed = setting_variables() | S3_CREDENTIAL_VARIABLES
    assert set(env) <= allowed, set(env) - allowed
    assert {"DATABASE_URL", "STORAGE_URL", "S3_ENDPOINT_URL"} <= set(env)


def test_service_environment_parses_as_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serve_app.settings import Settings

    monkeypatch.chdir(tmp_path)  # no developer's .env
    for name in setting_variables() | S3_CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for key, value in environment(APP).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.storage_url.startswith("s3://")
    assert settings.storage.s3_endpoint_url


def test_database_url_points_at_the_stacks_postgres() -> None:
    url = urlsplit(environment(APP)["DATABASE_URL"])
    postgres = environment("postgres")
    assert url.scheme == "postgresql"
    assert url.hostname == "postgres" and (url.port or 5432) in exposed("postgres")
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert SERVICES[APP]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_storage_points_at_the_stacks_minio_and_its_bucket_exists() -> None:
    env, minio = environment(APP), environment("minio")
    endpoint = urlsplit(env["S3_ENDPOINT_URL"])
    assert endpoint.hostname == "minio" and endpoint.port in exposed("minio")
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    bucket = urlsplit(env["STORAGE_URL"]).netloc
    init = SERVICES["minio-init"]
    script = " ".join(init["command"])
    assert re.search(rf"mc mb --ignore-existing \w+/{re.escape(bucket)}\b", script)
    assert "http://minio:9000" in script
    assert SERVICES[APP]["depends_on"]["minio-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_prometheus_scrapes_the_services_metrics_port() -> None:
    config_path = volume_source("prometheus", "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load(config_path.read_text())
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert f"{APP}:{metrics_export_port()}" in targets
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in SERVICES and int(port) in exposed(host), target
    assert published("prometheus")[PROMETHEUS_PORT][1] == PROMETHEUS_PORT


def test_grafana_gets_prometheus_and_every_dashboard() -> None:
    provisioning = volume_source("grafana", "/etc/grafana/provisioning")
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert url.hostname == "prometheus" and url.port == PROMETHEUS_PORT
    providers = yaml.safe_load((provisioning / "dashboards" / "image-service.yaml").read_text())
    (provider,) = providers["providers"]
    mounted = volume_source("grafana", provider["options"]["path"])
    assert mounted == KUBERAY_DIR / "grafana"
    assert sorted(mounted.glob("*.json")), "no dashboards where Grafana looks"
