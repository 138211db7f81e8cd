"""kuberay/README.md's scaling table is what serve_config.yaml implies, recomputed here with
Ray Serve's own schema (its defaults included), so the numbers cannot drift from the file."""

from __future__ import annotations

import math
from decimal import Decimal

import yaml
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import ServeDeploySchema

from tests.kuberay.conftest import KUBERAY_DIR, REPO_ROOT

README = (KUBERAY_DIR / "README.md").read_text()
DASH = "\u2013"  # the table writes ranges with an en dash


def _number(value: float | Decimal) -> str:
    return f"{Decimal(str(value)).normalize():f}"


def expected_rows() -> list[list[str]]:
    config = ServeDeploySchema.model_validate(
        yaml.safe_load((REPO_ROOT / "serve_config.yaml").read_text())
    )
    rows = []
    total_min = total_max = 0
    cpus_min = cpus_max = Decimal(0)
    for app in config.applications:
        for deployment in app.deployments:
            cpu = Decimal(str(deployment.ray_actor_options.num_cpus))
            if isinstance(deployment.num_replicas, int):  # a fixed count, no autoscaling
                low = high = deployment.num_replicas
                replicas, target, delays = str(low), DASH, DASH
            else:
                scaling = AutoscalingConfig(**deployment.autoscaling_config)
                low, high = scaling.min_replicas, scaling.max_replicas
                replicas = f"{low}{DASH}{high}"
                target = _number(scaling.target_ongoing_requests)
                delays = (
                    f"{_number(scaling.upscale_delay_s)} / {_number(scaling.downscale_delay_s)}"
                )
            total_min += low
            total_max += high
            cpus_min += cpu * low
            cpus_max += cpu * high
            rows.append(
                [
                    deployment.name,
                    replicas,
                    _number(cpu),
                    _number(cpu * low),
                    _number(cpu * high),
                    target,
                    str(deployment.max_ongoing_requests),
                    delays,
                ]
            )
    totals = [f"{total_min}{DASH}{total_max}", "", _number(cpus_min), _number(cpus_max)]
    rows.append(["total", *totals, "", "", ""])
    return rows


def readme_rows() -> list[list[str]]:
    section = README.split("## Scaling", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| deployment |"), "the scaling table is missing"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_scaling_table_is_what_serve_config_implies() -> None:
    assert readme_rows() == expected_rows()


def test_numbers_quoted_in_the_text_follow_from_the_table() -> None:
    rows = {row[0]: row for row in expected_rows()}
    total = rows["total"]
    assert f"reserve {total[3]} CPUs" in README  # at rest
    assert f"reserve {total[4]} CPUs" in README  # at full scale
    # Worker pods of the CPU group needed at rest and at full scale (CPU shares only).
    (service,) = [
        d
        for d in yaml.safe_load_all((KUBERAY_DIR / "rayservice.yaml").read_text())
        if d and d.get("kind") == "RayService"
    ]
    (group,) = [
        g
        for g in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
        if g["groupName"] == "cpu-workers"
    ]
    pod_cpus = Decimal(group["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    at_rest = math.ceil(Decimal(total[3]) / pod_cpus)
    at_max = math.ceil(Decimal(total[4]) / pod_cpus)
    assert at_rest == 1 and f"one `cpu-workers` pod ({_number(pod_cpus)} CPUs" in README
    assert at_max == 2 and f"two `cpu-workers` pods ({_number(at_max * pod_cpus)} CPUs)" in README
    # On a 2-core machine: the Preprocessor's ceiling with the others at their minimum.
    pre = rows["Preprocessor"]
    others = Decimal(total[3]) - Decimal(pre[3])
    fits = min(int((2 - others) / Decimal(pre[2])), int(pre[1].split(DASH)[1]))
    assert f"others at their minimum ({_number(others)} CPUs)" in README
    assert f"the Preprocessor reaches {fits} replicas" in README
