"""The Kubernetes manifests beside the RayService, checked offline:

- every object of a built-in kind (ConfigMap, Secret, Ingress, NetworkPolicy, and the RayService's
  pod templates as Pods) validates strictly against the Kubernetes OpenAPI schemas that the
  `kubernetes-validate` package ships (an unknown field is an error);
- the settings: the ConfigMap holds only settings the code reads and nothing secret, the Secret
  holds the rest as placeholders, both parse with the service's own Settings, every Ray pod
  reads both;
- the pieces agree: the Ingress routes to the Serve Service and port and lets uploads up to the
  limit through, the NetworkPolicy and PodMonitor select the Ray pods and name the ports they
  listen on, the GPU group really asks for GPUs, and kustomization.yaml lists every manifest.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kuberay.conftest import (
    KUBERAY_DIR,
    S3_CREDENTIAL_VARIABLES,
    SECRET_VARIABLES,
    kubernetes_documents,
    one,
    ray_groups,
    setting_variables,
)

# The oldest Kubernetes the manifests promise to work on, and the newest the package knows.
K8S_VERSIONS = ("1.29", "1.37")
KUBERAY_METRICS_PORT = 8080  # KubeRay's default --metrics-export-port and `metrics` port
DASHBOARD_PORT = 8265
PLACEHOLDER = "REPLACE_ME"
SECRET_EXAMPLE = "secret.example.yaml"


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        message = "kubernetes-validate is not installed (pyproject.toml's dev extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return kubernetes_validate


def _pods_of(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pods KubeRay makes from each group's template (before it adds its own parts)."""
    pods = {}
    name = service["metadata"]["name"]
    for group in ray_groups(service):
        group_name = group.get("groupName", "head")
        template = group["template"]
        metadata = {**template.get("metadata", {}), "name": f"{name}-{group_name}"}
        pods[f"RayService pod template {group_name}"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": template["spec"],
        }
    return pods


def _builtin_documents() -> dict[str, dict[str, Any]]:
    documents = {
        name: doc
        for name, doc in kubernetes_documents().items()
        if "." not in doc["apiVersion"].split("/")[0]
        or doc["apiVersion"].split("/")[0].endswith(".k8s.io")
    }
    documents.update(_pods_of(one("RayService")))
    return documents


BUILTIN = _builtin_documents()


def _service() -> dict[str, Any]:
    return one("RayService")


def _serve_port() -> int:
    config = yaml.safe_load(_service()["spec"]["serveConfigV2"])
    port: int = (config.get("http_options") or {}).get("port", 8000)
    return port


def _containers() -> list[dict[str, Any]]:
    return [c for g in ray_groups(_service()) for c in g["template"]["spec"]["containers"]]


def _labels_of_every_pod() -> list[dict[str, str]]:
    return [g["template"].get("metadata", {}).get("labels", {}) for g in ray_groups(_service())]


def _selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


# --- built-in kinds against the Kubernetes schemas ------------------------------------------


def test_the_folder_has_the_expected_objects() -> None:
    kinds = sorted(d["kind"] for d in BUILTIN.values())
    assert kinds == sorted(["ConfigMap", "Secret", "Ingress", "NetworkPolicy", "Pod", "Pod", "Pod"])


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_kind_validates_against_kubernetes(name: str, version: str) -> None:
    validator = _kubernetes_validate()
    try:
        validator.validate(BUILTIN[name], version, strict=True)
    except validator.ValidationError as error:
        path = ".".join(str(p) for p in error.path)
        pytest.fail(f"{name} against Kubernetes {version}: {path}: {error.message}")


def test_kubernetes_validation_catches_a_misspelt_field() -> None:
    validator = _kubernetes_validate()
    ingress = json.loads(json.dumps(one("Ingress")))
    ingress["spec"]["ingresClassName"] = ingress["spec"].pop("ingressClassName")
    with pytest.raises(validator.ValidationError, match="ingresClassName"):
        validator.validate(ingress, K8S_VERSIONS[-1], strict=True)
    pod = json.loads(json.dumps(next(iter(_pods_of(_service()).values()))))
    pod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["nmae"] = "typo"
    with pytest.raises(validator.ValidationError, match="nmae"):
        validator.validate(pod, K8S_VERSIONS[-1], strict=True)


# --- settings: ConfigMap and Secret -----------------------------------------------------------


def test_settings_the_code_reads_are_known() -> None:
    # The list in serve_app/settings.py's docstring, read from the classes themselves.
    assert {
        "DATA_DIR",
        "STORAGE_URL",
        "S3_ENDPOINT_URL",
        "DATABASE_URL",
        "LIMITS_MAX_UPLOAD_BYTES",
        "LIMITS_MAX_PIXELS",
        "LIMITS_MAX_SIDE",
        "LIMITS_MAX_FRAMES",
        "LIMITS_ALLOWED_FORMATS",
        "LIMITS_PIPELINE_TIMEOUT_S",
        "LIMITS_MAX_WORK",
        "MODELS_YOLO_WEIGHTS",
        "MODELS_OCR_ENGINE",
        "MODELS_FACE_ENGINE",
    } <= setting_variables()


def test_configmap_holds_only_settings_the_code_reads_and_no_secrets() -> None:
    data = one("ConfigMap")["data"]
    assert set(data) <= setting_variables(), set(data) - setting_variables()
    assert not set(data) & SECRET_VARIABLES
    for key, value in data.items():
        assert not re.search(r"PASSWORD|SECRET|TOKEN|CREDENTIAL", key), key
        assert not re.search(r"://[^/@\s]*:[^/@\s]*@", value), f"{key} carries credentials"


def test_secret_holds_secrets_only_as_placeholders() -> None:
    secret = one("Secret")
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert "data" not in secret, "use stringData: readable placeholders, no base64"
    assert set(values) <= setting_variables() | S3_CREDENTIAL_VARIABLES
    assert {"DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(values)
    for key, value in values.items():
        assert PLACEHOLDER in value, f"{key}: the example must hold a placeholder, not a value"
    assert not set(values) & set(one("ConfigMap")["data"])


def test_configmap_and_secret_parse_as_the_services_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serve_app.settings import Settings

    monkeypatch.chdir(tmp_path)  # no developer's .env
    for name in setting_variables() | S3_CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    environment = {**one("ConfigMap")["data"], **one("Secret")["stringData"]}
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.storage_url.startswith("s3://")
    assert settings.database_url.startswith("postgresql+psycopg://")
    data = one("ConfigMap")["data"]
    assert settings.limits.max_upload_bytes == int(data["LIMITS_MAX_UPLOAD_BYTES"])
    assert list(settings.limits.allowed_formats) == json.loads(data["LIMITS_ALLOWED_FORMATS"])


def test_every_ray_pod_reads_the_configmap_and_the_secret() -> None:
    configmap, secret = one("ConfigMap")["metadata"]["name"], one("Secret")["metadata"]["name"]
    for container in _containers():
        sources = container.get("envFrom", [])
        assert {"configMapRef": {"name": configmap}} in sources, container["name"]
        assert {"secretRef": {"name": secret}} in sources, container["name"]
        # Settings only through envFrom: no literal values that would bypass the two objects.
        assert not container.get("env"), container["name"]


# --- the RayService's groups ---------------------------------------------------------------


def test_head_runs_no_replicas_and_every_group_exports_metrics() -> None:
    cluster = _service()["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for group in ray_groups(_service()):
        port = int(group["rayStartParams"].get("metrics-export-port", KUBERAY_METRICS_PORT))
        assert port == KUBERAY_METRICS_PORT
        for container in group["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            assert ports.get("metrics") == port, container["name"]


def test_gpu_group_asks_for_gpus_and_tolerates_gpu_nodes() -> None:
    groups = _service()["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    gpu = [
        g
        for g in groups
        if any(
            "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
            for c in g["template"]["spec"]["containers"]
        )
    ]
    assert len(gpu) == 1, "expected one GPU worker group"
    group = gpu[0]
    assert group["minReplicas"] == 0 and group.get("replicas", 0) == 0
    assert group["maxReplicas"] >= 1
    tolerations = group["template"]["spec"].get("tolerations", [])
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
    for container in group["template"]["spec"]["containers"]:
        assert container["image"].endswith("-gpu")
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    cpu = [g for g in groups if g is not group]
    assert cpu and all(g["minReplicas"] >= 1 for g in cpu), "a CPU group keeps the app running"


# --- Ingress ---------------------------------------------------------------------------------


def _nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)", value.strip().lower())
    assert match, f"not an nginx size: {value}"
    return int(match[1]) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match[2]]


def test_ingress_terminates_tls_and_routes_to_the_serve_service() -> None:
    ingress = one("Ingress")
    serve_svc = f"{_service()['metadata']['name']}-serve-svc"
    tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    assert all(t.get("secretName") for t in ingress["spec"]["tls"])
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts, f"{rule['host']} is served without TLS"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == serve_svc
            assert backend["port"]["number"] == _serve_port()
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"


def test_ingress_lets_uploads_up_to_the_limit_through() -> None:
    from serve_app.ingress import MULTIPART_OVERHEAD

    annotations = one("Ingress")["metadata"]["annotations"]
    data = one("ConfigMap")["data"]
    body = _nginx_size(annotations["nginx.ingress.kubernetes.io/proxy-body-size"])
    assert body >= int(data["LIMITS_MAX_UPLOAD_BYTES"]) + MULTIPART_OVERHEAD
    # ...but not unboundedly more: the service's own 413 should be the usual answer.
    assert body <= 2 * int(data["LIMITS_MAX_UPLOAD_BYTES"])
    timeout = int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])
    assert timeout > float(data["LIMITS_PIPELINE_TIMEOUT_S"])


# --- NetworkPolicy -------------------------------------------------------------------------


def _rules_for(port: int) -> list[dict[str, Any]]:
    policy = one("NetworkPolicy")
    return [
        rule
        for rule in policy["spec"]["ingress"]
        if not rule.get("ports") or any(p.get("port") == port for p in rule["ports"])
    ]


def _same_namespace(peer: dict[str, Any]) -> bool:
    return "podSelector" in peer and "namespaceSelector" not in peer and "ipBlock" not in peer


def _in_namespace(peer: dict[str, Any], namespace: str, app: str) -> bool:
    namespace_labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
    pod_labels = peer.get("podSelector", {}).get("matchLabels", {})
    return (
        namespace_labels == {"kubernetes.io/metadata.name": namespace}
        and pod_labels.get("app.kubernetes.io/name") == app
    )


def test_network_policy_selects_every_ray_pod_and_allows_nothing_from_anywhere() -> None:
    policy = one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert all(_selects(selector, labels) for labels in _labels_of_every_pod())
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), "a rule without `from` admits every source"
        for peer in rule["from"]:
            assert "ipBlock" not in peer
            if "namespaceSelector" in peer:
                assert peer["namespaceSelector"].get("matchLabels"), "all namespaces admitted"
                assert peer.get("podSelector", {}).get("matchLabels"), "a whole namespace"
    # Ray's own traffic: any port, only from the cluster's pods.
    open_rules = [r for r in policy["spec"]["ingress"] if not r.get("ports")]
    assert len(open_rules) == 1
    (peer,) = open_rules[0]["from"]
    assert _same_namespace(peer) and peer["podSelector"]["matchLabels"] == selector


def test_serve_port_is_reached_only_from_the_ingress_controller_and_the_namespace() -> None:
    port = one("Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]
    assert port["number"] == _serve_port()
    peers = [p for r in _rules_for(_serve_port()) for p in r["from"]]
    assert any(_in_namespace(p, "ingress-nginx", "ingress-nginx") for p in peers)
    assert any(_same_namespace(p) and not p["podSelector"] for p in peers)
    for peer in peers:
        assert _same_namespace(peer) or _in_namespace(peer, "ingress-nginx", "ingress-nginx")


def test_dashboard_is_reached_only_from_the_namespace_and_the_kuberay_operator() -> None:
    (head,) = _service()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ]
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports["dashboard"] == DASHBOARD_PORT
    peers = [p for r in _rules_for(DASHBOARD_PORT) for p in r["from"]]
    assert any(_same_namespace(p) and not p["podSelector"] for p in peers)
    for peer in peers:
        assert _same_namespace(peer) or _in_namespace(peer, "kuberay-system", "kuberay-operator")


def test_metrics_port_is_open_to_prometheus() -> None:
    peers = [p for r in _rules_for(KUBERAY_METRICS_PORT) for p in r["from"]]
    assert any(_in_namespace(p, "monitoring", "prometheus") for p in peers)


# --- PodMonitor ------------------------------------------------------------------------------

# The PodMonitor fields used here (monitoring.coreos.com/v1); a misspelt one would be dropped
# silently by the API server. The Prometheus Operator's CRD is not available offline.
PODMONITOR_SPEC_FIELDS = {"jobLabel", "selector", "podMetricsEndpoints", "namespaceSelector"}
PODMONITOR_ENDPOINT_FIELDS = {
    "port",
    "path",
    "interval",
    "scrapeTimeout",
    "relabelings",
    "metricRelabelings",
    "scheme",
    "honorLabels",
}


def test_podmonitor_scrapes_the_metrics_port_of_every_ray_pod() -> None:
    monitor = one("PodMonitor", api_version="monitoring.coreos.com/v1")
    spec = monitor["spec"]
    assert set(spec) <= PODMONITOR_SPEC_FIELDS, set(spec) - PODMONITOR_SPEC_FIELDS
    selector = spec["selector"]["matchLabels"]
    assert all(_selects(selector, labels) for labels in _labels_of_every_pod())
    assert selector == one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"]
    endpoints = spec["podMetricsEndpoints"]
    assert endpoints
    for endpoint in endpoints:
        assert set(endpoint) <= PODMONITOR_ENDPOINT_FIELDS, set(endpoint)
        for container in _containers():
            names = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            assert names.get(endpoint["port"]) == KUBERAY_METRICS_PORT, container["name"]
        assert endpoint.get("path", "/metrics") == "/metrics"


# --- kustomization.yaml ------------------------------------------------------------------------


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((KUBERAY_DIR / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert all((KUBERAY_DIR / r).is_file() for r in resources)
    manifests = {name.split("#")[0] for name in kubernetes_documents()}
    assert set(resources) == manifests - {SECRET_EXAMPLE}
    assert SECRET_EXAMPLE in manifests
    (generator,) = kustomization["configMapGenerator"]
    dashboards = sorted(f"grafana/{p.name}" for p in (KUBERAY_DIR / "grafana").glob("*.json"))
    assert sorted(generator["files"]) == dashboards
    assert generator["options"]["labels"]["grafana_dashboard"] == "1"
