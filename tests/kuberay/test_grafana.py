"""The Grafana dashboards (kuberay/grafana/*.json) parse, are well formed, and use only metrics
that the installed Ray really exports.

Every metric name in a PromQL expression is resolved against the metric definitions in Ray
Serve's own source (the `Counter`/`Gauge`/`Histogram` constructors under ray/serve/, read with
`ast`): `ray_<name>` must be defined there, with the suffix Prometheus gives its type
(`_total` for a counter, `_bucket`/`_sum`/`_count` for a histogram, none for a gauge).
A renamed metric in a Ray upgrade fails here instead of leaving an empty panel.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.kuberay.conftest import KUBERAY_DIR

GRAFANA_DIR = KUBERAY_DIR / "grafana"
DASHBOARDS = sorted(GRAFANA_DIR.glob("*.json"))
SUFFIXES = {"Counter": ("_total",), "Histogram": ("_bucket", "_sum", "_count"), "Gauge": ("",)}
# PromQL words that look like identifiers but are not metrics.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
PLACEHOLDER_ISSUE = "issue 5"


@cache
def ray_serve_metrics() -> tuple[tuple[re.Pattern[str], str], ...]:
    """(name pattern, metric type) for every metric Ray Serve's source defines.

    f-string names (`f"serve_num_{protocol_name}_requests"`) become patterns."""
    root = Path(ray.__file__).parent / "serve"
    found: list[tuple[re.Pattern[str], str]] = []
    for path in root.rglob("*.py"):
        if "tests" in path.relative_to(root).parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if kind not in SUFFIXES:
                continue
            name_node = node.args[0] if node.args else None
            for keyword in node.keywords:
                if keyword.arg == "name":
                    name_node = keyword.value
            pattern = _name_pattern(name_node)
            if pattern:
                found.append((re.compile(pattern), kind))
    return tuple(found)


def _name_pattern(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = [
            re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z0-9]+" for v in node.values
        ]
        return "".join(parts)
    return None


def resolve(exported: str) -> str | None:
    """The Ray metric type of an exported name such as ray_serve_num_http_requests_total."""
    if not exported.startswith("ray_"):
        return None
    base = exported.removeprefix("ray_")
    for pattern, kind in ray_serve_metrics():
        for suffix in SUFFIXES[kind]:
            if suffix and not base.endswith(suffix):
                continue
            name = base[: len(base) - len(suffix)] if suffix else base
            if pattern.fullmatch(name):
                return kind
    return None


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (not labels, functions, strings or durations)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_matchers = re.sub(r"\{[^}]*\}", "{}", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "[]", without_matchers)
    without_groupings = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings):
        word = match.group(0)
        following = without_groupings[match.end() :].lstrip()
        if following.startswith("(") or word in PROMQL_WORDS or word.startswith("$"):
            continue  # a function, an aggregation or a keyword
        names.add(word)
    return names


def _load(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", text))
    return exprs


def test_there_are_dashboards() -> None:
    assert len(DASHBOARDS) >= 2


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["uid"] == path.stem and dashboard["title"]
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            for used in re.findall(r"\$(\w+)", target["expr"]):
                assert used in variables or used.startswith("__"), f"${used} is not defined"


def test_dashboard_uids_are_unique() -> None:
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_is_one_ray_exports(path: Path) -> None:
    expressions = _expressions(_load(path))
    assert expressions
    for expr in expressions:
        names = metric_names(expr)
        assert names, f"no metric in {expr}"
        for name in names:
            assert resolve(name), f"{path.name}: Ray {ray.__version__} exports no {name}"


def test_the_check_knows_what_ray_exports() -> None:
    assert resolve("ray_serve_num_http_requests_total") == "Counter"
    assert resolve("ray_serve_num_grpc_requests_total") == "Counter"
    assert resolve("ray_serve_http_request_latency_ms_bucket") == "Histogram"
    assert resolve("ray_serve_deployment_queued_queries") == "Gauge"
    assert resolve("ray_serve_actual_batch_size_bucket") == "Histogram"
    # Wrong suffix for the type, wrong prefix, a name Ray 2.60 does not define:
    assert resolve("ray_serve_num_http_requests") is None
    assert resolve("ray_serve_deployment_queued_queries_total") is None
    assert resolve("serve_num_http_requests_total") is None
    assert resolve("ray_serve_batch_size_bucket") is None
    expr = (
        "histogram_quantile(0.99, sum by (route, le) "
        '(rate(ray_serve_http_request_latency_ms_bucket{route=~"$route"}[5m])))'
    )
    assert metric_names(expr) == {"ray_serve_http_request_latency_ms_bucket"}


def test_dashboards_cover_requests_latency_errors_queues_replicas_and_batching() -> None:
    used = {n for p in DASHBOARDS for e in _expressions(_load(p)) for n in metric_names(e)}
    assert {
        "ray_serve_num_http_requests_total",
        "ray_serve_http_request_latency_ms_bucket",
        "ray_serve_num_http_error_requests_total",
        "ray_serve_num_ongoing_http_requests",
        "ray_serve_deployment_processing_latency_ms_bucket",
        "ray_serve_replica_processing_queries",
        "ray_serve_deployment_queued_queries",
        "ray_serve_deployment_replica_healthy",
        "ray_serve_autoscaling_target_replicas",
        "ray_serve_actual_batch_size_bucket",
        "ray_serve_batch_wait_time_ms_bucket",
    } <= used


def test_own_metrics_have_an_empty_placeholder_row() -> None:
    """Our own metrics come with issue 5: until then a row marks the place, with no panel
    (and so no metric name the code does not export)."""
    rows = [
        p
        for path in DASHBOARDS
        for p in _load(path)["panels"]
        if p["type"] == "row" and PLACEHOLDER_ISSUE in p["title"]
    ]
    assert len(rows) == 1
    assert rows[0]["panels"] == [] and rows[0]["collapsed"] is True
    used = {n for p in DASHBOARDS for e in _expressions(_load(p)) for n in metric_names(e)}
    assert all(n.startswith("ray_serve_") for n in used), "only Serve's built-in metrics so far"
