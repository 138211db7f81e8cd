"""Every entry of the hostile catalogue (tests/fixtures/hostile) POSTed to the live service,
as the file an upload, an image operation and an AI route would get. A refusal is the
catalogue's 4xx with the shared JSON error shape and code; an accepted file gives the correct
result; never a 5xx, always fast, and afterwards the service is ready and no replica has been
replaced (a crash or an OOM kill would show as a new replica)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from pipelines.decode import open_image
from pipelines.limits import Limits
from serve_app.cli.local import dashboard_get
from tests.fixtures.hostile import CATALOGUE, Hostile
from tests.integration.conftest import Service

pytestmark = pytest.mark.serve

API = "/api/v1"
TIME_BOUND_S = 15.0  # per request, on a loaded 2-core machine; a bomb would take minutes
WATCHED = ("Preprocessor", "FaceDetector")  # the deployments that decode what we send
AI_ROUTE, AI_FOUND = "/detect-faces", "faces"  # an AI route: decoded once, then the model


def _replicas(service: Service) -> dict[str, set[str]]:
    """Replica ids (any state) of the deployments that decode uploads, from the dashboard."""
    url = f"{service.cluster.dashboard_url}/api/serve/applications/"
    with dashboard_get(url, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    found: dict[str, set[str]] = {}
    for app in (body.get("applications") or {}).values():
        for name, deployment in (app.get("deployments") or {}).items():
            if name in WATCHED:
                found[name] = {r["replica_id"] for r in deployment["replicas"]}
    return found


@pytest.fixture(scope="module")
def replicas_before(service: Service, client: httpx.Client) -> dict[str, set[str]]:
    assert client.get("/health/ready").status_code == 200
    before = _replicas(service)
    assert set(before) == set(WATCHED) and all(before.values()), before
    return before


def _post(client: httpx.Client, path: str, entry: Hostile, **fields: object) -> httpx.Response:
    files = {"file": (entry.filename, entry.data, entry.content_type)}
    started = time.monotonic()
    response = client.post(f"{API}{path}", files=files, data={k: str(v) for k, v in fields.items()})
    elapsed = time.monotonic() - started
    assert elapsed < TIME_BOUND_S, f"{entry.name} on {path} took {elapsed:.1f}s"
    assert response.status_code < 500, (entry.name, path, response.status_code, response.text)
    return response


def _assert_refused(response: httpx.Response, entry: Hostile, path: str) -> None:
    assert response.status_code == entry.status, (entry.name, path, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["code"] == entry.code, (entry.name, path, error)
    assert error["message"]


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda entry: entry.name)
def test_hostile_file_over_http(
    client: httpx.Client, replicas_before: dict[str, set[str]], entry: Hostile
) -> None:
    if not entry.ok:
        for path in ("/resize", "/upload", AI_ROUTE):
            fields = {"width": 64} if path == "/resize" else {}
            _assert_refused(_post(client, path, entry, **fields), entry, path)
    else:
        assert entry.size is not None and entry.check is not None
        width, height = entry.size
        truth = open_image(entry.data, Limits()).format.lower()  # the bytes decide, not names

        # Full size, lossless: the catalogue's pixel check (upright, colours, no metadata).
        response = _post(client, "/resize", entry, width=width, format="png")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.headers["x-source-format"] == truth
        img = Image.open(io.BytesIO(response.content))
        img.load()
        assert img.size == entry.size
        entry.check(img)

        response = _post(client, "/upload", entry)
        assert response.status_code == 201, response.text
        stored = response.json()
        assert (stored["width"], stored["height"], stored["format"]) == (width, height, truth)

        response = _post(client, AI_ROUTE, entry)
        assert response.status_code == 200, response.text
        found = response.json()
        assert (found["width"], found["height"]) == entry.size  # upright, as decoded
        assert isinstance(found[AI_FOUND], list)
    assert client.get("/health/ready").status_code == 200


def test_no_replica_died_on_the_catalogue(
    service: Service, client: httpx.Client, replicas_before: dict[str, set[str]]
) -> None:
    """Runs after the catalogue (file order). A replica that crashed or was OOM-killed is
    replaced by one with a new id; sequential requests never make the autoscaler add one (it
    may still retire one that earlier tests added)."""
    assert client.get("/health/ready").status_code == 200
    after = _replicas(service)
    for name in WATCHED:
        assert after[name], f"no {name} replica left"
        assert after[name] <= replicas_before[name], f"{name} replicas were replaced: {after}"
