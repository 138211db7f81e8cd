"""CI's brief run of the atheris target (tests/fuzz/fuzz_decode.py): a fixed seed, a fixed
number of inputs grown from the real-image and hostile-catalogue corpus. Exit code 0 means no
input raised anything but a typed ServiceError, hung, or blew the memory limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.hostile import BY_NAME
from tests.fuzz.corpus import write_corpus

pytest.importorskip("atheris", reason="atheris is a dev dependency (pyproject [dev])")

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("FUZZ_RUNS", "4000"))
# Catalogue entries that began as crashes of the fuzz target.
FOUND_BY_FUZZING = ("tiff_photometric_triplet",)


def _fuzz(corpus: Path | str, artifacts: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "tests.fuzz.fuzz_decode", str(corpus),
            "-seed=1", "-timeout=10", "-rss_limit_mb=2048", "-max_len=65536",
            f"-artifact_prefix={artifacts}/", *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


def test_fuzz_decode_briefly(tmp_path: Path) -> None:
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    seeds = write_corpus(corpus)
    assert len(seeds) > 20
    run = _fuzz(corpus, artifacts, f"-runs={RUNS}")
    crashes = sorted(p.name for p in artifacts.iterdir())
    assert run.returncode == 0 and not crashes, (crashes, run.stderr[-4000:])
    assert f"Done {RUNS} runs" in run.stderr, run.stderr[-2000:]


def test_fuzz_found_inputs_replay_clean(tmp_path: Path) -> None:
    """libFuzzer's replay mode on the inputs fuzzing has found (now catalogue entries): each
    raised an untyped exception once (tiff_photometric_triplet: KeyError from getexif) and
    must stay fixed."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    inputs = []
    for name in FOUND_BY_FUZZING:
        path = tmp_path / name
        path.write_bytes(BY_NAME[name].data)
        inputs.append(str(path))
    run = _fuzz(inputs[0], artifacts, *inputs[1:])
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"Executed {inputs[0]}" in run.stderr
