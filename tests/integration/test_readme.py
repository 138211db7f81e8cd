"""The README's examples are code: every `shell` and `python` block runs against the service."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from serve_app.settings import PROJECT_ROOT
from tests.conftest import encode, photo
from tests.integration.conftest import Service

README = (PROJECT_ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    (folder / "photo.jpg").write_bytes(encode(photo("astronaut"), "JPEG", quality=90))
    return folder


def size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def test_readme_opens_with_the_two_commands() -> None:
    first_block = blocks("bash")[0]
    assert first_block.splitlines()[0].startswith("make run")
    assert first_block.splitlines()[1].startswith("make test")
    assert README.index("```bash") < README.index("\n## ")


def test_readme_curl_examples(service: Service, workdir: Path) -> None:
    examples = blocks("shell")
    assert len(examples) >= 5
    for script in examples:
        script = script.replace("http://localhost:8000", service.base_url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{script}\n--- stderr:\n{done.stderr}"
    assert size(workdir / "thumb.jpg") == (300, 300)
    assert size(workdir / "square.webp") == (200, 200)
    assert size(workdir / "wide.jpg") == (512, 288)
    for name in ("sharp.jpg", "bright.jpg", "photo.png"):
        assert size(workdir / name) == (512, 512)
    stored = json.loads((workdir / "stored.json").read_text())
    assert (stored["format"], stored["width"], stored["height"]) == ("webp", 400, 300)
    info = json.loads((workdir / "info.json").read_text())
    assert (info["width"], info["height"], info["format"]) == (512, 512, "jpeg")
    assert (workdir / "original.jpg").read_bytes() == (workdir / "photo.jpg").read_bytes()
    assert size(workdir / "avatar.jpg") == (128, 128)
    assert size(workdir / "private.jpg") == (512, 288)  # redact + gravity=faces (issue #17)
    faces = json.loads((workdir / "faces.json").read_text())
    assert (faces["engine"], len(faces["faces"])) == ("mtcnn", 1)
    assert size(workdir / "faces.png") == (512, 512)
    assert json.loads((workdir / "text.json").read_text())["engine"] == "tesseract"
    assert "detections" in json.loads((workdir / "objects.json").read_text())
    task = json.loads((workdir / "task.json").read_text())
    assert (task["status"], task["progress"]["total"]) == ("succeeded", 3)
    assert [len(item["results"][0]["faces"]) for item in task["items"]] == [1, 1, 1]
    assert size(workdir / "first.webp") == (320, 320)
    assert (workdir / "revalidated.txt").read_text().strip() == "304"
    # The URL API's examples (issue #16).
    assert size(workdir / "url-fit.jpg") == (200, 200)
    assert size(workdir / "url-smart.webp") == (200, 200)
    meta = json.loads((workdir / "url-meta.json").read_text())["thumbor"]
    assert (meta["target"]["width"], meta["target"]["height"]) == (200, 200)
    assert (
        "cache-control: public, max-age=86400" in (workdir / "url-headers.txt").read_text().lower()
    )


def test_readme_python_handle_example(service: Service, workdir: Path) -> None:
    (code,) = blocks("python")
    env = {**service.cluster.process_env, "RAY_ADDRESS": service.cluster.address}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "64 64 image/png"
    assert size(workdir / "tiny.png") == (64, 64)
